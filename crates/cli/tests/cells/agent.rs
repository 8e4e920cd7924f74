//! A tenant's agent as an attacker drives it: a message `RUN: <command>` in
//! the console's chat makes the fake model call the gateway's shell tool
//! (`clawplane_testkit::fake_openai`'s tool runner), and the answer streamed
//! back is the command's output.
//!
//! What the probes judge is the tool's result as the gateway handed it to
//! the model, not the chat's answer: the gateway redacts what looks like a
//! secret in its own answers, but a tenant can bring its own model and read
//! the tool's result there.

use clawplane_testkit::fake_openai::{output_in, FakeOpenAi, RUN_PREFIX};

use crate::console::{csrf, events, Visitor};

/// The console user whose gateway runs the commands.
pub struct Agent<'a> {
    pub visitor: Visitor<'a>,
    /// The model of the visitor's gateway.
    pub model: &'a FakeOpenAi,
    csrf: String,
}

impl<'a> Agent<'a> {
    /// The chat of `visitor`, who is signed in and has a gateway running
    /// with `model`.
    pub async fn new(mut visitor: Visitor<'a>, model: &'a FakeOpenAi) -> Agent<'a> {
        let (status, page) = visitor.get("/console/chat").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("data-chat"), "a chat form: {page}");
        Agent {
            csrf: csrf(&page),
            visitor,
            model,
        }
    }

    /// Runs `command` through the agent's shell tool; its output, as the
    /// tool gave it to the model. Panics when the turn did not run the
    /// command and carry its output back: then the test proves nothing.
    pub async fn run(&mut self, command: &str) -> String {
        self.turn(command).await.1
    }

    /// Runs `command`: the chat's answer (the output as the gateway
    /// relayed it) and the output as the model got it.
    pub async fn turn(&mut self, command: &str) -> (String, String) {
        let message = format!("{RUN_PREFIX}{command}");
        let r = self
            .visitor
            .post(
                "/console/chat",
                &[("csrf", &self.csrf), ("message", &message)],
                Some("text/event-stream"),
            )
            .await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "the chat answered `{command}` with {body}");
        let events = events(&body);
        let answer: String = events
            .iter()
            .filter(|(name, _)| name == "delta")
            .filter_map(|(_, data)| data.as_str())
            .collect();
        assert_eq!(
            events.last().map(|(name, _)| name.as_str()),
            Some("done"),
            "the turn of `{command}` ended without `done`: {body}"
        );
        let Some(relayed) = output_in(&answer) else {
            panic!("the agent did not run `{command}` (no tool result came back): {answer}");
        };
        let output = self.model.tool_result(command).unwrap_or_else(|| {
            panic!("the model saw no result of `{command}`, yet the chat answered {answer}")
        });
        (relayed.to_owned(), output)
    }
}
