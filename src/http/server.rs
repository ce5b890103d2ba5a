//! Serving the router on a bound listener, with bounds on what clients can hold. Without them a
//! client that opens connections and never finishes a request would keep each one (and its
//! buffers) forever, and enough of them would exhaust the process's file descriptors: then the
//! probes and `/metrics` time out and the kubelet restarts a healthy exporter.
//!
//! - a request head must arrive within [`HEADER_READ_TIMEOUT`], which also closes idle
//!   keep-alive connections;
//! - a request is answered within [`REQUEST_TIMEOUT`] (503 after it);
//! - a connection buffers at most [`MAX_BUF`] (larger heads are refused);
//! - at most [`connection_cap`] connections are open; a new one closes the oldest, so a flood
//!   of slow clients cannot lock out the kubelet's probe or Prometheus's scrape. With the
//!   history on a listener of its own, each listener has half of the cap, so a flood on one
//!   never closes the other's connections.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A request head (or the next one on a kept-alive connection) must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request must be answered within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's read buffer; a request head must fit. The API's requests are GETs whose
/// heads are a few hundred bytes.
pub const MAX_BUF: usize = 16 * 1024;

/// At most this many connections, whatever the file descriptor limit allows.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long open connections get to finish their request at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The connection cap: [`MAX_CONNECTIONS`], or half the process's open-file limit if that is
/// lower, so the watch, the archive and the Alertmanager posts keep descriptors to spare.
pub fn connection_cap() -> usize {
    open_file_limit().map_or(MAX_CONNECTIONS, |n| (n / 2).clamp(8, MAX_CONNECTIONS))
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Answers 503 when a request takes longer than [`REQUEST_TIMEOUT`].
pub async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("request took longer than {}s\n", REQUEST_TIMEOUT.as_secs()),
        )
            .into_response(),
    }
}

/// The open connections, oldest first, each with the token that closes it.
#[derive(Default)]
struct Open {
    next_id: u64,
    conns: BTreeMap<u64, CancellationToken>,
}

/// Serves a router on a bound listener until shutdown.
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    /// At most this many open connections: [`connection_cap`], or its share of it.
    cap: usize,
}

impl HttpServer {
    /// `router` on `listener` with at most `cap` open connections.
    pub fn new(listener: TcpListener, router: Router, cap: usize) -> Self {
        Self {
            listener,
            router,
            cap: cap.max(1),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = self.router;
        let open = Arc::new(Mutex::new(Open::default()));
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors (or a transient error): make room and go on.
                        warn!(error = %e, "Accepting a connection failed; closing the oldest.");
                        close_oldest(&open);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let close = CancellationToken::new();
            let id = {
                let mut open = open.lock();
                if open.conns.len() >= self.cap {
                    debug!(
                        cap = self.cap,
                        "Connection cap reached; closing the oldest."
                    );
                    if let Some((_, oldest)) = open.conns.pop_first() {
                        oldest.cancel();
                    }
                }
                let id = open.next_id;
                open.next_id += 1;
                open.conns.insert(id, close.clone());
                id
            };
            let (router, open, shutdown) = (router.clone(), open.clone(), shutdown.clone());
            conns.spawn(async move {
                serve(stream, router, &close, &shutdown).await;
                open.lock().conns.remove(&id);
            });
            // Reap finished connections so the set does not grow.
            while conns.try_join_next().is_some() {}
        }
        // Stop accepting; let open connections finish within the drain time.
        drop(self.listener);
        let _ =
            tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
        Ok(())
    }
}

fn close_oldest(open: &Mutex<Open>) {
    if let Some((_, oldest)) = open.lock().conns.pop_first() {
        oldest.cancel();
    }
}

/// Serves one connection until it ends, `close` drops it, or `shutdown` asks it to finish its
/// current request.
async fn serve(
    stream: TcpStream,
    router: Router,
    close: &CancellationToken,
    shutdown: &CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF);
    let service = TowerToHyperService::new(router);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = close.cancelled() => return,
        () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = conn => {}
        () = close.cancelled() => {}
    }
}
