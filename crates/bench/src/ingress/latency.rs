//! Latency runs: a [`Probe`] per side (HTTP requests here, WebSocket pings
//! in [`super::websocket`]), timed in alternating blocks so drift on a
//! shared machine affects both sides alike.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::header::HOST;
use reqwest::StatusCode;

use super::{ANSWER_WITHIN, RUN_WITHIN};

/// One timed sample: an HTTP request or a WebSocket round trip.
pub(super) trait Probe {
    /// One round trip, timed; an error is a failed sample.
    async fn once(&mut self) -> anyhow::Result<Duration>;
}

/// Timed samples of one side.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) times: Vec<Duration>,
    pub(super) failures: usize,
    pub(super) first_error: Option<String>,
}

/// Warm-up on each side, then `requests` timed samples on each side in
/// alternating blocks of `block` (A then B, then B then A, ...).
pub(super) async fn interleaved<A: Probe, B: Probe>(
    a: &mut A,
    b: &mut B,
    warmup: usize,
    requests: usize,
    block: usize,
) -> anyhow::Result<(Samples, Samples)> {
    for i in 0..warmup {
        a.once()
            .await
            .with_context(|| format!("warm-up {i} through the ingress"))?;
        b.once()
            .await
            .with_context(|| format!("warm-up {i} direct"))?;
    }
    let (mut sa, mut sb) = (Samples::default(), Samples::default());
    let started = Instant::now();
    let mut k = 0;
    while sa.times.len() + sa.failures < requests {
        if started.elapsed() > RUN_WITHIN {
            bail!("{requests} samples each side took over {RUN_WITHIN:?}");
        }
        let n = block.min(requests - sa.times.len() - sa.failures);
        if k % 2 == 0 {
            run_block(a, n, &mut sa).await;
            run_block(b, n, &mut sb).await;
        } else {
            run_block(b, n, &mut sb).await;
            run_block(a, n, &mut sa).await;
        }
        k += 1;
        if sa.times.is_empty() && sa.failures >= requests.min(100) {
            break;
        }
    }
    sa.times.sort();
    sb.times.sort();
    Ok((sa, sb))
}

pub(super) async fn run_block<P: Probe>(p: &mut P, n: usize, into: &mut Samples) {
    for _ in 0..n {
        match p.once().await {
            Ok(d) => into.times.push(d),
            Err(e) => {
                into.failures += 1;
                into.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// HTTP requests to the gateway: direct, or through the ingress (with the
/// ingress host and the client's address).
pub(super) struct HttpSide {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) host: Option<String>,
    pub(super) forwarded_for: Option<&'static str>,
    pub(super) path: String,
}

impl HttpSide {
    pub(super) fn new(
        base: String,
        host: Option<String>,
        forwarded_for: Option<&'static str>,
    ) -> anyhow::Result<Self> {
        // One client each: its own kept-alive connection.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ANSWER_WITHIN)
            .tcp_nodelay(true)
            .build()?;
        Ok(HttpSide {
            client,
            base,
            host,
            forwarded_for,
            path: "/healthz".into(),
        })
    }

    pub(super) async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(h) = &self.host {
            request = request.header(HOST, h);
        }
        if let Some(x) = self.forwarded_for {
            request = request.header("x-forwarded-for", x);
        }
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.bytes().await?.to_vec()))
    }
}

impl Probe for HttpSide {
    async fn once(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let (status, _) = self.get(&self.path).await?;
        let elapsed = t.elapsed();
        if status != StatusCode::OK {
            bail!("GET {} answered {status}", self.path);
        }
        Ok(elapsed)
    }
}

/// `/healthz` if it answers 200 the same way on both sides, else `/readyz`.
pub(super) async fn choose_route(
    via: &mut HttpSide,
    direct: &mut HttpSide,
) -> anyhow::Result<String> {
    let mut seen = Vec::new();
    for path in ["/healthz", "/readyz"] {
        let (sv, bv) = via.get(path).await?;
        let (sd, bd) = direct.get(path).await?;
        if sv == StatusCode::OK && sd == StatusCode::OK {
            if bv != bd {
                bail!(
                    "GET {path} through the ingress answered something else than the gateway: \
                     {} against {}",
                    String::from_utf8_lossy(&bv),
                    String::from_utf8_lossy(&bd)
                );
            }
            return Ok(path.to_owned());
        }
        seen.push(format!("{path}: {sv} through the ingress, {sd} direct"));
    }
    bail!(
        "no cheap gateway route answered 200 both ways: {}",
        seen.join("; ")
    )
}
