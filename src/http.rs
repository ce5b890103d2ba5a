//! The HTTP server: `/metrics`, `/healthz`, `/readyz`. It only reads shared state.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{health::Health, metrics::Metrics};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// OpenMetrics unless the client asks for the classic text format and not for OpenMetrics.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let classic = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    if classic {
        (
            [(header::CONTENT_TYPE, CLASSIC)],
            state.metrics.encode_classic(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, OPENMETRICS)],
            state.metrics.encode_openmetrics(),
        )
            .into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.health.check() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "initial list not done\n")
    }
}

/// Serves the routes on a bound listener until shutdown.
pub struct HttpServer {
    listener: TcpListener,
    state: AppState,
}

impl HttpServer {
    pub fn new(listener: TcpListener, state: AppState) -> Self {
        Self { listener, state }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}
