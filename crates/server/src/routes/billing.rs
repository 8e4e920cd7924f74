//! Billing routes: the seed's summary on both surfaces, and on the control
//! surface the ledger writes (grant, burn, reverse) with `Idempotency-Key`,
//! scoped to the user the write is for (two users may use the same key).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{Datelike, Utc};
use clawplane_billing::EntryRequest;
use clawplane_domain::MicroUsd;
use serde_json::Value;

use crate::error::{ok, ApiError};
use crate::extract::{
    control_user_id, idempotency_key, limit, query_map, ApiUser, ControlAuth, JsonBody,
};
use crate::state::AppState;

/// `GET /api/openclaw/billing/summary`: the caller's balance, month-to-date
/// usage, next grant and recent entries.
#[utoipa::path(get, path = "/api/openclaw/billing/summary", tag = "billing",
    responses((status = 200, description = "`{user_id, balance_usd, month_to_date_usage_usd, next_monthly_grant, recent_entries, ...}`", body = super::schemas::SummaryReply)))]
pub async fn get_api_summary(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Response, ApiError> {
    Ok(ok(state.ledger.summary(&user, Utc::now()).await?))
}

/// `GET /api/openclaw/billing/ledger?before=&limit=`: the caller's entries, newest first.
#[utoipa::path(get, path = "/api/openclaw/billing/ledger", tag = "billing",
    params(("before" = Option<String>, Query, description = "Cursor from the previous page"), ("limit" = Option<u32>, Query, description = "1-200, default 50")),
    responses((status = 200, description = "`{entries, next_cursor}`", body = super::schemas::LedgerPageReply)))]
pub async fn get_api_ledger(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let limit = limit(&query, 50, 200)?;
    let page = state
        .ledger
        .entries(&user, query.get("before").map(String::as_str), limit)
        .await
        .map_err(|e| match e {
            clawplane_billing::BillingError::EntryNotFound => {
                ApiError::bad_request("before must be a cursor from a previous page")
            }
            other => other.into(),
        })?;
    Ok(ok(page))
}

/// `GET /api/openclaw/billing/usage?from=&to=`: the caller's model spend
/// (what the model proxy billed) by day and model; days are `YYYY-MM-DD`
/// (UTC), both inclusive, at most 92 of them; by default this month so far.
#[utoipa::path(get, path = "/api/openclaw/billing/usage", tag = "billing",
    params(("from" = Option<String>, Query, description = "First day, YYYY-MM-DD (default: the 1st of this month)"), ("to" = Option<String>, Query, description = "Last day, YYYY-MM-DD (default: today)")),
    responses((status = 200, description = "`{from, to, days: [{day, model, requests, input_tokens, output_tokens, cached_tokens, cost_usd, cost_micro_usd}], total_usd, total_micro_usd, truncated}`", body = super::schemas::UsageReply)))]
pub async fn get_api_usage(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let today = Utc::now().date_naive();
    let day = |name: &str, default: chrono::NaiveDate| match query.get(name) {
        None => Ok(default),
        Some(text) => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::bad_request(format!("{name} must be a day, YYYY-MM-DD"))),
    };
    let to = day("to", today)?;
    let from = day("from", today.with_day(1).unwrap_or(today))?;
    if to < from {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    if (to - from).num_days() >= clawplane_billing::usage::MAX_DAYS {
        return Err(ApiError::bad_request(format!(
            "at most {} days at once",
            clawplane_billing::usage::MAX_DAYS
        )));
    }
    Ok(ok(state.ledger.model_usage(&user, from, to).await?))
}

/// `GET /control/openclaw/billing/summary`: the seed's `{user_id, balance_usd}` and more.
#[utoipa::path(get, path = "/control/openclaw/billing/summary", tag = "control",
    responses((status = 200, description = "The user's billing summary", body = super::schemas::SummaryReply)))]
pub async fn get_control_summary(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let user = control_user_id(&headers, &query, None)?;
    Ok(ok(state.ledger.summary(&user, Utc::now()).await?))
}

/// `POST /control/openclaw/billing/grant` `{user_id, amount_usd, source?, meta?}`.
#[utoipa::path(post, path = "/control/openclaw/billing/grant", tag = "control",
    params(("Idempotency-Key" = String, Header, description = "Required")),
    responses((status = 200, description = "`{user_id, balance_usd, entry, replayed}`", body = super::schemas::LedgerWriteReply)))]
pub async fn post_control_grant(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let request = entry_request(&headers, query.as_deref(), &body, "manual")?;
    let result = state.ledger.grant(request).await;
    state.metrics.ledger("grant", &result);
    Ok(ok(result?))
}

/// `POST /control/openclaw/billing/burn` `{user_id, amount_usd, source?, meta?}`;
/// 402 when the balance would go below the floor.
#[utoipa::path(post, path = "/control/openclaw/billing/burn", tag = "control",
    params(("Idempotency-Key" = String, Header, description = "Required")),
    responses((status = 200, description = "`{user_id, balance_usd, entry, replayed}`", body = super::schemas::LedgerWriteReply), (status = 402, description = "Insufficient credits")))]
pub async fn post_control_burn(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let request = entry_request(&headers, query.as_deref(), &body, "usage")?;
    let result = state.ledger.burn(request).await;
    state.metrics.ledger("burn", &result);
    Ok(ok(result?))
}

/// `POST /control/openclaw/billing/reverse` `{user_id, entry_id, reason?}`.
#[utoipa::path(post, path = "/control/openclaw/billing/reverse", tag = "control",
    params(("Idempotency-Key" = String, Header, description = "Required")),
    responses((status = 200, description = "The reversal", body = super::schemas::LedgerWriteReply)))]
pub async fn post_control_reverse(
    State(state): State<AppState>,
    _auth: ControlAuth,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let query = query_map(query.as_deref())?;
    let user = control_user_id(&headers, &query, Some(&body))?;
    let key = idempotency_key(&headers, &user)?;
    let entry_id = body
        .get("entry_id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("entry_id must be the id of a ledger entry"))?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("correction");
    let result = state.ledger.reverse(&user, entry_id, key, reason).await;
    state.metrics.ledger("reverse", &result);
    Ok(ok(result?))
}

/// Parses the common fields of a grant or a burn.
fn entry_request(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Value,
    default_source: &str,
) -> Result<EntryRequest, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let query = query_map(query)?;
    let user_id = control_user_id(headers, &query, Some(body))?;
    let idempotency_key = idempotency_key(headers, &user_id)?;
    let amount = match body.get("amount_usd") {
        None | Some(Value::Null) => return Err(ApiError::bad_request("amount_usd is required")),
        Some(v) => MicroUsd::from_json(v)?,
    };
    let source = match body.get("source") {
        None | Some(Value::Null) => default_source.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("source must be a string")),
    };
    let meta = body.get("meta").cloned().unwrap_or(Value::Null);
    Ok(EntryRequest {
        user_id,
        amount,
        source,
        idempotency_key,
        meta,
    })
}
