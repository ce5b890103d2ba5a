//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, the archive API `/api/v1/events`
//! (JSON, or a kubectl-style [`table`]) and the history [`page`] at `/`. It only reads shared
//! state. The [`server`] bounds what clients can hold: connections, time and memory. With
//! [`auth`], the history (API and page) answers only what the caller's RBAC lets them read;
//! `/metrics` and the probes stay open. The history can have a listener of its own
//! ([`history_router`]), so a NetworkPolicy can admit scrapers and readers on different ports.

pub mod auth;
pub mod page;
pub mod server;
pub mod table;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use serde::Serialize;
use tracing::error;

use self::auth::{AuthError, Authorizer};
use crate::{
    archive::{
        Archive, ArchiveError,
        query::{Cursor, InvalidQuery, Page, Query},
    },
    event::Event,
    health::Health,
    metrics::Metrics,
    ship::{ShipError, history::History},
};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub archive: Archive,
    /// `None`: `--auth none`, everyone reads everything.
    pub auth: Option<Arc<Authorizer>>,
    /// `Some`: `--history-from clickhouse`: the API and the page read there, not the archive.
    pub history: Option<Arc<History>>,
    /// This cluster's name (`--cluster-name`), on the archive's items; empty without one.
    pub cluster: Arc<str>,
}

/// Every route on one listener: `--listen` without `--history-listen`.
pub fn router(state: AppState) -> Router {
    operations_routes()
        .merge(history_routes())
        .layer(axum::middleware::from_fn(server::time_limit))
        .with_state(state)
}

/// `/metrics` and the probes: `--listen` when the history has a listener of its own; any other
/// path is a 404.
pub fn operations_router(state: AppState) -> Router {
    operations_routes()
        .layer(axum::middleware::from_fn(server::time_limit))
        .with_state(state)
}

/// The history, `/api/v1/events` and the page: `--history-listen`; any other path is a 404.
pub fn history_router(state: AppState) -> Router {
    history_routes()
        .layer(axum::middleware::from_fn(server::time_limit))
        .with_state(state)
}

fn operations_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

fn history_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(events))
        .route("/", get(history))
}

/// Every error the API answers: a user's bad input is a 400 with a plain message and is not
/// logged; anything else is a real internal failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidQuery(#[from] InvalidQuery),
    #[error(transparent)]
    ArchiveFailed(#[from] ArchiveError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the history in ClickHouse cannot be read: {0}")]
    HistoryFailed(#[from] ShipError),
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl ApiError {
    /// The status to answer with. A real internal failure is logged here, once per answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            // Reopening after an I/O error: try again shortly.
            Self::ArchiveFailed(ArchiveError::Closed | ArchiveError::Busy) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ArchiveFailed(e) | Self::Auth(AuthError::ArchiveFailed(e)) => {
                error!(error = %e, "Archive query failed.");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Auth(AuthError::NoCredentials | AuthError::TokenRejected) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Auth(AuthError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            // Logged by the authorizer when reviews start failing.
            Self::Auth(AuthError::ReviewFailed { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::HistoryFailed(e) => {
                error!(error = %e, "ClickHouse query failed.");
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        challenge(
            (
                status,
                Json(ErrorBody {
                    error: self.to_string(),
                }),
            )
                .into_response(),
        )
    }
}

/// A 401 tells the client how to authenticate (RFC 6750).
fn challenge(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// With access control on: who the request is (a 401 or 503 before anything else is read).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<auth::User>>, ApiError> {
    match &state.auth {
        Some(auth) => Ok(Some(auth.authenticate(headers).await?)),
        None => Ok(None),
    }
}

/// Limits `q` to what `user` may read (a 403 for a namespace not permitted).
async fn restrict(
    state: &AppState,
    user: Option<&auth::User>,
    q: &mut Query,
) -> Result<(), ApiError> {
    if let (Some(auth), Some(user)) = (&state.auth, user) {
        q.namespaces = auth
            .permitted(user, q.namespace.as_deref(), &state.archive)
            .await?;
    }
    Ok(())
}

/// One archived event as the API shows it.
#[derive(Debug, Serialize)]
pub struct Item<'a> {
    /// The event's cluster: present with ClickHouse (shipping or reading), absent otherwise.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub cluster: &'a str,
    pub uid: &'a str,
    pub namespace: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub reason: &'a str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub message: &'a str,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub source: &'a str,
    pub host: &'a str,
    pub object_uid: &'a str,
    pub object_namespace: &'a str,
    pub object_api_version: &'a str,
    pub field_path: &'a str,
    pub reporting_instance: &'a str,
    pub action: &'a str,
    pub event_name: &'a str,
    /// The involved object's workload; empty while not known.
    pub workload_kind: &'a str,
    pub workload: &'a str,
}

impl<'a> Item<'a> {
    /// `e` of cluster `cluster` (empty: none).
    pub fn of(cluster: &'a str, e: &'a Event) -> Self {
        Self {
            cluster,
            uid: &e.uid,
            namespace: &e.namespace,
            kind: &e.regarding.kind,
            name: &e.regarding.name,
            reason: &e.reason,
            type_: e.type_.as_str(),
            message: &e.message,
            count: e.count,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            source: &e.source,
            host: &e.host,
            object_uid: &e.regarding.uid,
            object_namespace: &e.regarding.namespace,
            object_api_version: &e.regarding.api_version,
            field_path: &e.regarding.field_path,
            reporting_instance: &e.reporting_instance,
            action: &e.action,
            event_name: &e.name,
            workload_kind: &e.workload.kind,
            workload: &e.workload.name,
        }
    }
}

#[derive(Serialize)]
struct PageBody<'a> {
    items: Vec<Item<'a>>,
    next_cursor: Option<String>,
}

/// Decodes the raw query string; malformed escapes decode lossily, like every Go server.
fn form_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, InvalidQuery> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| InvalidQuery(format!("query string is not form-encoded: {e}")))
}

/// Runs `q` on ClickHouse, or on the archive off the async threads (redb reads block). The
/// archive holds one cluster: a `cluster` filter naming another matches nothing.
async fn run_query(state: &AppState, q: Query) -> Result<Page, ApiError> {
    if let Some(history) = &state.history {
        return Ok(history.query(&q).await?);
    }
    if q.cluster.as_deref().is_some_and(|c| c != &*state.cluster) {
        return Ok(Page::default());
    }
    let archive = state.archive.clone();
    Ok(tokio::task::spawn_blocking(move || archive.query(&q))
        .await
        .map_err(ArchiveError::from)??)
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let user = authenticate(&state, &headers).await?;
    let now = Timestamp::now();
    let mut q = Query::parse(&form_pairs(raw.as_deref())?, now)?;
    restrict(&state, user.as_deref(), &mut q).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.starts_with("text/plain") {
        q.table = true;
    }
    let (table, namespace_is_none) = (q.table, q.namespace.is_none());
    let page = run_query(&state, q).await?;
    if table {
        let text = table::table(&page, namespace_is_none, now);
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let body = PageBody {
        items: page
            .items
            .iter()
            .enumerate()
            .map(|(i, e)| Item::of(page.clusters.get(i).map_or(&*state.cluster, |c| c), e))
            .collect(),
        next_cursor: page.next_cursor.as_ref().map(Cursor::encode),
    };
    Ok(Json(body).into_response())
}

/// The history page: the API's parameters (an empty one is no filter), rendered as HTML with
/// the API's status codes; a refused query shows its message next to the form.
async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = Timestamp::now();
    let user = match authenticate(&state, &headers).await {
        Ok(user) => user,
        Err(e) => return challenge(page::response(&page::Params::default(), &Err(e), now)),
    };
    let (params, query) = match form_pairs(raw.as_deref()) {
        Ok(pairs) => {
            let params = page::Params::new(pairs);
            let query = params.query(now);
            (params, query)
        }
        Err(e) => (page::Params::default(), Err(e)),
    };
    let answer = match query {
        Ok(mut q) => match restrict(&state, user.as_deref(), &mut q).await {
            Ok(()) => run_query(&state, q).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    };
    page::response(&params, &answer, now)
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
