//! The chat page: `GET /console/chat` shows a message form (or why there is
//! none yet), `POST /console/chat` sends the message to the user's agent
//! (see [`answer`]) and shows its answer.
//!
//! Without JavaScript the form posts, the console waits for the whole
//! answer and renders the page with the message and the answer. With it,
//! `console.js` sends the form with `Accept: text/event-stream` and gets the
//! answer as it is written, in the small event stream of
//! [`sse`]. One conversation per user: the gateway keeps it
//! (see [`answer::conversation`]); the page shows the turns of this
//! visit. Every problem is a sentence, in the page or in the stream.

pub mod answer;
pub mod problem;
pub mod sse;

use std::collections::HashMap;
use std::convert::Infallible;

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clawplane_domain::InstanceStatus;

use self::answer::{Answer, MAX_MESSAGE_BYTES};
use self::problem::{Problem, ACCOUNT_KEYS, NO_KEYS};
use super::session::Session;
use super::{notice_text, render, Chrome, ConsoleError};
use crate::state::AppState;

/// The largest form accepted: the message percent-encoded (three bytes for
/// each byte at worst) and the form token.
const MAX_FORM_BYTES: usize = 3 * MAX_MESSAGE_BYTES + 1024;

/// One exchange shown on the page.
pub struct Turn {
    you: String,
    agent: String,
    problem: Option<String>,
    problem_href: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    /// Why there is no form yet: a sentence, a link and its label.
    unavailable: Option<(&'static str, &'static str, &'static str)>,
    /// No provider key is stored: say how to add one.
    no_keys: bool,
    no_keys_text: &'static str,
    /// With included models: what the agent answers with and who pays.
    included: Option<String>,
    account_keys: &'static str,
    turns: Vec<Turn>,
    /// The message to put back in the box (after a refusal).
    draft: String,
    max_message: usize,
}

/// `GET /console/chat`.
pub async fn page(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    render(
        &chat_page(
            &state,
            &s,
            notice_text(q.get("notice")),
            Vec::new(),
            String::new(),
        )
        .await?,
    )
}

async fn chat_page(
    state: &AppState,
    s: &Session,
    notice: Option<String>,
    turns: Vec<Turn>,
    draft: String,
) -> Result<ChatPage, ConsoleError> {
    let status = state.instances.current(&s.user).await?.map(|i| i.status);
    let unavailable = match status {
        Some(InstanceStatus::Ready) => None,
        None | Some(InstanceStatus::Deleted) => Some((
            "You have no instance yet. Create one, then talk to your agent here.",
            "/console/create",
            "Create your instance",
        )),
        Some(InstanceStatus::Provisioning) => Some((
            "Your instance is still being created. You can talk to your agent once it is ready.",
            "/console/create",
            "Follow its creation",
        )),
        Some(InstanceStatus::Stopped | InstanceStatus::Error) => Some((
            "Your instance is not running, so your agent cannot answer. The Overview says why.",
            "/console",
            "Go to the Overview",
        )),
    };
    let included = state.included_model.as_deref().map(|model| {
        format!("Your agent answers with the included models ({model} unless you choose another), paid from your credits on the Billing page. Provider keys you add on the Account page go straight to their provider instead.")
    });
    let no_keys = unavailable.is_none()
        && included.is_none()
        && state
            .instances
            .provider_key_names(&s.user)
            .await
            .is_ok_and(|names| names.is_empty());
    Ok(ChatPage {
        chrome: Chrome {
            notice,
            ..super::pages::chrome(s, "/console/chat", &HashMap::new())
        },
        unavailable,
        no_keys,
        no_keys_text: NO_KEYS,
        included,
        account_keys: ACCOUNT_KEYS,
        turns,
        draft,
        max_message: MAX_MESSAGE_BYTES,
    })
}

/// `POST /console/chat` `csrf, message`: the answer as a page, or as an
/// event stream when the request accepts one.
pub async fn send(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ConsoleError> {
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return refuse(
            &state,
            &s,
            streaming,
            StatusCode::PAYLOAD_TOO_LARGE,
            &too_long(),
            "",
        )
        .await;
    };
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).map_err(|_| {
        ConsoleError::bad_request(
            "The form could not be read. Go back, reload the page and try again.",
        )
    })?;
    if let Err(e) = s.check_csrf(&form) {
        if streaming {
            let sentence =
                "This form expired or did not come from this site. Reload the page and try again.";
            return Ok(stream(StatusCode::FORBIDDEN, sse::error(sentence, None)));
        }
        return Err(e);
    }
    let message = form.get("message").map_or("", |m| m.trim());
    if message.is_empty() {
        let sentence = "Write a message first.";
        return refuse(&state, &s, streaming, StatusCode::BAD_REQUEST, sentence, "").await;
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return refuse(
            &state,
            &s,
            streaming,
            StatusCode::PAYLOAD_TOO_LARGE,
            &too_long(),
            message,
        )
        .await;
    }
    let target = match state.instances.live(&s.user).await {
        Ok(instance) if instance.status == InstanceStatus::Ready => state
            .instances
            .target_of(&instance)
            .await
            .map_err(ConsoleError::from),
        Ok(_) | Err(_) => Err(ConsoleError::bad_request(
            "Your instance is not ready, so your agent cannot answer. The Overview says why.",
        )),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) if streaming => {
            return Ok(stream(
                StatusCode::CONFLICT,
                sse::error(&e.message, Some("/console")),
            ))
        }
        Err(e) => return Err(e),
    };
    let answer = answer::ask(state.instances.client(), &target, &s.user, message).await;
    if streaming {
        return Ok(match answer {
            Ok(answer) => relay(answer),
            Err(problem) => {
                tracing::info!(?problem, "chat turn refused");
                stream(
                    StatusCode::OK,
                    sse::error(&problem.sentence(), problem.href()),
                )
            }
        });
    }
    let (agent, problem) = match answer {
        Ok(answer) => answer.collect().await,
        Err(problem) => (String::new(), Some(problem)),
    };
    if let Some(problem) = &problem {
        tracing::info!(?problem, "chat turn did not complete");
    }
    let turn = Turn {
        you: message.to_owned(),
        agent,
        problem_href: problem.as_ref().and_then(Problem::href),
        problem: problem.map(|p| p.sentence()),
    };
    render(&chat_page(&state, &s, None, vec![turn], String::new()).await?)
}

fn too_long() -> String {
    format!(
        "Your message is too long: at most {} KiB (about {} characters). Shorten it and send it again.",
        MAX_MESSAGE_BYTES / 1024,
        MAX_MESSAGE_BYTES
    )
}

/// A message that was not sent: a stream with one error, or the page with
/// the sentence and the draft back in the box.
async fn refuse(
    state: &AppState,
    s: &Session,
    streaming: bool,
    status: StatusCode,
    sentence: &str,
    draft: &str,
) -> Result<Response, ConsoleError> {
    if streaming {
        return Ok(stream(status, sse::error(sentence, None)));
    }
    let mut page = chat_page(state, s, None, Vec::new(), draft.to_owned()).await?;
    page.chrome.problem = Some(sentence.to_owned());
    Ok((status, render(&page)?).into_response())
}

/// The answer, relayed piece by piece as it comes, then `done` or `error`.
fn relay(answer: Answer) -> Response {
    let events = futures_util::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        let (event, rest) = match answer.next().await {
            Ok(Some(text)) => (sse::delta(&text), Some(answer)),
            Ok(None) => (sse::done(), None),
            Err(problem) => {
                tracing::info!(?problem, "chat answer did not complete");
                (sse::error(&problem.sentence(), problem.href()), None)
            }
        };
        Some((Ok::<_, Infallible>(event), rest))
    });
    event_stream(StatusCode::OK, Body::from_stream(events))
}

/// A stream of one event.
fn stream(status: StatusCode, event: String) -> Response {
    event_stream(status, Body::from(event))
}

fn event_stream(status: StatusCode, body: Body) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    // A buffering reverse proxy (nginx) in front would hold the pieces back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
