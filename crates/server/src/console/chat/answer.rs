//! One turn of the chat: the message sent to the user's gateway
//! (`POST /v1/responses`, streamed, through the runtime's `/gateway` hop as
//! the gateway's owner, so the gateway token stays in the runtime), and its
//! answer read piece by piece within limits. What can go wrong is a
//! [`Problem`] ([`super::problem`]).

use std::time::Duration;

use clawplane_domain::UserId;
use serde_json::{json, Value};

use super::problem::{failure, refusal, Problem};
use super::sse::{GatewayEvent, SseReader};
use crate::runtime_client::{RuntimeClient, RuntimeTarget};

/// The longest message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// The whole turn, from sending to the last piece of the answer.
pub const TURN_LIMIT: Duration = Duration::from_secs(300);
/// The most the gateway may send for one answer (its events carry ids and
/// offsets beside each piece of text, so this is several times the text).
pub const MAX_STREAM_BYTES: usize = 8 * 1024 * 1024;
/// The longest answer relayed, in bytes of text.
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// The most of an error answer read.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The gateway's `user`: one conversation per console user. A digest of the
/// user id, so the id itself (an email in some set-ups) never reaches the
/// gateway's session keys.
pub fn conversation(user: &UserId) -> String {
    let digest = clawplane_secrets::api_token_digest(user.as_str());
    format!("clawplane-console-{}", &digest[..24])
}

/// Sends `message` and waits for the answer to begin.
pub async fn ask(
    client: &RuntimeClient,
    target: &RuntimeTarget,
    user: &UserId,
    message: &str,
) -> Result<Answer, Problem> {
    let body = json!({
        "model": "openclaw",
        "input": message,
        "stream": true,
        "user": conversation(user),
    });
    let mut response = client
        .gateway_post(target, "/v1/responses", &body, TURN_LIMIT)
        .await
        .map_err(|_| Problem::Unreachable)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ERROR_BYTES {
                break;
            }
        }
        return Err(refusal(
            status,
            &serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ));
    }
    Ok(Answer {
        response,
        reader: SseReader::default(),
        pending: Default::default(),
        stream_bytes: 0,
        text_bytes: 0,
        ended: false,
    })
}

/// An answer on its way.
pub struct Answer {
    response: reqwest::Response,
    reader: SseReader,
    pending: std::collections::VecDeque<GatewayEvent>,
    stream_bytes: usize,
    text_bytes: usize,
    ended: bool,
}

impl Answer {
    /// The next piece of text; `Ok(None)` once the answer is complete.
    pub async fn next(&mut self) -> Result<Option<String>, Problem> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some(event) = self.pending.pop_front() {
                match event {
                    GatewayEvent::Delta(text) if !text.is_empty() => return self.text(text),
                    GatewayEvent::Delta(_) => {}
                    GatewayEvent::Completed(text) => {
                        self.ended = true;
                        // The whole text stands in only when no piece came.
                        match text {
                            Some(t) if self.text_bytes == 0 => return self.text(t),
                            _ => return Ok(None),
                        }
                    }
                    GatewayEvent::Failed { code, message } => {
                        self.ended = true;
                        return Err(failure(&code, &message));
                    }
                    GatewayEvent::Done => {
                        self.ended = true;
                        return Err(Problem::Cut);
                    }
                }
                continue;
            }
            let chunk = match self.response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.ended = true;
                    return Err(Problem::Cut);
                }
                Err(e) => {
                    self.ended = true;
                    return Err(if e.is_timeout() {
                        Problem::TooSlow(TURN_LIMIT)
                    } else {
                        Problem::Cut
                    });
                }
            };
            self.stream_bytes += chunk.len();
            if self.stream_bytes > MAX_STREAM_BYTES {
                self.ended = true;
                return Err(Problem::TooLong);
            }
            let events = self.reader.push(&chunk).map_err(|_| {
                self.ended = true;
                Problem::TooLong
            })?;
            self.pending.extend(events);
        }
    }

    fn text(&mut self, text: String) -> Result<Option<String>, Problem> {
        self.text_bytes += text.len();
        if self.text_bytes > MAX_ANSWER_BYTES {
            self.ended = true;
            return Err(Problem::TooLong);
        }
        Ok(Some(text))
    }

    /// The whole answer (the page without JavaScript): the text so far and,
    /// if it did not end well, why.
    pub async fn collect(mut self) -> (String, Option<Problem>) {
        let mut text = String::new();
        loop {
            match self.next().await {
                Ok(Some(piece)) => text.push_str(&piece),
                Ok(None) => return (text, None),
                Err(problem) => return (text, Some(problem)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_of(stream: &str) -> Answer {
        let response = axum::http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(stream.to_owned())
            .unwrap();
        Answer {
            response: reqwest::Response::from(response),
            reader: SseReader::default(),
            pending: Default::default(),
            stream_bytes: 0,
            text_bytes: 0,
            ended: false,
        }
    }

    fn delta(text: &str) -> String {
        format!(
            "event: response.output_text.delta\ndata: {}\n\n",
            json!({"type": "response.output_text.delta", "delta": text})
        )
    }

    const COMPLETED: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"whole\"}]}]}}\n\ndata: [DONE]\n\n";

    #[tokio::test]
    async fn pieces_come_in_order_and_the_end_ends() {
        let stream = format!("{}{}{COMPLETED}", delta("Hel"), delta("lo"));
        assert_eq!(answer_of(&stream).collect().await, ("Hello".into(), None));
    }

    #[tokio::test]
    async fn the_whole_text_stands_in_when_no_piece_came() {
        assert_eq!(answer_of(COMPLETED).collect().await, ("whole".into(), None));
    }

    #[tokio::test]
    async fn a_failure_after_some_text_keeps_the_text() {
        let stream = format!(
            "{}event: response.failed\ndata: {}\n\ndata: [DONE]\n\n",
            delta("Par"),
            json!({"type": "response.failed", "response": {"error": {"code": "api_error", "message": "internal error"}}})
        );
        assert_eq!(
            answer_of(&stream).collect().await,
            (
                "Par".into(),
                Some(Problem::Refused("internal error".into()))
            )
        );
    }

    #[tokio::test]
    async fn a_stream_without_its_end_is_cut() {
        let (text, problem) = answer_of(&delta("Hi")).collect().await;
        assert_eq!((text.as_str(), problem), ("Hi", Some(Problem::Cut)));
        let (_, problem) = answer_of("data: [DONE]\n\n").collect().await;
        assert_eq!(problem, Some(Problem::Cut));
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        let piece = "x".repeat(64 * 1024);
        let stream: String = (0..(MAX_ANSWER_BYTES / piece.len() + 2))
            .map(|_| delta(&piece))
            .collect();
        let (text, problem) = answer_of(&stream).collect().await;
        assert_eq!(problem, Some(Problem::TooLong));
        assert!(text.len() <= MAX_ANSWER_BYTES, "{}", text.len());
    }

    #[test]
    fn the_conversation_is_the_users_and_does_not_name_them() {
        let ana = UserId::parse("ana@example.com").unwrap();
        let bob = UserId::parse("bob@example.com").unwrap();
        assert_eq!(conversation(&ana), conversation(&ana));
        assert_ne!(conversation(&ana), conversation(&bob));
        assert!(!conversation(&ana).contains("ana"));
    }
}
