//! Server-sent events both ways for the chat page: reading the gateway's
//! `POST /v1/responses` stream as it arrives, and writing the console's own
//! small stream to the browser.
//!
//! The gateway writes `event: <type>` and `data: <json>` lines, a blank line
//! after each event, and `data: [DONE]` last. Only four things matter here:
//! text deltas (`response.output_text.delta`), the end (`response.completed`
//! or `response.incomplete`, whose final text stands in when no delta came),
//! a failure (`response.failed`, or an `error` object) and `[DONE]`. Chunks
//! may split anywhere, even inside a character: lines are cut at `\n` (which
//! never occurs inside a UTF-8 sequence) before they are decoded.
//!
//! The browser gets (and `console.js` reads) three events, each one `data:`
//! line of JSON, so newlines in the text stay inside the string:
//! - `event: delta` / `data: "<text to append>"`;
//! - `event: done` / `data: {}`;
//! - `event: error` / `data: {"message": "<a sentence>", "href": "<a page that helps>" | null}`.

use serde_json::{json, Value};

/// The longest line accepted from the gateway (an event's JSON is one line).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// One event of the gateway's stream that the chat cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// Text to append to the answer.
    Delta(String),
    /// The answer is complete; its whole text, if the event carried it.
    Completed(Option<String>),
    /// The run failed: the error's code (or type) and message.
    Failed {
        /// `error.code` or `error.type`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// `data: [DONE]`: nothing follows.
    Done,
}

/// A line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Reads the gateway's stream chunk by chunk.
#[derive(Debug, Default)]
pub struct SseReader {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// `event:` of the event being read.
    name: Option<String>,
    /// `data:` lines of the event being read.
    data: Vec<String>,
}

impl SseReader {
    /// Feeds one chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<GatewayEvent>, LineTooLong> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial);
            if line.len() > MAX_LINE_BYTES {
                return Err(LineTooLong);
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(line.trim_end_matches('\r')) {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<GatewayEvent> {
        if line.is_empty() {
            let name = self.name.take();
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return interpret(name.as_deref(), &data);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {} // comments (`: keep-alive`), `id:`, `retry:`
        }
        None
    }
}

fn interpret(name: Option<&str>, data: &str) -> Option<GatewayEvent> {
    if data.trim() == "[DONE]" {
        return Some(GatewayEvent::Done);
    }
    let value: Value = serde_json::from_str(data).ok()?;
    let kind = value["type"].as_str().or(name).unwrap_or("");
    match kind {
        "response.output_text.delta" => value["delta"]
            .as_str()
            .map(|d| GatewayEvent::Delta(d.to_owned())),
        "response.completed" | "response.incomplete" => {
            Some(GatewayEvent::Completed(final_text(&value["response"])))
        }
        "response.failed" => Some(failed(&value["response"]["error"])),
        "error" => Some(failed(value.get("error").unwrap_or(&value))),
        _ => None,
    }
}

fn failed(error: &Value) -> GatewayEvent {
    let text = |key: &str| error[key].as_str().unwrap_or("").to_owned();
    let code = match text("code") {
        c if c.is_empty() => text("type"),
        c => c,
    };
    GatewayEvent::Failed {
        code,
        message: text("message"),
    }
}

/// The text of a response's assistant messages (`output[].content[].text`).
pub fn final_text(response: &Value) -> Option<String> {
    let text: String = response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .filter(|part| part["type"] == "output_text")
        .filter_map(|part| part["text"].as_str())
        .collect();
    (!text.is_empty()).then_some(text)
}

/// `event: delta` with text to append.
pub fn delta(text: &str) -> String {
    format!("event: delta\ndata: {}\n\n", json!(text))
}

/// `event: done`.
pub fn done() -> String {
    "event: done\ndata: {}\n\n".to_owned()
}

/// `event: error` with a sentence and, when a page helps, its address.
pub fn error(message: &str, href: Option<&str>) -> String {
    let data = json!({ "message": message, "href": href });
    format!("event: error\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}\n\n",
        ": keep-alive\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"lo ☃\\n!\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello ☃\\n!\"}]}]}}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected() -> Vec<GatewayEvent> {
        vec![
            GatewayEvent::Delta("Hel".into()),
            GatewayEvent::Delta("lo ☃\n!".into()),
            GatewayEvent::Completed(Some("Hello ☃\n!".into())),
            GatewayEvent::Done,
        ]
    }

    #[test]
    fn a_whole_stream_gives_deltas_the_end_and_done() {
        let mut reader = SseReader::default();
        assert_eq!(reader.push(STREAM.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn chunks_split_anywhere_even_inside_a_character_give_the_same_events() {
        let bytes = STREAM.as_bytes();
        for size in [1, 2, 3, 7, 64] {
            let mut reader = SseReader::default();
            let events: Vec<_> = bytes
                .chunks(size)
                .flat_map(|c| reader.push(c).unwrap())
                .collect();
            assert_eq!(events, expected(), "chunks of {size} bytes");
        }
    }

    #[test]
    fn crlf_lines_and_multi_line_data_are_read() {
        let mut reader = SseReader::default();
        let stream = "event: error\r\ndata: {\"error\":\r\ndata: {\"type\":\"x\",\"message\":\"m\"}}\r\n\r\ndata: [DONE]\r\n\r\n";
        assert_eq!(
            reader.push(stream.as_bytes()).unwrap(),
            vec![
                GatewayEvent::Failed {
                    code: "x".into(),
                    message: "m".into()
                },
                GatewayEvent::Done
            ]
        );
    }

    #[test]
    fn a_failed_response_names_its_error() {
        let mut reader = SseReader::default();
        let stream = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"authentication_error\",\"message\":\"No API key found for provider \\\"openai\\\".\"}}}\n\ndata: [DONE]\n\n";
        let events = reader.push(stream.as_bytes()).unwrap();
        assert_eq!(
            events[0],
            GatewayEvent::Failed {
                code: "authentication_error".into(),
                message: "No API key found for provider \"openai\".".into()
            }
        );
        assert_eq!(events[1], GatewayEvent::Done);
    }

    #[test]
    fn unknown_events_and_unreadable_data_are_skipped() {
        let mut reader = SseReader::default();
        let stream = "event: response.in_progress\ndata: {\"type\":\"response.in_progress\"}\n\ndata: not json\n\nevent: x\n\n";
        assert!(reader.push(stream.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut reader = SseReader::default();
        let big = vec![b'a'; MAX_LINE_BYTES / 2 + 1];
        assert!(reader.push(&big).is_ok());
        assert_eq!(reader.push(&big), Err(LineTooLong));
    }

    #[test]
    fn events_for_the_browser_are_one_json_data_line_each() {
        assert_eq!(delta("a\nb\"c"), "event: delta\ndata: \"a\\nb\\\"c\"\n\n");
        assert_eq!(done(), "event: done\ndata: {}\n\n");
        let e = error("No model.", Some("/console/account"));
        assert!(e.starts_with("event: error\ndata: {"), "{e}");
        assert_eq!(e.matches('\n').count(), 3, "one data line: {e}");
        let data: Value =
            serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(
            data,
            json!({"message": "No model.", "href": "/console/account"})
        );
    }
}
