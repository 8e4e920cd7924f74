//! The console's pages. Each reads what it shows through the same services
//! as the API; a runtime that does not answer is a sentence on the page.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use clawplane_domain::{Instance, InstanceStatus, MicroUsd};
use clawplane_http::v1;
use clawplane_secrets::api_token_digest;
use clawplane_store::console::SessionSummary;
use clawplane_store::PassKind;
use serde_json::Value;

use super::session::{pre_session_csrf, Session, SESSION_COOKIE};
use super::view::{self, age_ms, badge, last_backup, text, usd, when, when_ms};
use super::{
    notice_text, render, Chrome, ConsoleError, LINKS, POLL_DEVICES_MS, POLL_PROVISIONING_MS,
    POLL_STATUS_MS,
};
use crate::instances::InstanceError;
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

pub(super) fn chrome(s: &Session, current: &'static str, q: &HashMap<String, String>) -> Chrome {
    Chrome {
        label: s.label.clone(),
        sign_out: !s.single_user,
        poll: None,
        csrf: s.csrf.clone(),
        links: LINKS
            .iter()
            .map(|(href, label)| (*href, *label, *href == current))
            .collect(),
        notice: notice_text(q.get("notice")),
        problem: None,
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignIn<'a> {
    heading: &'a str,
    action: &'a str,
    sign_up: bool,
    csrf: String,
    email: String,
    problem: Option<String>,
}

/// Renders the sign-in or sign-up form (also after a failed attempt).
pub fn sign_form(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    sign_up: bool,
    email: String,
    problem: Option<String>,
) -> Result<Response, ConsoleError> {
    let (jar, csrf) = pre_session_csrf(&state.console.pre_session, jar, headers);
    let page = SignIn {
        heading: if sign_up { "Sign up" } else { "Sign in" },
        action: if sign_up {
            "/console/sign-up"
        } else {
            "/console/sign-in"
        },
        sign_up,
        csrf,
        email,
        problem,
    };
    Ok((jar, render(&page)?).into_response())
}

/// In single-user mode there is nobody to sign in: straight to the console.
pub fn single_user_mode(state: &AppState) -> Option<Response> {
    state
        .config
        .console_user
        .is_some()
        .then(|| axum::response::Redirect::to("/console").into_response())
}

/// `GET /console/sign-in`.
pub async fn sign_in_page(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if let Some(to_console) = single_user_mode(&state) {
        return Ok(to_console);
    }
    sign_form(&state, jar, &headers, false, String::new(), None)
}

/// `GET /console/sign-up`.
pub async fn sign_up_page(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if let Some(to_console) = single_user_mode(&state) {
        return Ok(to_console);
    }
    sign_form(&state, jar, &headers, true, String::new(), None)
}

struct RuntimeCard {
    state: String,
    last_backup: String,
    instance_type: String,
    version: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    chrome: Chrome,
    status_class: &'static str,
    status_label: &'static str,
    runtime_name: Option<String>,
    updated: Option<String>,
    reason: Option<String>,
    runtime: Option<RuntimeCard>,
    runtime_note: String,
    /// The gateway's address through the ingress, when it is ready.
    open_url: Option<String>,
}

/// The runtime's status, or what to tell the person instead.
async fn runtime_status(state: &AppState, s: &Session) -> Result<v1::Status, String> {
    let instance = state
        .instances
        .live(&s.user)
        .await
        .map_err(|_| "Your instance has no runtime yet.".to_owned())?;
    if instance.status == InstanceStatus::Provisioning {
        return Err("Your instance is still being created.".into());
    }
    state
        .instances
        .runtime_status(&s.user)
        .await
        .map_err(|e| match e {
            InstanceError::Runtime(_) => "The runtime did not answer. It may be restarting: reload this page in a minute, and if it persists restart the gateway on the Usage page.".to_owned(),
            _ => "Your instance has no runtime yet.".to_owned(),
        })
}

/// `GET /console`: the instance and runtime cards.
pub async fn overview(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    let instance = state.instances.current(&s.user).await?;
    let (status_class, status_label) = badge(instance.as_ref());
    let (runtime, runtime_note) = match runtime_status(&state, &s).await {
        Ok(st) => (
            Some(RuntimeCard {
                state: st.gateway.state.to_string(),
                last_backup: last_backup(&st),
                instance_type: st.instance_type,
                version: st.version,
            }),
            String::new(),
        ),
        Err(note) => (None, note),
    };
    render(&Overview {
        chrome: chrome(&s, "/console", &q).polling(Some(POLL_STATUS_MS)),
        status_class,
        status_label,
        runtime_name: instance.as_ref().and_then(|i| i.runtime_name.clone()),
        updated: instance.as_ref().map(|i| when(i.updated_at)),
        reason: instance.as_ref().and_then(|i| i.status_reason.clone()),
        runtime,
        runtime_note,
        open_url: instance
            .as_ref()
            .filter(|i| i.status == InstanceStatus::Ready)
            .and_then(|i| i.runtime_name.as_deref())
            .map(|name| view::gateway_url(name, &state.config.ingress.domain, &headers)),
    })
}

#[derive(Template)]
#[template(path = "create.html")]
struct Create {
    chrome: Chrome,
    steps: Vec<(&'static str, &'static str, bool)>,
    status_class: &'static str,
    status_label: &'static str,
    reason: Option<String>,
    can_create: bool,
    retry: bool,
    refresh: bool,
}

/// `GET /console/create`: the stepper, the create (or retry) button.
pub async fn create(
    State(state): State<AppState>,
    s: Session,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    let instance: Option<Instance> = state.instances.current(&s.user).await?;
    let status = instance.as_ref().map(|i| i.status);
    let (status_class, status_label) = badge(instance.as_ref());
    let failed = status == Some(InstanceStatus::Error);
    render(&Create {
        chrome: chrome(&s, "/console/create", &q).polling(
            (status == Some(InstanceStatus::Provisioning)).then_some(POLL_PROVISIONING_MS),
        ),
        steps: view::steps(instance.as_ref())
            .into_iter()
            .map(|(label, state)| (label, state, state == "current"))
            .collect(),
        status_class,
        status_label,
        reason: failed
            .then(|| instance.as_ref().and_then(|i| i.status_reason.clone()))
            .flatten()
            .map(|r| {
                format!(
                    "Provisioning failed: {r}. Retry below; if it fails again, tell the operator."
                )
            }),
        can_create: matches!(
            status,
            None | Some(InstanceStatus::Error) | Some(InstanceStatus::Deleted)
        ),
        retry: failed,
        refresh: status == Some(InstanceStatus::Provisioning),
    })
}

struct DeviceRow {
    id: String,
    name: String,
    platform: String,
    mode: String,
    address: String,
    age: String,
}

#[derive(Template)]
#[template(path = "security.html")]
struct Security {
    chrome: Chrome,
    unavailable: Option<String>,
    pending: Vec<DeviceRow>,
    paired: Vec<DeviceRow>,
}

/// Rows of OpenClaw's device records (`time_key`: when, in milliseconds).
fn device_rows(list: &[Value], time_key: &str) -> Vec<DeviceRow> {
    list.iter()
        .map(|d| DeviceRow {
            id: text(d, "requestId"),
            name: text(d, "displayName"),
            platform: text(d, "platform"),
            mode: text(d, "clientMode"),
            address: text(d, "remoteIp"),
            age: age_ms(d[time_key].as_i64()),
        })
        .collect()
}

/// `GET /console/security`: pending requests and paired devices.
pub async fn security(
    State(state): State<AppState>,
    s: Session,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    let devices = match state.instances.devices(&s.user).await {
        Ok(list) => Ok(list),
        Err(InstanceError::Runtime(_)) => Err(
            "The runtime did not answer, so devices cannot be listed now. Reload in a minute."
                .to_owned(),
        ),
        Err(_) => Err("Create your instance first: devices pair with its gateway.".to_owned()),
    };
    let (unavailable, pending, paired) = match devices {
        Ok(d) => (
            None,
            device_rows(&d.pending, "ts"),
            device_rows(&d.paired, "approvedAtMs"),
        ),
        Err(note) => (Some(note), Vec::new(), Vec::new()),
    };
    render(&Security {
        chrome: chrome(&s, "/console/security", &q).polling(Some(POLL_DEVICES_MS)),
        unavailable,
        pending,
        paired,
    })
}

struct BackupRow {
    id: String,
    at: String,
    size: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct Usage {
    chrome: Chrome,
    unavailable: Option<String>,
    /// Why the instance is stopped or failed (the billing job says so).
    reason: Option<String>,
    state: String,
    version: String,
    last_backup: String,
    actions: Vec<(&'static str, &'static str)>,
    backups: Vec<BackupRow>,
    /// The gateway's isolation and limits, in words.
    isolation: Option<String>,
    /// Why the runtime stopped the gateway itself (its disk quota).
    cell_reason: Option<String>,
}

/// The cell part of a runtime status, for people: isolation, use and limits.
fn isolation_text(status: &v1::Status) -> String {
    let cell = &status.cell;
    if !cell.is_isolated() {
        return "Not isolated: the operator runs this gateway without a cell, with the service's own access to its host.".to_owned();
    }
    let limits = cell.limits.as_ref();
    let of = |used: Option<u64>, limit: Option<u64>| match (used, limit) {
        (Some(u), Some(l)) => format!("{} of {}", view::size(u), view::size(l)),
        (None, Some(l)) => format!("at most {}", view::size(l)),
        _ => "-".to_owned(),
    };
    format!(
        "Isolated in a cell of its own (uid {}): memory {}, disk {}, {} processes at most ({} now), {} CPUs, internet access {}.",
        cell.uid.unwrap_or(0),
        of(cell.memory_bytes, limits.map(|l| l.memory_bytes)),
        of(cell.disk_bytes, limits.map(|l| l.disk_quota_bytes)),
        limits.map_or(0, |l| l.pids),
        cell.processes.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        limits.map_or(0.0, |l| l.cpus),
        if cell.has_public_egress() { "on" } else { "off" },
    )
}

/// `GET /console/usage`: gateway, backups, actions.
pub async fn usage(
    State(state): State<AppState>,
    s: Session,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    let status = runtime_status(&state, &s).await;
    let reason = state
        .instances
        .current(&s.user)
        .await?
        .filter(|i| matches!(i.status, InstanceStatus::Stopped | InstanceStatus::Error))
        .and_then(|i| i.status_reason);
    let backups = state
        .instances
        .backups(&s.user)
        .await
        .map(|list| list.backups)
        .unwrap_or_default();
    let gateway = status.as_ref().map(|st| st.gateway.state);
    let actions = match gateway {
        Ok(v1::GatewayState::Running) => vec![
            ("backup", "Back up now"),
            ("restart", "Restart gateway"),
            ("stop", "Stop gateway"),
        ],
        Ok(_) => vec![("backup", "Back up now"), ("start", "Start gateway")],
        Err(_) => Vec::new(),
    };
    let rows = backups
        .into_iter()
        .map(|b| BackupRow {
            id: b.id,
            at: when(b.created_at),
            size: view::size(b.bytes),
        })
        .collect();
    render(&Usage {
        chrome: chrome(&s, "/console/usage", &q).polling(Some(POLL_STATUS_MS)),
        unavailable: status.as_ref().err().cloned(),
        reason,
        state: gateway.map_or_else(|_| "unknown".into(), |g| g.to_string()),
        version: status
            .as_ref()
            .map(|st| st.version.clone())
            .unwrap_or_else(|_| "-".into()),
        last_backup: status
            .as_ref()
            .map(last_backup)
            .unwrap_or_else(|_| "-".into()),
        actions,
        backups: rows,
        isolation: status.as_ref().ok().map(isolation_text),
        cell_reason: status
            .as_ref()
            .ok()
            .and_then(|st| st.cell.stopped_reason.clone()),
    })
}

struct EntryRow {
    at: String,
    kind: String,
    source: String,
    amount: String,
    balance_after: String,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct Billing {
    chrome: Chrome,
    balance: String,
    month_usage: String,
    next_grant: String,
    model_days: Vec<ModelDayRow>,
    model_total: String,
    entries: Vec<EntryRow>,
    next_page: Option<String>,
}

/// One day's spend on one included model.
struct ModelDayRow {
    day: String,
    model: String,
    requests: u64,
    tokens: String,
    cost: String,
}

/// `GET /console/billing?before=`: balance, usage, model spend this month
/// by day and model, the ledger page by page.
pub async fn billing(
    State(state): State<AppState>,
    s: Session,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    let summary = state.ledger.summary(&s.user, Utc::now()).await?;
    let today = Utc::now().date_naive();
    let month_start = chrono::Datelike::with_day(&today, 1).unwrap_or(today);
    let usage = state
        .ledger
        .model_usage(&s.user, month_start, today)
        .await?;
    let model_days = usage
        .days
        .iter()
        .rev()
        .map(|d| ModelDayRow {
            day: d.day.clone(),
            model: d.model.clone(),
            requests: d.requests,
            tokens: format!(
                "{} in ({} cached), {} out",
                d.input_tokens, d.cached_tokens, d.output_tokens
            ),
            cost: usd(MicroUsd::from_micros(d.cost_micro_usd)),
        })
        .collect();
    let before = q
        .get("before")
        .map(String::as_str)
        .filter(|b| b.len() <= 64 && b.chars().all(|c| c.is_ascii_alphanumeric()));
    let page = state
        .ledger
        .entries(&s.user, before, 25)
        .await
        .map_err(|_| {
            ConsoleError::bad_request(
                "That ledger page does not exist. Start again from the Billing page.",
            )
        })?;
    let page = serde_json::to_value(&page).unwrap_or(Value::Null);
    let entries = page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| EntryRow {
            at: when_ms(e["created_at"].as_i64()),
            kind: text(e, "kind"),
            source: text(e, "source"),
            amount: usd(MicroUsd::from_micros(
                e["amount_micro_usd"].as_i64().unwrap_or(0),
            )),
            balance_after: usd(MicroUsd::from_micros(
                e["balance_after_micro_usd"].as_i64().unwrap_or(0),
            )),
        })
        .collect();
    render(&Billing {
        chrome: chrome(&s, "/console/billing", &q),
        balance: usd(MicroUsd::from_micros(summary.balance_micro_usd)),
        month_usage: usd(MicroUsd::from_micros(summary.month_to_date_usage_micro_usd)),
        next_grant: match &summary.next_monthly_grant {
            Some(g) => format!(
                "{} on {}",
                usd(MicroUsd::from_micros(g.amount_micro_usd)),
                when_ms(Some(g.at))
            ),
            None => "none (monthly grants are off)".into(),
        },
        entries,
        next_page: page["next_cursor"].as_str().map(str::to_owned),
        model_days,
        model_total: usd(MicroUsd::from_micros(usage.total_micro_usd)),
    })
}

struct TokenRow {
    id: String,
    name: String,
    hint: String,
    created: String,
    status: &'static str,
    live: bool,
}

/// The notice code after "Sign out everywhere else".
pub const SIGNED_OUT_ELSEWHERE: &str = "signed-out-elsewhere";

/// Most sessions the Account page lists.
pub const MAX_LISTED_SESSIONS: u32 = 50;

/// One signed-in session as the Account page shows it.
struct SessionRow {
    client: String,
    address: String,
    began: String,
    ends: String,
    current: bool,
}

impl SessionRow {
    fn of(s: SessionSummary) -> Self {
        SessionRow {
            client: s.client.unwrap_or_else(|| "Unknown browser".to_owned()),
            address: s.address.unwrap_or_else(|| "an unknown address".to_owned()),
            began: when(s.created_at),
            ends: when(s.expires_at),
            current: s.current,
        }
    }
}

#[derive(Template)]
#[template(path = "account.html")]
pub(super) struct AccountPage {
    pub(super) chrome: Chrome,
    pub(super) new_token: Option<String>,
    tokens: Vec<TokenRow>,
    key_names: Option<Vec<String>>,
    user_id: String,
    /// The runtime name (or id) of an instance that can be deleted.
    deletable: Option<String>,
    /// The account's live sessions, newest first (none in single-user mode).
    sessions: Vec<SessionRow>,
    /// Whether the list stops at [`MAX_LISTED_SESSIONS`].
    more_sessions: bool,
    /// The account's live door cookies (sign-ins at its gateway).
    door_cookies: u64,
}

/// The account page, with a token just created shown once; `jar` tells
/// which of the listed sessions is this browser's.
pub(super) async fn account_page(
    state: &AppState,
    s: &Session,
    jar: &CookieJar,
    q: &HashMap<String, String>,
    new_token: Option<String>,
) -> Result<AccountPage, ConsoleError> {
    let tokens = state
        .store
        .api_tokens(&s.user)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name.as_str().to_owned(),
            hint: t.hint,
            created: when(t.created_at),
            status: if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            live: t.revoked_at.is_none(),
        })
        .collect();
    let key_names = state.instances.provider_key_names(&s.user).await.ok();
    let deletable = state
        .instances
        .current(&s.user)
        .await?
        .filter(|i| i.status != InstanceStatus::Deleted)
        .map(|i| i.runtime_name.unwrap_or_else(|| i.id.to_string()));
    let mut chrome = chrome(s, "/console/account", q);
    if q.get("notice").map(String::as_str) == Some(SIGNED_OUT_ELSEWHERE) {
        chrome.notice = Some(
            "Every other session of your account has ended, and every gateway sign-in: \
             open OpenClaw again from the Overview."
                .to_owned(),
        );
    }
    let (sessions, door_cookies) = if s.single_user {
        (Vec::new(), 0)
    } else {
        let current = jar.get(SESSION_COOKIE).map(|c| api_token_digest(c.value()));
        let listed = state
            .store
            .live_sessions(&s.user, current.as_deref(), MAX_LISTED_SESSIONS)
            .await?;
        let doors = state
            .store
            .live_door_passes(&s.user, PassKind::Door)
            .await?;
        (listed.into_iter().map(SessionRow::of).collect(), doors)
    };
    Ok(AccountPage {
        chrome,
        new_token,
        tokens,
        key_names,
        user_id: s.user.to_string(),
        deletable,
        more_sessions: sessions.len() >= MAX_LISTED_SESSIONS as usize,
        sessions,
        door_cookies,
    })
}

/// `GET /console/account`: API tokens, provider keys, signed-in sessions.
pub async fn account(
    State(state): State<AppState>,
    s: Session,
    jar: CookieJar,
    Query(q): Params,
) -> Result<Response, ConsoleError> {
    render(&account_page(&state, &s, &jar, &q, None).await?)
}
