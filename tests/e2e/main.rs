//! End-to-end tests: the real binary as a process against the fake API server, kubectl,
//! Prometheus, promtool, Alertmanager and a headless chromium. One test binary, so the suite
//! links once. Checks that start no exporter live elsewhere (`tests/kit.rs` for the operator's
//! kit files).

// Counter samples are integers, exact in f64: comparing them exactly is right.
#![allow(clippy::float_cmp)]
// Scenarios read top to bottom as scripts; splitting them would hide the story.
#![allow(clippy::too_many_lines)]
// Test fixtures build small config texts; an extra allocation there does not matter.
#![allow(clippy::format_push_string)]

mod support;

mod alerts;
mod auth;
mod cli;
mod clickhouse;
mod fake_objects;
mod faults;
mod history;
mod kit;
mod page;
mod replay;
mod watch;
mod workloads;
