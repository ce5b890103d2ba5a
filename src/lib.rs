//! kube-event-exporter turns Kubernetes Events into Prometheus metrics, Alertmanager alerts and a
//! queryable history.
//!
//! Data flows left to right; each box is a module:
//!
//! ```text
//! source (kube watch | replay file) ─▶ pipeline (occurrences, filter) ─┬─▶ metrics   ◀── GET /metrics
//!                                                                       ├─▶ alerting  ──▶ Alertmanager(s)
//!                                                                       └─▶ archive   ◀── GET /api/v1/events
//! ```
//!
//! [`event::Event`] is the one normalised event type every stage after the source uses. The
//! pipeline turns updates of Event objects into *occurrences* (count deltas) and is the only
//! module that knows its consumers. [`app`] wires the long-running parts together.

pub mod config;
pub mod event;
pub mod source;
pub mod pipeline;
pub mod rules;
pub mod metrics;
pub mod alerting;
pub mod archive;
pub mod health;
pub mod http;
pub mod app;
