//! The caller's API tokens: create (the token is shown once, only a digest
//! is kept), list (a hint, never the token), revoke.

use axum::extract::State;
use axum::response::Response;
use clawplane_domain::TokenName;
use clawplane_secrets::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ok, ApiError};
use crate::extract::{ApiUser, JsonBody, PathText};
use crate::state::AppState;

/// `GET /api/openclaw/tokens`: the caller's tokens, newest first.
#[utoipa::path(get, path = "/api/openclaw/tokens", tag = "tokens",
    responses((status = 200, description = "`{tokens: [...]}` without the tokens themselves", body = super::schemas::TokensReply)))]
pub async fn get_tokens(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(
        json!({ "tokens": state.store.api_tokens(&user).await? }),
    ))
}

/// The body of a token creation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// A label, 1-64 characters.
    name: String,
}

/// `POST /api/openclaw/tokens` `{name}`: a new token, in this reply only.
#[utoipa::path(post, path = "/api/openclaw/tokens", tag = "tokens", request_body = NewTokenBody,
    responses((status = 200, description = "`{token, api_token}`: keep `token`, it is not shown again", body = super::schemas::NewTokenReply)))]
pub async fn post_token(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    JsonBody(body): JsonBody<NewTokenBody>,
) -> Result<Response, ApiError> {
    let name = TokenName::parse(&body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (token, record) = crate::api_tokens::issue(&state.store, &user, &name).await?;
    Ok(ok(
        json!({ "token": token.expose_secret(), "api_token": record }),
    ))
}

/// `DELETE /api/openclaw/tokens/{id}`: revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/openclaw/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 200, description = "The revoked token", body = super::schemas::RevokedTokenReply), (status = 404, description = "No such token of the caller")))]
pub async fn delete_token(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    PathText(raw): PathText,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::not_found("API token not found"))?;
    let record = state.store.revoke_api_token(&user, id).await?;
    tracing::info!(token_id = %record.id, "API token revoked");
    Ok(ok(json!({ "api_token": record })))
}
