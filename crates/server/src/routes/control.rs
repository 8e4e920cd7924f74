//! The control surface for the operator's other services: the seed's
//! instance, status and secret routes, gated by `x-oa-control-key`, with the
//! user id looked up in the seed's order. Instances never carry a secret
//! field; the secret read is the one place a plaintext leaves the server,
//! and every secret read and write is written to the audit log first.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use clawplane_domain::{InstanceFields, InstanceStatus, RuntimeName, SecretName};
use clawplane_secrets::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::error::{ok, ApiError};
use crate::extract::{control_user_id, limit, query_map, request_id, ControlAuth, JsonBody};
use crate::instances::secrets::{Actor, SecretValue};
use crate::state::AppState;

/// Longest secret value accepted.
const MAX_SECRET_LEN: usize = 16 * 1024;

/// `GET /control/openclaw/instance`: the user's instance or `null`.
#[utoipa::path(get, path = "/control/openclaw/instance", tag = "control",
    params(("user_id" = Option<String>, Query, description = "Or the x-oa-user-id header")),
    responses((status = 200, description = "The instance (no secret field), or null", body = super::schemas::InstanceReply)))]
pub async fn get_instance(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let user = control_user_id(&headers, &query_map(query.as_deref())?, None)?;
    Ok(ok(state.instances.current(&user).await?))
}

/// `POST /control/openclaw/instance` `{user_id, runtime_url?, runtime_name?,
/// cf_*?, r2_bucket_name?}`: creates the user's instance (provisioned as
/// through the API) or returns the live one, then records the given fields.
#[utoipa::path(post, path = "/control/openclaw/instance", tag = "control",
    responses((status = 200, description = "The instance (no secret field)", body = super::schemas::InstanceReply)))]
pub async fn post_instance(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let user = control_user_id(&headers, &query_map(query.as_deref())?, Some(&body))?;
    let fields = instance_fields(&body)?;
    let instance = state.instances.create(&user).await?;
    if fields == InstanceFields::default() {
        return Ok(ok(instance));
    }
    Ok(ok(state
        .store
        .update_instance_fields(instance.id, &fields)
        .await?))
}

fn instance_fields(body: &Value) -> Result<InstanceFields, ApiError> {
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s))
                if !s.trim().is_empty() && s.len() <= 2048 && !s.chars().any(char::is_control) =>
            {
                Ok(Some(s.trim().to_owned()))
            }
            Some(_) => Err(ApiError::bad_request(format!(
                "{key} must be a non-empty string of at most 2048 characters"
            ))),
        }
    };
    let runtime_url = text("runtime_url")?;
    if let Some(url) = &runtime_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::bad_request(
                "runtime_url must be an http:// or https:// URL",
            ));
        }
    }
    let runtime_name = text("runtime_name")?
        .map(|n| RuntimeName::parse(&n).map(|n| n.as_str().to_owned()))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(InstanceFields {
        runtime_url,
        runtime_name,
        cf_account_id: text("cf_account_id")?,
        cf_worker_name: text("cf_worker_name")?,
        cf_worker_id: text("cf_worker_id")?,
        cf_container_app_id: text("cf_container_app_id")?,
        cf_container_app_name: text("cf_container_app_name")?,
        r2_bucket_name: text("r2_bucket_name")?,
        ..Default::default()
    })
}

/// `POST /control/openclaw/instance/status` `{user_id, status, reason?}`:
/// through the transition table (409 when not allowed). `deleted` deletes
/// as the API does; `provisioning` (from `error`) provisions again. A move
/// into `provisioning` or `ready` needs credits (402) and room (503), as the
/// API's create and start do.
#[utoipa::path(post, path = "/control/openclaw/instance/status", tag = "control",
    responses((status = 200, description = "The instance", body = super::schemas::InstanceReply), (status = 402, description = "No credits left"), (status = 409, description = "Transition not allowed"), (status = 503, description = "The host is full")))]
pub async fn post_status(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let user = control_user_id(&headers, &query_map(query.as_deref())?, Some(&body))?;
    let status = body.get("status").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("status is required: provisioning, ready, stopped, error or deleted")
    })?;
    let status = InstanceStatus::parse(status).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ApiError::bad_request("reason must be a string")),
    };
    Ok(ok(state
        .instances
        .set_status_by_control(&user, status, reason)
        .await?))
}

fn secret_name(raw: Option<&str>) -> Result<SecretName, ApiError> {
    raw.and_then(SecretName::parse).ok_or_else(|| {
        ApiError::bad_request("name must be service_token, gateway_token or provider_keys")
    })
}

/// The audit log's actor for a control request.
fn control_actor(headers: &HeaderMap) -> Actor<'_> {
    Actor {
        kind: "control",
        request_id: request_id(headers),
    }
}

/// `GET /control/openclaw/instance/secret?user_id=&name=`: the plaintext of
/// one secret of the user's live instance, audited before it is read.
#[utoipa::path(get, path = "/control/openclaw/instance/secret", tag = "control",
    params(("name" = String, Query, description = "service_token, gateway_token or provider_keys")),
    responses((status = 200, description = "`{name, value}`", body = super::schemas::SecretReply), (status = 404, description = "Not set")))]
pub async fn get_secret(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let user = control_user_id(&headers, &query, None)?;
    let name = secret_name(
        query
            .get("name")
            .or_else(|| query.get("key"))
            .map(String::as_str),
    )?;
    let value = state
        .instances
        .read_secret(&user, name, control_actor(&headers))
        .await?;
    Ok(ok(
        json!({ "name": name.as_str(), "value": value.expose_secret() }),
    ))
}

/// `POST /control/openclaw/instance/secret` `{user_id, name, value}`:
/// encrypts and stores one secret (audited). `provider_keys` is a JSON
/// object of environment variable names and values.
#[utoipa::path(post, path = "/control/openclaw/instance/secret", tag = "control",
    responses((status = 200, description = "`{name, stored: true}`", body = super::schemas::SecretStoredReply)))]
pub async fn post_secret(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let user = control_user_id(&headers, &query_map(query.as_deref())?, Some(&body))?;
    let name = secret_name(
        body.get("name")
            .or_else(|| body.get("key"))
            .and_then(Value::as_str),
    )?;
    let value = match body.get("value") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SECRET_LEN => s.clone(),
        Some(Value::Object(o)) if name == SecretName::ProviderKeys => {
            Value::Object(o.clone()).to_string()
        }
        _ => {
            return Err(ApiError::bad_request(
                "value must be a non-empty string of at most 16 KiB",
            ))
        }
    };
    let value = if name == SecretName::ProviderKeys {
        let keys: BTreeMap<String, SecretString> = clawplane_http::json::from_str(&value)
            .map_err(|_| {
                ApiError::bad_request(
                    "provider_keys must be a JSON object of names and string values, each name once",
                )
            })?;
        SecretValue::ProviderKeys(keys)
    } else {
        SecretValue::Token(SecretString::from(value))
    };
    state
        .instances
        .write_secret(&user, name, value, control_actor(&headers))
        .await?;
    Ok(ok(json!({ "name": name.as_str(), "stored": true })))
}

/// `GET /control/openclaw/audit?user_id=&limit=`: the user's audit records, newest first.
#[utoipa::path(get, path = "/control/openclaw/audit", tag = "control",
    responses((status = 200, description = "`{entries: [...]}`", body = super::schemas::AuditReply)))]
pub async fn get_audit(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let user = control_user_id(&headers, &query, None)?;
    let limit = limit(&query, 100, 1000)?;
    Ok(ok(
        json!({ "entries": state.store.audit_entries(&user, limit).await? }),
    ))
}
