//! A chat completion request as the proxy reads it: parsed strictly (one
//! JSON object, no key twice), with the few fields it acts on checked
//! (`model`, `stream`, `max_tokens`/`max_completion_tokens`, `n`); every
//! other field goes to the provider unchanged. The body sent upstream names
//! the provider's model, asks a stream for its usage, and never asks for
//! more completion tokens than the model's limit (the hold covers that much).

use serde_json::{Map, Value};

use super::error::ProxyError;
use crate::catalog::Model;
use crate::cost;

/// The request's fields that matter to the proxy, with the whole body.
#[derive(Debug)]
pub(crate) struct ChatRequest {
    body: Map<String, Value>,
    /// The catalog's model id asked for.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// The larger of `max_tokens` and `max_completion_tokens`, if given.
    pub requested_output: Option<u64>,
}

impl ChatRequest {
    /// Reads a request body.
    pub(crate) fn parse(bytes: &[u8]) -> Result<ChatRequest, ProxyError> {
        let value: Value = clawplane_http::json::from_slice(bytes).map_err(|e| match e {
            clawplane_http::json::JsonError::Shape(_) => {
                bad("The request body is not a chat completion request.")
            }
            other => ProxyError::BadRequest(format!("{}.", capitalized(&other.to_string()))),
        })?;
        let Value::Object(body) = value else {
            return Err(bad(
                "The request body must be a JSON object with \"model\" and \"messages\".",
            ));
        };
        let model = match body.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            Some(_) => {
                return Err(bad(
                    "\"model\" must be a model id (a string): GET /v1/models lists them.",
                ))
            }
            None => {
                return Err(bad(
                    "\"model\" is missing: name a model from GET /v1/models.",
                ))
            }
        };
        match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {}
            _ => return Err(bad("\"messages\" must be a non-empty array of messages.")),
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => return Err(bad("\"stream\" must be true or false.")),
        };
        match body.get("n") {
            None | Some(Value::Null) => {}
            Some(n) if n.as_u64() == Some(1) => {}
            Some(_) => return Err(bad("\"n\" must be 1: ask for one choice per request.")),
        }
        let mut requested_output: Option<u64> = None;
        for field in ["max_tokens", "max_completion_tokens"] {
            match body.get(field) {
                None | Some(Value::Null) => {}
                Some(value) => match value.as_u64() {
                    Some(n) if n > 0 => {
                        requested_output = Some(requested_output.map_or(n, |r| r.max(n)))
                    }
                    _ => {
                        return Err(ProxyError::BadRequest(format!(
                            "\"{field}\" must be a whole number greater than zero."
                        )))
                    }
                },
            }
        }
        Ok(ChatRequest {
            body,
            model,
            stream,
            requested_output,
        })
    }

    /// The body for the provider: its model name, usage asked for when
    /// streamed, completion limits capped at the model's.
    pub(crate) fn upstream_body(mut self, model: &Model) -> Vec<u8> {
        self.body
            .insert("model".into(), Value::String(model.upstream.clone()));
        if self.stream {
            let mut options = match self.body.remove("stream_options") {
                Some(Value::Object(options)) => options,
                _ => Map::new(),
            };
            options.insert("include_usage".into(), Value::Bool(true));
            self.body
                .insert("stream_options".into(), Value::Object(options));
        }
        let cap = cost::output_cap(model, self.requested_output);
        for field in ["max_tokens", "max_completion_tokens"] {
            if let Some(value) = self.body.get_mut(field) {
                if value.as_u64().is_some_and(|n| n > cap) {
                    *value = Value::from(cap);
                }
            }
        }
        // A map of JSON values always serializes.
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

fn bad(message: &str) -> ProxyError {
    ProxyError::BadRequest(message.to_string())
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Prices;
    use clawplane_domain::MicroUsd;

    fn model() -> Model {
        Model {
            id: "gpt-mini".into(),
            upstream: "gpt-4o-mini".into(),
            provider: "openai".into(),
            prices: Prices {
                input_per_million: MicroUsd::from_micros(1),
                output_per_million: MicroUsd::from_micros(1),
                cached_per_million: MicroUsd::from_micros(1),
            },
            max_output_tokens: 100,
            context_window: 1000,
        }
    }

    #[test]
    fn the_upstream_body_names_the_providers_model_and_asks_for_usage() {
        let body = br#"{"model":"gpt-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false},"max_tokens":500,"temperature":0.25}"#;
        let request = ChatRequest::parse(body).unwrap();
        assert_eq!(request.model, "gpt-mini");
        assert!(request.stream);
        assert_eq!(request.requested_output, Some(500));
        let sent: Value = serde_json::from_slice(&request.upstream_body(&model())).unwrap();
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["max_tokens"], 100);
        assert_eq!(sent["temperature"].to_string(), "0.25");
    }

    #[test]
    fn bodies_that_are_not_chat_requests_are_refused_with_a_sentence() {
        for body in [
            &b"not json"[..],
            br#"[1]"#,
            br#"{"messages":[{"role":"user","content":"x"}]}"#,
            br#"{"model":1,"messages":[{"role":"user","content":"x"}]}"#,
            br#"{"model":"m","messages":[]}"#,
            br#"{"model":"m","model":"n","messages":[{"role":"user","content":"x"}]}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
        ] {
            let error = ChatRequest::parse(body).unwrap_err();
            assert!(matches!(error, ProxyError::BadRequest(_)), "{error:?}");
        }
    }
}
