//! The caller's instance on `/api/openclaw`: read, create (provisioning
//! starts at once and a second call returns the same instance), delete, and
//! the model provider keys (names listed, values never returned).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use clawplane_secrets::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ok, ApiError};
use crate::extract::{query_map, ApiUser, JsonBody};
use crate::state::AppState;

/// `GET /api/openclaw/instance`: the caller's instance (a deleted one when
/// that is the latest), or `null`. No secret field is ever included.
#[utoipa::path(get, path = "/api/openclaw/instance", tag = "instance",
    responses((status = 200, description = "The instance, or null", body = super::schemas::InstanceReply), (status = 401, description = "Missing or wrong credentials")))]
pub async fn get_instance(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.current(&user).await?))
}

/// `POST /api/openclaw/instance`: creates the caller's instance in
/// `provisioning` (or returns the live one; one in `error` is provisioned again).
#[utoipa::path(post, path = "/api/openclaw/instance", tag = "instance",
    responses((status = 200, description = "The instance, provisioning or as it is", body = super::schemas::InstanceReply), (status = 402, description = "No credits left")))]
pub async fn post_instance(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.create(&user).await?))
}

/// `DELETE /api/openclaw/instance[?backup=required]`: a protective backup,
/// the runtime stopped and removed, the instance `deleted`. Backups are
/// kept. A runtime that is dead cannot back up: the delete goes on and
/// `backup` is `{fresh: false, kept, note}` naming the newest backup kept,
/// unless `backup=required` asks for a fresh one (then 409 `backup_failed`).
#[utoipa::path(delete, path = "/api/openclaw/instance", tag = "instance",
    params(("backup" = Option<String>, Query, description = "`required`: refuse unless a fresh protective backup is taken")),
    responses((status = 200, description = "The deleted instance and its protective backup", body = super::schemas::DeletedReply), (status = 404, description = "No live instance"), (status = 409, description = "The protective backup failed; nothing was deleted")))]
pub async fn delete_instance(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let required = match query_map(query.as_deref())?
        .get("backup")
        .map(String::as_str)
    {
        None => false,
        Some("required") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "backup must be `required` (or left out)",
            ))
        }
    };
    let (instance, backup) = state.instances.delete_with(&user, required).await?;
    Ok(ok(json!({ "instance": instance, "backup": backup })))
}

/// `GET /api/openclaw/provider-keys`: the names of the stored keys.
#[utoipa::path(get, path = "/api/openclaw/provider-keys", tag = "instance",
    responses((status = 200, description = "`{names: [...]}`; values are never returned", body = super::schemas::KeyNamesReply)))]
pub async fn get_provider_keys(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    let names = state.instances.provider_key_names(&user).await?;
    Ok(ok(json!({ "names": names })))
}

/// The body of `PUT /api/openclaw/provider-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeysBody {
    /// Environment variable names (`OPENAI_API_KEY`...) and their values.
    #[schema(value_type = BTreeMap<String, String>)]
    keys: BTreeMap<String, SecretString>,
}

/// `PUT /api/openclaw/provider-keys` `{keys: {NAME: value}}`: replaces the
/// keys (encrypted as `provider_keys`); a running runtime is restarted in the
/// background so its gateway gets them.
#[utoipa::path(put, path = "/api/openclaw/provider-keys", tag = "instance", request_body = ProviderKeysBody,
    responses((status = 200, description = "`{names, restarting}`", body = super::schemas::KeysSetReply)))]
pub async fn put_provider_keys(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    JsonBody(body): JsonBody<ProviderKeysBody>,
) -> Result<Response, ApiError> {
    if body.keys.is_empty() {
        return Err(ApiError::bad_request(
            "keys must name at least one key; DELETE removes them all",
        ));
    }
    Ok(ok(state
        .instances
        .set_provider_keys(&user, Some(body.keys))
        .await?))
}

/// `DELETE /api/openclaw/provider-keys`: removes every stored key.
#[utoipa::path(delete, path = "/api/openclaw/provider-keys", tag = "instance",
    responses((status = 200, description = "`{names: [], restarting}`", body = super::schemas::KeysSetReply)))]
pub async fn delete_provider_keys(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.instances.set_provider_keys(&user, None).await?))
}
