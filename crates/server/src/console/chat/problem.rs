//! What can go wrong in a chat turn, as the person in front of the console
//! should hear it: each [`Problem`] is a sentence and, when a page helps
//! (the Account page's provider keys, the Usage page's start and restart),
//! a link. The gateway's and the runtime's error answers are classified
//! here; their raw text is shown only as a short reason, never as JSON.

use std::time::Duration;

use serde_json::Value;

/// Why a turn did not (fully) come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The gateway has no model it can use (no provider key).
    NoModel,
    /// The included models' proxy refused the turn: the user's credits ran
    /// out (recognised by the proxy's own sentence, not by a provider's
    /// `insufficient_quota` code, which a user's own key's provider sends
    /// about its own account).
    NoCredits,
    /// The runtime did not answer.
    Unreachable,
    /// The gateway is stopped or starting.
    GatewayDown,
    /// The gateway does not serve `/v1/responses` (it predates the setting).
    NoEndpoint,
    /// The turn took longer than the limit it was given (the answer's
    /// `TURN_LIMIT`), which the sentence names.
    TooSlow(Duration),
    /// The answer went past the answer's `MAX_ANSWER_BYTES` or
    /// `MAX_STREAM_BYTES`.
    TooLong,
    /// The answer stopped before its end.
    Cut,
    /// The gateway or its model provider said no: a short reason.
    Refused(String),
}

impl Problem {
    /// What to tell the person.
    pub fn sentence(&self) -> String {
        match self {
            Problem::NoModel => NO_MODEL.to_owned(),
            Problem::NoCredits => clawplane_models::proxy::NO_CREDITS_MESSAGE.to_owned(),
            Problem::Unreachable => "Your instance's runtime did not answer. It may be restarting: wait a minute and send the message again.".to_owned(),
            Problem::GatewayDown => "Your gateway is not running (stopped, or still starting). Start it on the Usage page, or wait a moment, then send the message again.".to_owned(),
            Problem::NoEndpoint => "Your gateway does not offer chat yet. Restart it on the Usage page so it picks up the setting, then try again.".to_owned(),
            Problem::TooSlow(limit) => format!("Your agent took longer than {} minutes to answer, so the console stopped waiting. Try a shorter request.", limit.as_secs() / 60),
            Problem::TooLong => "The answer was too long for the console and was cut here.".to_owned(),
            Problem::Cut => "The answer stopped before its end (the gateway may have restarted). Send the message again.".to_owned(),
            Problem::Refused(reason) => format!("Your agent could not answer: {reason}. Try again; if it keeps failing, check the model provider key on the Account page."),
        }
    }

    /// A page that helps, if one does.
    pub fn href(&self) -> Option<&'static str> {
        match self {
            Problem::NoModel => Some(ACCOUNT_KEYS),
            Problem::NoCredits => Some("/console/billing"),
            Problem::GatewayDown | Problem::NoEndpoint => Some("/console/usage"),
            _ => None,
        }
    }
}

/// Where provider keys are managed.
pub const ACCOUNT_KEYS: &str = "/console/account#provider-keys";
/// What to do without a model key (the page links the Account page).
pub const NO_MODEL: &str = "Your agent has no model to answer with. Add a model provider key (for example OPENAI_API_KEY) under Model provider keys on the Account page; your gateway restarts to use it.";

/// What the page says while no provider key is stored (an operator may have
/// configured a model in the gateway's own config, so the form stays).
pub const NO_KEYS: &str = "No model provider key is stored, so your agent may have no model to answer with. Add one (for example OPENAI_API_KEY) under Model provider keys on the Account page; your gateway restarts to use it.";

/// An error answer (of the gateway or of the runtime in front of it).
pub fn refusal(status: u16, body: &Value) -> Problem {
    // The runtime's envelope: `{"ok":false,"error":{"code","message"}}`.
    if body["ok"] == false {
        return match body["error"]["code"].as_str() {
            Some("gateway_unreachable") => Problem::GatewayDown,
            _ => Problem::Refused(short(body["error"]["message"].as_str().unwrap_or(""))),
        };
    }
    // The gateway's: `{"error":{...}}` alone, or inside a failed response.
    let error = &body["error"];
    let code = error["code"]
        .as_str()
        .or(error["type"].as_str())
        .unwrap_or("");
    let message = error["message"].as_str().unwrap_or("");
    match status {
        404 | 405 if code.is_empty() => Problem::NoEndpoint,
        503 if code.is_empty() => Problem::GatewayDown,
        _ => failure(code, message),
    }
}

/// A failure the gateway reported.
pub fn failure(code: &str, message: &str) -> Problem {
    if message.contains(clawplane_models::proxy::NO_CREDITS_MESSAGE) {
        return Problem::NoCredits;
    }
    let lower = message.to_ascii_lowercase();
    if code == "authentication_error"
        || lower.contains("no api key")
        || lower.contains("authentication source")
    {
        return Problem::NoModel;
    }
    Problem::Refused(short(if message.is_empty() { code } else { message }))
}

/// One line of at most 200 characters, without a final full stop.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line: String = line.chars().take(200).collect();
    match line.trim_end_matches('.') {
        "" => "no reason given".to_owned(),
        l => l.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn running_out_of_included_credits_is_told_apart_from_a_providers_quota() {
        let relayed = format!("402 {}", clawplane_models::proxy::NO_CREDITS_MESSAGE);
        assert_eq!(failure("api_error", &relayed), Problem::NoCredits);
        assert_eq!(Problem::NoCredits.href(), Some("/console/billing"));
        assert_eq!(
            failure("insufficient_quota", "You exceeded your current quota."),
            Problem::Refused("You exceeded your current quota".into())
        );
    }

    #[test]
    fn no_model_is_recognised_in_either_wording() {
        assert_eq!(
            failure(
                "authentication_error",
                "No route-compatible authentication source is configured for openai."
            ),
            Problem::NoModel
        );
        assert_eq!(
            failure("api_error", "No API key found for provider \"openai\"."),
            Problem::NoModel
        );
        assert_eq!(
            failure("rate_limit_error", "slow down.\nat line 2"),
            Problem::Refused("slow down".into())
        );
    }

    #[test]
    fn error_answers_become_problems() {
        let runtime =
            json!({"ok": false, "error": {"code": "gateway_unreachable", "message": "x"}});
        assert_eq!(refusal(502, &runtime), Problem::GatewayDown);
        let failed =
            json!({"status": "failed", "error": {"code": "authentication_error", "message": "m"}});
        assert_eq!(refusal(401, &failed), Problem::NoModel);
        assert_eq!(refusal(404, &Value::Null), Problem::NoEndpoint);
        assert_eq!(
            refusal(
                500,
                &json!({"error": {"type": "api_error", "message": "internal error"}})
            ),
            Problem::Refused("internal error".into())
        );
    }

    #[test]
    fn sentences_are_sentences() {
        for p in [
            Problem::NoModel,
            Problem::Unreachable,
            Problem::GatewayDown,
            Problem::NoEndpoint,
            Problem::TooSlow(Duration::from_secs(300)),
            Problem::TooLong,
            Problem::Cut,
            Problem::Refused("x".into()),
        ] {
            let s = p.sentence();
            assert!(s.ends_with('.') && !s.contains('{'), "{s}");
        }
        assert_eq!(Problem::NoModel.href(), Some(ACCOUNT_KEYS));
    }
}
