//! TokenReviews and SubjectAccessReviews for the fake API server, as a real one answers them:
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` and
//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` (201 with the object, spec echoed,
//! `status` filled in), the self reviews kubectl sends for `auth can-i` and `auth whoami`, and
//! the discovery documents kubectl needs to find them. A few users (token → name, uid, groups)
//! and rules (user or group → a namespace, or all) decide; only the exporter's own identity
//! (token `test-token`, from [`FakeApiServer::write_kubeconfig`], or `--as` [`EXPORTER_USER`])
//! may create reviews, as RBAC's `create` on the two resources would allow. Tests count the
//! reviews and inject faults.
//!
//! kubectl sends no bearer token to a plain-http server, only impersonation headers: the fake
//! takes `Impersonate-User`/`Impersonate-Group` as the caller (a real server would first check
//! that the caller may impersonate), so `kubectl --as alice` is alice.
//!
//! It sits in front of the fake's handler as a middleware, so the handler itself is untouched.
//!
//! [`FakeApiServer::write_kubeconfig`]: super::fake_apiserver::FakeApiServer::write_kubeconfig

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// The token in the kubeconfig the fake writes: the exporter's own identity.
pub const EXPORTER_TOKEN: &str = "test-token";

/// Who [`EXPORTER_TOKEN`] is: the exporter's service account, which may create reviews.
pub const EXPORTER_USER: &str = "system:serviceaccount:kube-event-exporter:kube-event-exporter";

/// What the reviews do instead of answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (a Status object), as an overloaded or broken API server does.
    Fail(u16),
    /// Never answer.
    Hang,
}

#[derive(Clone, Debug)]
struct FakeUser {
    name: String,
    uid: String,
    groups: Vec<String>,
}

/// Who a rule grants `list` on `events` to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
}

#[derive(Default)]
struct ReviewState {
    users: HashMap<String, FakeUser>,
    /// (subject, namespace; `None` = every namespace, as a ClusterRoleBinding grants).
    rules: Vec<(Subject, Option<String>)>,
    fault: Option<Fault>,
    token_reviews: usize,
    access_reviews: usize,
    /// The spec of every SubjectAccessReview, in order.
    access_specs: Vec<Value>,
}

/// The fake's review state; tests reach it as `fake.reviews`.
#[derive(Default)]
pub struct Reviews {
    state: Mutex<ReviewState>,
}

impl Reviews {
    fn lock(&self) -> MutexGuard<'_, ReviewState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A user whose bearer token is `token`.
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        let uid = format!("uid-{name}");
        self.lock().users.insert(
            token.to_owned(),
            FakeUser {
                name: name.to_owned(),
                uid,
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
        );
    }

    /// `user` may list events in `namespace` (`None`: in every namespace).
    pub fn allow_user(&self, user: &str, namespace: Option<&str>) {
        self.lock()
            .rules
            .push((Subject::User(user.into()), namespace.map(str::to_owned)));
    }

    /// Members of `group` may list events in `namespace` (`None`: in every namespace).
    pub fn allow_group(&self, group: &str, namespace: Option<&str>) {
        self.lock()
            .rules
            .push((Subject::Group(group.into()), namespace.map(str::to_owned)));
    }

    /// Takes back every rule of `user` (a RoleBinding deleted).
    pub fn revoke_user(&self, user: &str) {
        self.lock()
            .rules
            .retain(|(s, _)| *s != Subject::User(user.into()));
    }

    /// From now on the exporter's reviews fail this way (`None`: they work again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// (TokenReviews, SubjectAccessReviews) answered or failed so far.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.token_reviews, st.access_reviews)
    }

    /// The spec of every SubjectAccessReview so far.
    pub fn access_specs(&self) -> Vec<Value> {
        self.lock().access_specs.clone()
    }

    /// Whether a user named `name` in `groups` may do `verb` on `resource` in `group` and
    /// `namespace` (empty: all namespaces), as the fake's RBAC says.
    fn allowed(&self, name: &str, groups: &[String], attributes: &Value) -> bool {
        let s = |k: &str| attributes[k].as_str().unwrap_or_default();
        if s("verb") != "list" || s("resource") != "events" || !s("group").is_empty() {
            return false;
        }
        let namespace = s("namespace");
        self.lock().rules.iter().any(|(subject, ns)| {
            let whom = match subject {
                Subject::User(u) => u == name,
                Subject::Group(g) => groups.contains(g),
            };
            whom && ns.as_deref().is_none_or(|ns| ns == namespace)
        })
    }

    fn user_of_token(&self, token: &str) -> Option<FakeUser> {
        self.lock().users.get(token).cloned()
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).expect("valid status"),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn created(object: &Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        object.to_string(),
    )
        .into_response()
}

fn bearer(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

const AUTHN: &str = "authentication.k8s.io/v1";
const AUTHZ: &str = "authorization.k8s.io/v1";

fn resource_list(group_version: &str) -> Value {
    let r = |name: &str, kind: &str| {
        json!({"name": name, "singularName": name.trim_end_matches('s'), "namespaced": false,
               "kind": kind, "verbs": ["create"]})
    };
    let resources = if group_version == AUTHN {
        vec![
            r("tokenreviews", "TokenReview"),
            r("selfsubjectreviews", "SelfSubjectReview"),
        ]
    } else {
        vec![
            r("subjectaccessreviews", "SubjectAccessReview"),
            r("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ]
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
           "resources": resources})
}

/// The middleware: answers the review and discovery paths, passes everything else on.
pub async fn intercept(
    State(reviews): State<Arc<Reviews>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/apis") => with_review_groups(next.run(request).await).await,
        (Method::GET, "/apis/authentication.k8s.io/v1") => created_ok(&resource_list(AUTHN)),
        (Method::GET, "/apis/authorization.k8s.io/v1") => created_ok(&resource_list(AUTHZ)),
        (Method::POST, p)
            if p.starts_with("/apis/authentication.k8s.io/v1/")
                || p.starts_with("/apis/authorization.k8s.io/v1/") =>
        {
            review(&reviews, request).await
        }
        _ => next.run(request).await,
    }
}

fn created_ok(v: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// The fake's group list with the two review groups added.
async fn with_review_groups(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let Ok(mut list) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(groups) = list["groups"].as_array_mut() {
        for (name, gv) in [
            ("authentication.k8s.io", AUTHN),
            ("authorization.k8s.io", AUTHZ),
        ] {
            let v = json!({"groupVersion": gv, "version": "v1"});
            groups.push(json!({"name": name, "versions": [v], "preferredVersion": v}));
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(list.to_string()))
}

async fn review(reviews: &Reviews, request: Request) -> Response {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let caller = bearer(&request);
    let impersonated = request
        .headers()
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(|name| FakeUser {
            name: name.to_owned(),
            uid: String::new(),
            groups: request
                .headers()
                .get_all("impersonate-group")
                .iter()
                .filter_map(|g| g.to_str().ok().map(str::to_owned))
                .collect(),
        });
    let protobuf = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.kubernetes.protobuf"));
    let Ok(body) = to_bytes(request.into_body(), 1 << 20).await else {
        return status(400, "BadRequest", "unreadable body");
    };
    // kubectl's typed clients send protobuf; the answer may be JSON (they accept both).
    let decoded = if protobuf {
        self_review_from_protobuf(&body)
    } else {
        serde_json::from_slice::<Value>(&body).ok()
    };
    let Some(mut object) = decoded else {
        return status(
            400,
            "BadRequest",
            "the body is neither JSON nor a self review",
        );
    };
    let caller_user = match (impersonated, caller.as_deref()) {
        (Some(user), _) => user,
        (None, Some(EXPORTER_TOKEN)) => FakeUser {
            name: EXPORTER_USER.to_owned(),
            uid: "uid-exporter".to_owned(),
            groups: vec!["system:serviceaccounts".to_owned()],
        },
        (None, Some(token)) => match reviews.user_of_token(token) {
            Some(user) => user,
            None => return status(401, "Unauthorized", "Unauthorized"),
        },
        (None, None) => FakeUser {
            name: "system:anonymous".to_owned(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".to_owned()],
        },
    };
    let is_exporter = caller_user.name == EXPORTER_USER;
    let resource = path.rsplit('/').next().unwrap_or_default().to_owned();
    let (gv, kind) = match resource.as_str() {
        "tokenreviews" => (AUTHN, "TokenReview"),
        "selfsubjectreviews" => (AUTHN, "SelfSubjectReview"),
        "subjectaccessreviews" => (AUTHZ, "SubjectAccessReview"),
        "selfsubjectaccessreviews" => (AUTHZ, "SelfSubjectAccessReview"),
        _ => {
            return status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource {path}"),
            );
        }
    };
    if object["kind"].as_str().is_some_and(|k| k != kind) {
        return status(400, "BadRequest", &format!("expected {kind}"));
    }
    object["kind"] = json!(kind);
    object["apiVersion"] = json!(gv);
    object["metadata"] = json!({"creationTimestamp": null});
    match resource.as_str() {
        "tokenreviews" | "subjectaccessreviews" => {
            if !is_exporter {
                let who = &caller_user.name;
                return status(
                    403,
                    "Forbidden",
                    &format!(
                        "{resource}.{} is forbidden: User \"{who}\" cannot create resource \"{resource}\" in API group \"{}\" at the cluster scope",
                        gv.trim_end_matches("/v1"),
                        gv.trim_end_matches("/v1")
                    ),
                );
            }
            let fault = {
                let mut st = reviews.lock();
                if resource == "tokenreviews" {
                    st.token_reviews += 1;
                } else {
                    st.access_reviews += 1;
                    st.access_specs.push(object["spec"].clone());
                }
                st.fault
            };
            match fault {
                Some(Fault::Fail(code)) => {
                    return status(code, "InternalError", "injected fault");
                }
                Some(Fault::Hang) => std::future::pending::<()>().await,
                None => {}
            }
            if resource == "tokenreviews" {
                token_review(reviews, object)
            } else {
                access_review(reviews, object)
            }
        }
        "selfsubjectreviews" => {
            object["status"] = json!({"userInfo": user_json(&caller_user)});
            created(&object)
        }
        _ => {
            let allowed = reviews.allowed(
                &caller_user.name,
                &caller_user.groups,
                &object["spec"]["resourceAttributes"],
            );
            object["status"] = json!({"allowed": allowed});
            created(&object)
        }
    }
}

fn user_json(u: &FakeUser) -> Value {
    let mut groups = u.groups.clone();
    groups.push("system:authenticated".to_owned());
    json!({"username": u.name, "uid": u.uid, "groups": groups})
}

fn token_review(reviews: &Reviews, mut object: Value) -> Response {
    let Some(token) = object["spec"]["token"].as_str().map(str::to_owned) else {
        return status(
            422,
            "Invalid",
            "TokenReview.authentication.k8s.io \"\" is invalid: spec.token: Required value",
        );
    };
    object["status"] = match reviews.user_of_token(&token) {
        Some(u) => {
            json!({"authenticated": true, "user": user_json(&u), "audiences": ["https://kubernetes.default.svc"]})
        }
        // What a real API server says about a token it does not know.
        None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
    };
    created(&object)
}

fn access_review(reviews: &Reviews, mut object: Value) -> Response {
    let spec = &object["spec"];
    let name = spec["user"].as_str().unwrap_or_default().to_owned();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    if name.is_empty() && groups.is_empty() {
        return status(
            422,
            "Invalid",
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
        );
    }
    if spec["resourceAttributes"].is_null() && spec["nonResourceAttributes"].is_null() {
        return status(
            422,
            "Invalid",
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        );
    }
    let allowed = reviews.allowed(&name, &groups, &spec["resourceAttributes"]);
    object["status"] = if allowed {
        json!({"allowed": true, "reason": "RBAC: allowed by the fake's rules"})
    } else {
        json!({"allowed": false})
    };
    created(&object)
}

/// The fields of a protobuf message: (field number, bytes of a length-delimited value; empty
/// for the other wire types, which the self reviews do not use for what the fake reads).
fn protobuf_fields(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => {
                varint(&mut b)?;
                out.push((key >> 3, &[][..]));
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                let (value, rest) = (b.get(..len)?, b.get(len..)?);
                out.push((key >> 3, value));
                b = rest;
            }
            1 => b = b.get(8..)?,
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

/// A SelfSubjectAccessReview or SelfSubjectReview in Kubernetes' protobuf envelope (`k8s\0`,
/// then `runtime.Unknown{typeMeta, raw}`), as the JSON object it means: the spec's resource
/// attributes (namespace 1, verb 2, group 3, version 4, resource 5, subresource 6, name 7).
fn self_review_from_protobuf(body: &[u8]) -> Option<Value> {
    let unknown = protobuf_fields(body.strip_prefix(b"k8s\0")?)?;
    let text =
        |v: Option<&[u8]>| Value::from(String::from_utf8_lossy(v.unwrap_or_default()).into_owned());
    let type_meta = protobuf_fields(unknown.iter().find(|(f, _)| *f == 1)?.1)?;
    let kind = text(type_meta.iter().find(|(f, _)| *f == 2).map(|(_, v)| *v));
    let raw = unknown.iter().find(|(f, _)| *f == 2)?.1;
    let review = protobuf_fields(raw)?;
    let mut object = serde_json::json!({"kind": kind, "spec": {}});
    if let Some(spec) = review.iter().find(|(f, _)| *f == 2) {
        let spec = protobuf_fields(spec.1)?;
        if let Some(attributes) = spec.iter().find(|(f, _)| *f == 1) {
            let attributes = protobuf_fields(attributes.1)?;
            let mut a = serde_json::Map::new();
            for (n, name) in [
                (1, "namespace"),
                (2, "verb"),
                (3, "group"),
                (4, "version"),
                (5, "resource"),
                (6, "subresource"),
                (7, "name"),
            ] {
                if let Some((_, v)) = attributes.iter().find(|(f, _)| *f == n) {
                    a.insert(name.to_owned(), text(Some(v)));
                }
            }
            object["spec"]["resourceAttributes"] = Value::Object(a);
        }
    }
    Some(object)
}
