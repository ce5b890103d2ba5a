//! Access control for the history (`--auth kubernetes`): a request's credentials come in (a
//! bearer token, or behind a trusted proxy its user headers), the namespaces it may read go out.
//! The Kubernetes API decides, as for kube-rbac-proxy and metrics-server: a TokenReview says who
//! a token is, a SubjectAccessReview whether that user may `list` `events` in a namespace. Both
//! are sent with the exporter's own client. Decisions are cached briefly in bounded caches keyed
//! by digests (a raw token is never stored or logged); a review that fails is an error (503),
//! never an allow.

pub mod cache;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
use kube::{Api, Client, api::PostParams};
use parking_lot::Mutex;
use ring::digest;
use tracing::{info, warn};

use self::cache::TtlCache;
use crate::{
    archive::{Archive, ArchiveError},
    metrics::{AuthDecision, Metrics, Review},
};

/// How long an allow (and a token's identity) is reused: a revoked RoleBinding or token stops
/// working within this. kube-rbac-proxy keeps allows for minutes; a history of messages is
/// worth a review every few seconds per user.
pub const ALLOW_TTL: Duration = Duration::from_secs(10);

/// How long a denial (and a token not accepted) is reused: shorter than an allow, so a user who
/// was just granted access, or who refreshed a token, waits little.
pub const DENY_TTL: Duration = Duration::from_secs(5);

/// A review that takes longer has failed: the request is answered 503 well within the HTTP
/// server's request timeout instead of holding a connection.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Entries per cache (token identities; namespace decisions). A decision is about 150 bytes, so
/// a cache costs at most a few MB, whatever a flood of distinct tokens tries.
pub const CACHE_CAP: usize = 10_000;

/// How long the list of archived namespaces, the candidates of a query without `namespace`,
/// is reused. A namespace archived for the first time shows to restricted users within this.
const NAMESPACES_TTL: Duration = Duration::from_secs(10);

/// SubjectAccessReviews one request has in flight at once.
const CONCURRENT_REVIEWS: usize = 8;

/// The headers a trusted proxy sets (`--auth-trusted-proxy-headers`).
pub const USER_HEADER: &str = "x-forwarded-user";
pub const GROUPS_HEADER: &str = "x-forwarded-groups";

/// How access control is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// Take the user from `X-Forwarded-User` and `X-Forwarded-Groups` when present, instead of
    /// a token. Safe only when nothing but that proxy can reach the exporter.
    pub trusted_proxy_headers: bool,
}

/// Why a request to the history was not answered with data.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401.
    #[error("this history needs a bearer token (Authorization: Bearer <token>)")]
    NoCredentials,
    /// 401.
    #[error("the bearer token was not accepted by the Kubernetes API")]
    TokenRejected,
    /// 403.
    #[error("{user} may not list events in namespace {namespace}")]
    Forbidden { user: String, namespace: String },
    /// 503: the Kubernetes API did not answer a review.
    #[error("the Kubernetes API could not review the request ({review}): {reason}")]
    ReviewFailed {
        review: &'static str,
        reason: String,
    },
    /// The archive could not list its namespaces.
    #[error(transparent)]
    ArchiveFailed(#[from] ArchiveError),
}

impl AuthError {
    /// What the decision metric counts this as.
    pub fn decision(&self) -> AuthDecision {
        match self {
            Self::NoCredentials | Self::TokenRejected => AuthDecision::Unauthenticated,
            Self::Forbidden { .. } => AuthDecision::Denied,
            Self::ReviewFailed { .. } | Self::ArchiveFailed(_) => AuthDecision::Error,
        }
    }
}

/// Who a request is, as the TokenReview (or the trusted proxy) says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    /// A digest of all the above: the user's part of a decision's cache key.
    key: [u8; 32],
}

impl User {
    pub fn new(
        name: String,
        uid: String,
        groups: Vec<String>,
        extra: BTreeMap<String, Vec<String>>,
    ) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        // Length-prefixed, so no two different users spell the same bytes.
        let mut field = |s: &str| {
            ctx.update(&(s.len() as u64).to_le_bytes());
            ctx.update(s.as_bytes());
        };
        field(&name);
        field(&uid);
        for g in &groups {
            field(g);
        }
        field("\u{0}extra");
        for (k, values) in &extra {
            field(k);
            for v in values {
                field(v);
            }
            field("");
        }
        let key = digest_bytes(&ctx.finish());
        Self {
            name,
            uid,
            groups,
            extra,
            key,
        }
    }
}

fn digest_bytes(d: &digest::Digest) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(d.as_ref());
    key
}

/// Where a request's identity comes from.
enum Credentials<'a> {
    Token(&'a str),
    Proxy(User),
}

/// The credentials in `headers`, if any.
fn credentials(headers: &HeaderMap, trusted_proxy_headers: bool) -> Option<Credentials<'_>> {
    if trusted_proxy_headers
        && let Some(user) = headers
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())
    {
        let groups = headers
            .get_all(GROUPS_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        return Some(Credentials::Proxy(User::new(
            user.to_owned(),
            String::new(),
            groups,
            BTreeMap::new(),
        )));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then_some(Credentials::Token(token))
}

/// A user's key and a namespace (`None`: all namespaces).
type AccessKey = ([u8; 32], Option<String>);

/// Decides who a request is and which namespaces it may read.
pub struct Authorizer {
    client: Client,
    settings: AuthSettings,
    metrics: Arc<Metrics>,
    /// SHA-256 of a token → its user; `None`: not accepted.
    tokens: Mutex<TtlCache<[u8; 32], Option<Arc<User>>>>,
    /// (user key, namespace; `None` for all namespaces) → may list events there.
    access: Mutex<TtlCache<AccessKey, bool>>,
    /// The archived namespaces and when they were read.
    namespaces: Mutex<Option<(Instant, Arc<Vec<String>>)>>,
    /// Whether the last review failed: failures are logged when they start and when they end,
    /// not per request (the error counter has every one).
    failing: AtomicBool,
}

impl Authorizer {
    pub fn new(client: Client, settings: AuthSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            settings,
            metrics,
            tokens: Mutex::new(TtlCache::new(CACHE_CAP)),
            access: Mutex::new(TtlCache::new(CACHE_CAP)),
            namespaces: Mutex::new(None),
            failing: AtomicBool::new(false),
        }
    }

    /// Who the request is: 401 without credentials or with a token not accepted, 503 when the
    /// TokenReview fails. Counts its failures as decisions.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<User>, AuthError> {
        let user = match credentials(headers, self.settings.trusted_proxy_headers) {
            None => Err(AuthError::NoCredentials),
            Some(Credentials::Proxy(user)) => Ok(Arc::new(user)),
            Some(Credentials::Token(token)) => self.user_of(token).await,
        };
        if let Err(e) = &user {
            self.metrics.auth_decided(e.decision());
        }
        user
    }

    /// The namespaces `user` may read for a query of `namespace` (`None`: all): `Ok(None)` is
    /// no restriction (the namespace asked for is permitted, or every namespace is), else the
    /// permitted ones among those archived. A namespace asked for and not permitted is a 403.
    /// Counts the decision.
    pub async fn permitted(
        &self,
        user: &User,
        namespace: Option<&str>,
        archive: &Archive,
    ) -> Result<Option<Arc<BTreeSet<String>>>, AuthError> {
        let decided = self.decide(user, namespace, archive).await;
        self.metrics.auth_decided(match &decided {
            Ok(_) => AuthDecision::Allowed,
            Err(e) => e.decision(),
        });
        decided
    }

    async fn decide(
        &self,
        user: &User,
        namespace: Option<&str>,
        archive: &Archive,
    ) -> Result<Option<Arc<BTreeSet<String>>>, AuthError> {
        if let Some(ns) = namespace {
            return if self.may_list_events(user, Some(ns)).await? {
                Ok(None)
            } else {
                Err(AuthError::Forbidden {
                    user: user.name.clone(),
                    namespace: ns.to_owned(),
                })
            };
        }
        if self.may_list_events(user, None).await? {
            return Ok(None);
        }
        let candidates = self.archived_namespaces(archive).await?;
        let checks = candidates.iter().cloned().map(|ns| async move {
            let allowed = self.may_list_events(user, Some(&ns)).await?;
            Ok::<_, AuthError>(allowed.then_some(ns))
        });
        let answers: Vec<Option<String>> = futures::stream::iter(checks)
            .buffer_unordered(CONCURRENT_REVIEWS)
            .try_collect()
            .await?;
        let permitted: BTreeSet<String> = answers.into_iter().flatten().collect();
        Ok(Some(Arc::new(permitted)))
    }

    /// The token's user, from the cache or a TokenReview.
    async fn user_of(&self, token: &str) -> Result<Arc<User>, AuthError> {
        let key = digest_bytes(&digest::digest(&digest::SHA256, token.as_bytes()));
        if let Some(user) = self.tokens.lock().get(&key, Instant::now()) {
            return user.ok_or(AuthError::TokenRejected);
        }
        let review = authn::TokenReview {
            spec: authn::TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..authn::TokenReview::default()
        };
        let api = Api::<authn::TokenReview>::all(self.client.clone());
        let answer = self
            .review(Review::Token, api.create(&PostParams::default(), &review))
            .await?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => {
                Some(Arc::new(User::new(
                    u.username.unwrap_or_default(),
                    u.uid.unwrap_or_default(),
                    u.groups.unwrap_or_default(),
                    u.extra.unwrap_or_default(),
                )))
            }
            _ => None,
        };
        let now = Instant::now();
        let ttl = if user.is_some() { ALLOW_TTL } else { DENY_TTL };
        self.tokens.lock().insert(key, user.clone(), now + ttl, now);
        user.ok_or(AuthError::TokenRejected)
    }

    /// Whether `user` may list events in `namespace` (`None`: in every namespace), from the
    /// cache or a SubjectAccessReview.
    async fn may_list_events(
        &self,
        user: &User,
        namespace: Option<&str>,
    ) -> Result<bool, AuthError> {
        let key = (user.key, namespace.map(str::to_owned));
        if let Some(allowed) = self.access.lock().get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        let review = authz::SubjectAccessReview {
            spec: authz::SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: non_empty(&user.uid),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(authz::ResourceAttributes {
                    // Empty: all namespaces, as the API defines it.
                    namespace: Some(namespace.unwrap_or_default().to_owned()),
                    verb: Some("list".to_owned()),
                    group: Some(String::new()),
                    resource: Some("events".to_owned()),
                    ..authz::ResourceAttributes::default()
                }),
                non_resource_attributes: None,
            },
            ..authz::SubjectAccessReview::default()
        };
        let api = Api::<authz::SubjectAccessReview>::all(self.client.clone());
        let answer = self
            .review(Review::Access, api.create(&PostParams::default(), &review))
            .await?;
        let status = answer.status.unwrap_or_default();
        let allowed = status.allowed && status.denied != Some(true);
        let now = Instant::now();
        let ttl = if allowed { ALLOW_TTL } else { DENY_TTL };
        self.access.lock().insert(key, allowed, now + ttl, now);
        Ok(allowed)
    }

    /// Runs one review with a deadline, timing it and counting a failure.
    async fn review<T>(
        &self,
        review: Review,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, AuthError> {
        let started = Instant::now();
        let answer = match tokio::time::timeout(REVIEW_TIMEOUT, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", REVIEW_TIMEOUT.as_secs())),
        };
        self.metrics
            .auth_reviewed(review, started.elapsed().as_secs_f64(), answer.is_err());
        let was_failing = self.failing.swap(answer.is_err(), Ordering::Relaxed);
        match &answer {
            Err(e) if !was_failing => {
                warn!(review = review.as_str(), error = %e, "Access reviews failing; answering 503.");
            }
            Ok(_) if was_failing => info!("Access reviews work again."),
            _ => {}
        }
        answer.map_err(|reason| AuthError::ReviewFailed {
            review: review.as_str(),
            reason,
        })
    }

    /// The namespaces with archived records, re-read at most every [`NAMESPACES_TTL`].
    async fn archived_namespaces(&self, archive: &Archive) -> Result<Arc<Vec<String>>, AuthError> {
        let now = Instant::now();
        if let Some((read, list)) = &*self.namespaces.lock()
            && now.duration_since(*read) < NAMESPACES_TTL
        {
            return Ok(list.clone());
        }
        let archive = archive.clone();
        let list = Arc::new(
            tokio::task::spawn_blocking(move || archive.namespaces())
                .await
                .map_err(ArchiveError::from)??,
        );
        *self.namespaces.lock() = Some((now, list.clone()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn token(h: &HeaderMap, trusted: bool) -> Option<String> {
        match credentials(h, trusted)? {
            Credentials::Token(t) => Some(t.to_owned()),
            Credentials::Proxy(u) => Some(format!("proxy:{}:{}", u.name, u.groups.join("|"))),
        }
    }

    #[test]
    fn credentials_are_a_bearer_token_or_trusted_headers() {
        for (pairs, trusted, want) in [
            (&[("authorization", "Bearer abc")][..], false, Some("abc")),
            (&[("authorization", "bearer  abc ")], false, Some("abc")),
            (&[("authorization", "Basic abc")], false, None),
            (&[("authorization", "Bearer ")], false, None),
            (&[("authorization", "Bearer")], false, None),
            (&[], false, None),
            // The headers count only with the flag; then they win over a token.
            (&[("x-forwarded-user", "alice")], false, None),
            (
                &[
                    ("x-forwarded-user", "alice"),
                    ("x-forwarded-groups", "dev, ops,"),
                    ("x-forwarded-groups", "sre"),
                    ("authorization", "Bearer abc"),
                ],
                true,
                Some("proxy:alice:dev|ops|sre"),
            ),
            (
                &[("x-forwarded-user", " "), ("authorization", "Bearer abc")],
                true,
                Some("abc"),
            ),
        ] {
            assert_eq!(
                token(&headers(pairs), trusted).as_deref(),
                want,
                "{pairs:?} trusted={trusted}"
            );
        }
    }

    #[test]
    fn users_differing_in_any_field_have_different_keys() {
        let u = |name: &str, groups: &[&str]| {
            User::new(
                name.into(),
                String::new(),
                groups.iter().map(|g| (*g).to_owned()).collect(),
                BTreeMap::new(),
            )
            .key
        };
        assert_eq!(u("a", &["b"]), u("a", &["b"]));
        assert_ne!(u("a", &["b"]), u("a", &["c"]));
        assert_ne!(u("ab", &[]), u("a", &["b"]));
        assert_ne!(u("a", &["b", "c"]), u("a", &["bc"]));
    }

    #[test]
    fn error_decisions() {
        assert_eq!(
            AuthError::NoCredentials.decision(),
            AuthDecision::Unauthenticated
        );
        assert_eq!(
            AuthError::TokenRejected.decision(),
            AuthDecision::Unauthenticated
        );
        let forbidden = AuthError::Forbidden {
            user: "u".into(),
            namespace: "n".into(),
        };
        assert_eq!(forbidden.decision(), AuthDecision::Denied);
        let failed = AuthError::ReviewFailed {
            review: "tokenreview",
            reason: "x".into(),
        };
        assert_eq!(failed.decision(), AuthDecision::Error);
    }
}
