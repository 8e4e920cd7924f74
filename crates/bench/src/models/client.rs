//! The bench's client side: one streamed chat completion (time to its first
//! piece and to its end), many of them from N concurrent clients for a
//! bounded time, and N gated streams held open. The same request goes to
//! the fake upstream directly or through a proxy host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::host::MODEL;

/// Longest one bench request may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most chunks read from one answer (the fake sends five).
const MAX_CHUNKS: usize = 1000;

/// Where requests go: the fake upstream itself, or a proxy in front of it.
#[derive(Clone)]
pub(super) struct Side {
    /// The row's name.
    pub(super) name: &'static str,
    /// `.../chat/completions`.
    pub(super) url: String,
    /// The bearer token this side expects.
    pub(super) token: &'static str,
}

/// One finished stream.
pub(super) struct Timing {
    /// From sending the request to the first piece of the answer.
    pub(super) first: Duration,
    /// From sending the request to the end of the stream.
    pub(super) total: Duration,
}

/// A client with room for `clients` kept-alive connections.
pub(super) fn http_client(clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(clients * 2)
        .build()?)
}

async fn send(
    client: &reqwest::Client,
    side: &Side,
    cue: &str,
) -> anyhow::Result<reqwest::Response> {
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": cue}],
                      "stream": true, "max_tokens": 1000});
    let response = client
        .post(&side.url)
        .bearer_auth(side.token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("a request to {}", side.name))?;
    if response.status() != 200 {
        bail!("{} answered {}", side.name, response.status());
    }
    Ok(response)
}

/// Reads until the first non-empty chunk; false when the stream ended first.
async fn first_piece(response: &mut reqwest::Response) -> anyhow::Result<bool> {
    for _ in 0..MAX_CHUNKS {
        match response.chunk().await? {
            Some(chunk) if !chunk.is_empty() => return Ok(true),
            Some(_) => {}
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Reads the rest of a stream; its text.
async fn rest(response: &mut reqwest::Response) -> anyhow::Result<String> {
    let mut text = String::new();
    for _ in 0..MAX_CHUNKS {
        match response.chunk().await? {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => return Ok(text),
        }
    }
    bail!("a stream of more than {MAX_CHUNKS} chunks")
}

/// One ordinary streamed answer (three pieces, usage, `[DONE]`).
pub(super) async fn stream_once(client: &reqwest::Client, side: &Side) -> anyhow::Result<Timing> {
    let start = Instant::now();
    let mut response = send(client, side, "hello").await?;
    if !first_piece(&mut response).await? {
        bail!("{} sent an empty stream", side.name);
    }
    let first = start.elapsed();
    let text = rest(&mut response).await?;
    if !text.trim_end().ends_with("data: [DONE]") {
        bail!("{}'s stream did not end with [DONE]", side.name);
    }
    Ok(Timing {
        first,
        total: start.elapsed(),
    })
}

/// What N clients did in a bounded run.
pub(super) struct Load {
    /// Finished streams per second.
    pub(super) per_second: f64,
    /// Each stream's time to its end, sorted.
    pub(super) totals: Vec<Duration>,
}

/// `clients` clients, each streaming one answer after another for
/// `duration` or `max_per_client` answers, whichever comes first.
pub(super) async fn load(
    client: &reqwest::Client,
    side: &Side,
    clients: usize,
    duration: Duration,
    max_per_client: usize,
) -> anyhow::Result<Load> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, side) = (client.clone(), side.clone());
        tasks.push(tokio::spawn(async move {
            let mut totals = Vec::new();
            for _ in 0..max_per_client {
                if start.elapsed() >= duration {
                    break;
                }
                totals.push(stream_once(&client, &side).await?.total);
            }
            anyhow::Ok(totals)
        }));
    }
    let mut totals = Vec::new();
    for task in tasks {
        totals.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    totals.sort();
    Ok(Load {
        per_second: totals.len() as f64 / elapsed,
        totals,
    })
}

/// Opens `n` gated streams at once and returns them once each has
/// delivered its first piece (the rest waits for the fake's gate).
pub(super) async fn open_gated(
    client: &reqwest::Client,
    side: &Side,
    n: usize,
) -> anyhow::Result<Vec<reqwest::Response>> {
    let gated = Arc::new(clawplane_testkit::fake_upstream::cue::GATED.to_owned());
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, side, gated) = (client.clone(), side.clone(), gated.clone());
        tasks.push(tokio::spawn(async move {
            let mut response = send(&client, &side, &gated).await?;
            if !first_piece(&mut response).await? {
                bail!("{} ended a gated stream at once", side.name);
            }
            anyhow::Ok(response)
        }));
    }
    let mut open = Vec::with_capacity(n);
    for task in tasks {
        open.push(task.await??);
    }
    Ok(open)
}

/// Reads held streams to their end (after their gate was opened).
pub(super) async fn finish(open: Vec<reqwest::Response>) -> anyhow::Result<()> {
    let tasks: Vec<_> = open
        .into_iter()
        .map(|mut r| tokio::spawn(async move { rest(&mut r).await }))
        .collect();
    for task in tasks {
        let text = task.await??;
        if !text.contains("[DONE]") {
            bail!("a gated stream ended without [DONE]");
        }
    }
    Ok(())
}
