//! kube-event-exporter turns Kubernetes Events into Prometheus metrics, Alertmanager alerts and a
//! queryable history.
//!
//! Data flows left to right; each box is a module:
//!
//! ```text
//! source (kube watch | replay file) ─▶ pipeline (occurrences, filter) ─┬─▶ metrics   ◀── GET /metrics
//!                                                                       ├─▶ alerting  ──▶ Alertmanager(s)
//!                                                                       └─▶ archive   ◀── GET /api/v1/events
//!                                                                             │
//!                                                  ship (outbox, optional) ◀──┘──▶ ClickHouse ◀── --history-from clickhouse
//! ```
//!
//! [`event::Event`] is the one normalised event type every stage after the source uses. The
//! pipeline turns updates of Event objects into *occurrences* (count deltas) and is the only
//! module that knows its consumers. [`app`] wires the long-running parts together.
//!
//! Modules are layered; each imports only from the layers below it (`tests/layers.rs` keeps
//! this true):
//!
//! ```text
//! app                         wiring, tasks, shutdown
//! config                      flags → one validated Config of each stage's settings
//! http                        routes, the API's JSON and table renderings, the page (reads only)
//! pipeline                    ledger, occurrences, fan-out to the consumers
//! ship                        the archive's outbox to ClickHouse
//! alerting                    alerts, delivery queues
//! archive                     redb records, batches, queries, limits
//! source                      kube watch, replay, wire decoder
//! rules                       the --config file's decisions
//! metrics                     the registry and what each stage reports
//! health                      liveness and readiness state
//! event                       the normalised event, its identity and times
//! util                        backoff, stable hashing, units, joined-key maps
//! ```

#![forbid(unsafe_code)]
// Counter samples in tests are integers, exact in f64: comparing them exactly is right.
#![cfg_attr(test, allow(clippy::float_cmp))]

pub mod util;
pub mod event;
pub mod health;
pub mod metrics;
pub mod rules;
pub mod source;
pub mod archive;
pub mod alerting;
pub mod ship;
pub mod pipeline;
pub mod http;
pub mod config;
pub mod app;
