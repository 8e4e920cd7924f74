//! WebSockets to the gateway, direct or through the ingress: opening one
//! (and why it was refused), a ping and its pong, a reopening side for the
//! latency run, and many opened together.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::latency::Probe;
use super::ANSWER_WITHIN;

pub(super) type Socket = WebSocketStream<TcpStream>;

/// Why a WebSocket did not open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Refusal {
    /// The upgrade was answered with this status instead of 101.
    Status(u16),
    /// No answer in time.
    Timeout,
    /// Another error (connection refused, reset...).
    Error(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Status(s) => write!(f, "HTTP {s}"),
            Refusal::Timeout => f.write_str("no answer in 10 s"),
            Refusal::Error(e) => f.write_str(e),
        }
    }
}

/// Opens a WebSocket on `addr` for `ws://{host}/` (the `Host` header), with
/// `X-Forwarded-For` when given, TCP_NODELAY on.
pub(super) async fn open_ws(
    addr: SocketAddr,
    host: &str,
    forwarded_for: Option<&str>,
) -> Result<Socket, Refusal> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Refusal::Error(e.kind().to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Refusal::Error(e.to_string()))?;
        let mut request = format!("ws://{host}/")
            .into_client_request()
            .map_err(|e| Refusal::Error(e.to_string()))?;
        if let Some(x) = forwarded_for {
            request.headers_mut().insert(
                "x-forwarded-for",
                x.parse()
                    .map_err(|_| Refusal::Error("bad address".into()))?,
            );
        }
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(Refusal::Status(response.status().as_u16()))
            }
            Err(e) => Err(Refusal::Error(e.to_string())),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or(Err(Refusal::Timeout))
}

/// How a ping ended.
pub(super) enum Pinged {
    Pong,
    /// The socket was closed (with this close frame, if any).
    Closed(Option<String>),
}

/// Sends a Ping with `payload` and waits for its Pong (other messages, such
/// as the gateway's `connect.challenge`, are skipped).
pub(super) async fn ping(ws: &mut Socket, payload: Vec<u8>) -> anyhow::Result<Pinged> {
    let exchange = async {
        if ws.send(Message::Ping(payload.clone())).await.is_err() {
            return Ok(Pinged::Closed(None));
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p == payload => return Ok(Pinged::Pong),
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Pinged::Closed(Some(describe_close(frame))))
                }
                Some(Ok(_)) => continue,
                Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
                | Some(Err(tokio_tungstenite::tungstenite::Error::AlreadyClosed))
                | None => return Ok(Pinged::Closed(None)),
                Some(Err(e)) => return Err(anyhow::Error::new(e)),
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .context("no pong within 5 s")?
}

/// One WebSocket, reopened when the gateway closes it.
pub(super) struct WsSide {
    pub(super) addr: SocketAddr,
    pub(super) host: String,
    pub(super) forwarded_for: Option<String>,
    pub(super) ws: Option<Socket>,
    pub(super) opened: usize,
    pub(super) reconnects: usize,
    pub(super) close_seen: Option<String>,
    pub(super) seq: u64,
}

impl WsSide {
    pub(super) fn new(addr: SocketAddr, host: String, forwarded_for: Option<String>) -> Self {
        WsSide {
            addr,
            host,
            forwarded_for,
            ws: None,
            opened: 0,
            reconnects: 0,
            close_seen: None,
            seq: 0,
        }
    }
}

impl Probe for WsSide {
    async fn once(&mut self) -> anyhow::Result<Duration> {
        // A socket closed under us is reopened once and the sample retaken.
        for _ in 0..2 {
            let ws = match &mut self.ws {
                Some(ws) => ws,
                None => {
                    let ws = open_ws(self.addr, &self.host, self.forwarded_for.as_deref())
                        .await
                        .map_err(|r| anyhow::anyhow!("the WebSocket did not open: {r}"))?;
                    if self.opened > 0 {
                        self.reconnects += 1;
                    }
                    self.opened += 1;
                    self.ws.insert(ws)
                }
            };
            self.seq += 1;
            let payload = self.seq.to_be_bytes().to_vec();
            let t = Instant::now();
            match ping(ws, payload).await {
                Ok(Pinged::Pong) => return Ok(t.elapsed()),
                Ok(Pinged::Closed(frame)) => {
                    if self.close_seen.is_none() {
                        self.close_seen = frame;
                    }
                    self.ws = None;
                }
                Err(e) => {
                    self.ws = None;
                    return Err(e);
                }
            }
        }
        bail!("the WebSocket closed twice in a row")
    }
}

/// Sockets opened together, and the refusals.
pub(super) struct Opened {
    pub(super) sockets: Vec<Socket>,
    pub(super) refused: Vec<Refusal>,
    pub(super) took: Duration,
}

impl Opened {
    /// "none", or the refusals counted by reason.
    pub(super) fn refused_text(&self) -> String {
        if self.refused.is_empty() {
            return "none".into();
        }
        let mut reasons = self.refused.clone();
        reasons.sort();
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < reasons.len() {
            let n = reasons[i..]
                .iter()
                .take_while(|r| **r == reasons[i])
                .count();
            out.push(format!("{n} × {}", reasons[i]));
            i += n;
        }
        out.join(", ")
    }
}

/// Opens `n` WebSockets through the ingress, `concurrency` at a time, the
/// i-th from client address `address(i)`.
pub(super) async fn open_many(
    addr: SocketAddr,
    host: &str,
    n: usize,
    concurrency: usize,
    address: impl Fn(usize) -> String,
) -> Opened {
    let started = Instant::now();
    let results: Vec<Result<Socket, Refusal>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let forwarded_for = address(i);
            async move { open_ws(addr, host, Some(&forwarded_for)).await }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let took = started.elapsed();
    let mut opened = Opened {
        sockets: Vec::new(),
        refused: Vec::new(),
        took,
    };
    for r in results {
        match r {
            Ok(ws) => opened.sockets.push(ws),
            Err(e) => opened.refused.push(e),
        }
    }
    opened
}

/// Closes every socket (a close frame each, bounded), then drops them.
pub(super) async fn close_all(sockets: Vec<Socket>) {
    let closing = futures_util::future::join_all(sockets.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }));
    let _ = tokio::time::timeout(Duration::from_secs(10), closing).await;
}

/// A close frame as text.
pub(super) fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("code {}, no reason", u16::from(f.code)),
        Some(f) => format!("code {}, \"{}\"", u16::from(f.code), f.reason),
        None => "no close frame".into(),
    }
}
