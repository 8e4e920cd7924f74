//! Request parsing and key checks that answer in the envelope.
//!
//! Keys are compared in constant time ([`constant_time_eq`]). Header values
//! are never logged nor echoed.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use clawplane_domain::{IdempotencyKey, IdempotencyKeyError, UserId};
use clawplane_http::json::JsonError;
use clawplane_secrets::{
    api_token_digest, constant_time_eq, ExposeSecret, SecretString, API_TOKEN_PREFIX,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// The control key header (the seed's name).
pub const CONTROL_KEY_HEADER: &str = "x-oa-control-key";
/// The beta internal key header.
pub const INTERNAL_KEY_HEADER: &str = "x-oa-internal-key";
/// The user id header.
pub const USER_ID_HEADER: &str = "x-oa-user-id";
/// The idempotency key header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A JSON body whose rejection is the envelope: 413 over the size limit, 415
/// without a JSON content type, 400 for malformed JSON, an object naming a
/// key twice (at any depth, [`clawplane_http::json`]) or a wrong shape. Every
/// route of `serve` that reads a JSON body reads it through this.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejection(&rejection))?;
        clawplane_http::json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| json_rejection(&e))
    }
}

/// `application/json`, or any `application/*+json`, parameters allowed (as
/// axum's own `Json` decides).
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the limit of 1 MiB",
        )
    } else {
        ApiError::bad_request("the request body could not be read")
    }
}

fn json_rejection(error: &JsonError) -> ApiError {
    match error {
        JsonError::Shape(e) => ApiError::bad_request(format!(
            "the JSON body does not have the expected shape: {}",
            without_quoted_input(&e.to_string())
        )),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// serde's messages quote the offending input; input may be a secret, so
/// quoted parts are dropped from anything echoed back.
fn without_quoted_input(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' || c == '`' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out.chars().take(300).collect()
}

/// Checks `x-oa-control-key` against `OA_CONTROL_KEY` in constant time.
pub struct ControlAuth;

impl FromRequestParts<AppState> for ControlAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Without `OA_CONTROL_KEY` no key is valid: the caller's answer is
        // the same 401 as for a wrong key (the operator is warned at start).
        check_key(
            &parts.headers,
            CONTROL_KEY_HEADER,
            state.config.control_key.as_ref(),
        )?;
        Ok(ControlAuth)
    }
}

/// Who is calling `/api/openclaw/*`: either a per-user API token
/// (`Authorization: Bearer cpk_…`, the token's owner) or the seed's beta auth
/// (`X-OA-Internal-Key` against `OA_INTERNAL_KEY`, then the user from
/// `X-OA-User-Id`).
pub struct ApiUser(pub UserId);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(&parts.headers)? {
            return match state
                .store
                .user_for_token_digest(&api_token_digest(token))
                .await?
            {
                Some(user) => Ok(ApiUser(user)),
                None => Err(ApiError::unauthorized(
                    "the API token is unknown or revoked",
                )),
            };
        }
        // Without `OA_INTERNAL_KEY` only API tokens are valid: a request
        // without one is the same 401 as for a wrong key.
        check_key(
            &parts.headers,
            INTERNAL_KEY_HEADER,
            state.config.internal_key.as_ref(),
        )
        .map_err(|_| {
            ApiError::unauthorized(
                "missing or invalid credentials: send Authorization: Bearer <API token>, \
                 or X-OA-Internal-Key with X-OA-User-Id",
            )
        })?;
        let user = header_text(&parts.headers, USER_ID_HEADER)?.unwrap_or_default();
        UserId::parse(user)
            .map(ApiUser)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// The token of an `Authorization: Bearer` header, if there is one; any
/// other `Authorization` is refused.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| t.starts_with(API_TOKEN_PREFIX) && t.len() <= 128);
    token
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <API token>`"))
}

/// The request's id (for the audit log): the server's own, or a caller's
/// if it is a short plain token; anything else is not recorded.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_plain_id(id, 64))
}

/// Whether `id` is 1 to `max` characters of `A-Z a-z 0-9 - _ . :` (request
/// ids, backup ids: safe to log, store and pass on).
pub fn is_plain_id(id: &str, max: usize) -> bool {
    (1..=max).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// The query's `limit`: `default` when absent, else a whole number from 1 to `max` (400 otherwise).
pub fn limit(query: &HashMap<String, String>, default: u32, max: u32) -> Result<u32, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a whole number from 1 to {max}"))
            }),
    }
}

/// `name` against `expected` in constant time; 401 when it is missing or
/// wrong, and when the server has no key (`None`) to compare with.
fn check_key(
    headers: &HeaderMap,
    name: &str,
    expected: Option<&SecretString>,
) -> Result<(), ApiError> {
    let given = headers.get(name).map(|v| v.as_bytes()).unwrap_or_default();
    let matches = expected.is_some_and(|expected| {
        !given.is_empty() && constant_time_eq(given, expected.expose_secret().as_bytes())
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!("missing or invalid {name}")))
    }
}

/// A header's value as UTF-8 text (user ids may be any printable text,
/// `josé` included); a value that is not UTF-8 is a 400, never skipped.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| ApiError::bad_request(format!("{name} must be UTF-8 text")))
        })
        .transpose()
}

/// A path parameter whose rejection (not UTF-8, malformed) is the envelope.
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathText(p))
            .map_err(|_| ApiError::bad_request("the id in the path is malformed"))
    }
}

/// The query string as a map; a malformed one is a 400.
pub fn query_map(parts_query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    match parts_query {
        None | Some("") => Ok(HashMap::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| ApiError::bad_request("the query string is malformed")),
    }
}

/// The user id in the seed's order: header `x-oa-user-id`, then query
/// `user_id` / `userId`, then body `user_id` / `userId` / `subject` / `user`.
pub fn control_user_id(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Option<&Value>,
) -> Result<UserId, ApiError> {
    let from_header = header_text(headers, USER_ID_HEADER)?.filter(|s| !s.trim().is_empty());
    let from_query = ["user_id", "userId"].iter().find_map(|k| {
        query
            .get(*k)
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    });
    let from_body = body.and_then(|b| {
        ["user_id", "userId", "subject", "user"]
            .iter()
            .find_map(|k| {
                b.get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            })
    });
    let raw = from_header.or(from_query).or(from_body).unwrap_or_default();
    UserId::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The `Idempotency-Key` header, required for ledger writes, scoped to
/// `user`. Keys starting with `clawplane:` are reserved for the server's
/// own jobs.
///
/// The ledger's keys are unique across all users, so the key stored is
/// derived from the user and the caller's key ([`scoped_idempotency_key`]):
/// two users may use the same key, and one user's retry with the same key
/// still replays (or, for another request, is refused with 409).
pub fn idempotency_key(headers: &HeaderMap, user: &UserId) -> Result<IdempotencyKey, ApiError> {
    let raw = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => return Err(IdempotencyKeyError::Missing.into()),
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::from(IdempotencyKeyError::Invalid))?,
    };
    let key = IdempotencyKey::parse(raw)?;
    if key.is_internal() {
        return Err(ApiError::bad_request(
            "Idempotency-Key values starting with 'clawplane:' are reserved",
        ));
    }
    Ok(scoped_idempotency_key(user, &key))
}

/// The stored form of a caller's key: `user:` and the SHA-256 (hex) of the
/// user id and the key, each length-prefixed so no two pairs meet. It is
/// printable, 69 characters whatever the inputs (user ids may be 256 bytes
/// of any script, keys 200), and never starts with `clawplane:`.
pub fn scoped_idempotency_key(user: &UserId, key: &IdempotencyKey) -> IdempotencyKey {
    let (user, key) = (user.as_str(), key.as_str());
    // `api_token_digest` is plain SHA-256 in hex over its input.
    let digest = api_token_digest(&format!("{}:{user}:{}:{key}", user.len(), key.len()));
    IdempotencyKey::parse(&format!("user:{digest}"))
        .expect("`user:` and 64 hex digits are a valid key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_never_echoed() {
        let m = without_quoted_input(r#"invalid type: string "sk-secret", expected u64 at line 1"#);
        assert!(!m.contains("sk-secret"), "{m}");
        assert!(m.contains("expected u64"));
    }

    #[test]
    fn the_user_id_is_looked_up_in_the_seeds_order() {
        let mut headers = HeaderMap::new();
        let mut query = HashMap::new();
        let body = serde_json::json!({"subject": "from-subject", "user": "from-user"});
        assert_eq!(
            control_user_id(&headers, &query, Some(&body))
                .unwrap()
                .as_str(),
            "from-subject"
        );
        let body = serde_json::json!({"userId": "from-body", "subject": "s"});
        assert_eq!(
            control_user_id(&headers, &query, Some(&body))
                .unwrap()
                .as_str(),
            "from-body"
        );
        query.insert("userId".into(), "from-query-camel".into());
        assert_eq!(
            control_user_id(&headers, &query, Some(&body))
                .unwrap()
                .as_str(),
            "from-query-camel"
        );
        query.insert("user_id".into(), "from-query".into());
        assert_eq!(
            control_user_id(&headers, &query, Some(&body))
                .unwrap()
                .as_str(),
            "from-query"
        );
        headers.insert(USER_ID_HEADER, "from-header".parse().unwrap());
        assert_eq!(
            control_user_id(&headers, &query, Some(&body))
                .unwrap()
                .as_str(),
            "from-header"
        );
        let none = control_user_id(&HeaderMap::new(), &HashMap::new(), None).unwrap_err();
        assert_eq!(none.message, "missing user id");
    }

    #[test]
    fn idempotency_keys_are_scoped_to_their_user() {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY_HEADER, "topup-1".parse().unwrap());
        let user = |u: &str| UserId::parse(u).unwrap();
        let ana = idempotency_key(&headers, &user("ana")).unwrap();
        assert_eq!(ana, idempotency_key(&headers, &user("ana")).unwrap());
        assert_ne!(ana, idempotency_key(&headers, &user("bob")).unwrap());
        assert!(ana.as_str().starts_with("user:") && !ana.is_internal());
        // The parts are length-prefixed: moving a colon changes the key.
        let key = |k: &str| IdempotencyKey::parse(k).unwrap();
        assert_ne!(
            scoped_idempotency_key(&user("a:b"), &key("c")),
            scoped_idempotency_key(&user("a"), &key("b:c"))
        );
        let long = scoped_idempotency_key(&user(&"é".repeat(128)), &key(&"k".repeat(200)));
        assert_eq!(long.as_str().len(), 69);
        headers.insert(
            IDEMPOTENCY_KEY_HEADER,
            "clawplane:monthly:x".parse().unwrap(),
        );
        assert!(idempotency_key(&headers, &user("ana")).is_err());
    }
}
