//! WebSockets held: many opened through the ingress from documentation
//! addresses and held past the gateway's pre-auth timeout, with the memory
//! of each process before, while and after.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::memory::{memory, Memory, Pids};
use super::websocket::{close_all, describe_close, open_many, ping, Pinged, Socket};
use super::GATEWAY_PREAUTH;

/// The i-th of 762 documentation addresses (RFC 5737: 203.0.113.0/24,
/// 198.51.100.0/24, 192.0.2.0/24, hosts 1-254), so that held sockets come
/// from many clients as they would in use.
pub(super) fn documentation_address(i: usize) -> String {
    let k = i % (3 * 254);
    let host = 1 + k % 254;
    match k / 254 {
        0 => format!("203.0.113.{host}"),
        1 => format!("198.51.100.{host}"),
        _ => format!("192.0.2.{host}"),
    }
}

/// What holding sockets showed.
pub(super) struct Holding {
    pub(super) wanted: usize,
    pub(super) concurrency: usize,
    pub(super) open: usize,
    pub(super) refused: String,
    pub(super) open_took: Duration,
    pub(super) before: Memory,
    /// About a second after the last opened.
    pub(super) early: Memory,
    pub(super) early_at: Duration,
    pub(super) early_answered: usize,
    /// Just before the gateway's pre-auth timeout of the first opened.
    pub(super) late: Memory,
    pub(super) late_at: Duration,
    pub(super) late_answered: usize,
    pub(super) after_close: Memory,
    /// After the gateway's pre-auth timeout of the last opened: sockets the
    /// gateway had closed, and its close frame.
    pub(super) closed_later: usize,
    pub(super) close_frame: Option<String>,
}

/// A ping on each socket; how many answered (bounded to 10 s in all).
pub(super) async fn ping_all(sockets: &mut [Socket], round: u64) -> usize {
    let pings =
        futures_util::future::join_all(sockets.iter_mut().enumerate().map(|(i, ws)| async move {
            let payload = ((round << 32) | i as u64).to_be_bytes().to_vec();
            matches!(ping(ws, payload).await, Ok(Pinged::Pong))
        }));
    tokio::time::timeout(Duration::from_secs(10), pings)
        .await
        .map(|v| v.into_iter().filter(|ok| *ok).count())
        .unwrap_or(0)
}

/// Opens `n` sockets through the ingress and holds them: memory before,
/// about a second after all opened and again just before the gateway's
/// pre-auth timeout, with a ping on each both times; then whether the
/// gateway closed them after that timeout; all closed at the end.
pub(super) async fn hold(
    addr: SocketAddr,
    host: &str,
    n: usize,
    concurrency: usize,
    pids: &Pids,
) -> Holding {
    let before = memory(pids);
    let started = Instant::now();
    let opened = open_many(addr, host, n, concurrency, documentation_address).await;
    let refused = opened.refused_text();
    let (open_took, mut sockets) = (opened.took, opened.sockets);
    let open = sockets.len();
    eprintln!(
        "{open} of {n} open in {:.2} s (refused: {refused})",
        open_took.as_secs_f64()
    );
    // Let the relays of the last sockets start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = memory(pids);
    let early_at = started.elapsed();
    let early_answered = ping_all(&mut sockets, 1).await;

    // Held until shortly before the first opened reaches the gateway's
    // pre-auth timeout.
    if let Some(rest) = (GATEWAY_PREAUTH - Duration::from_secs(3)).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let late = memory(pids);
    let late_at = started.elapsed();
    let late_answered = ping_all(&mut sockets, 2).await;
    eprintln!(
        "a ping answered by {early_answered} at {:.1} s and {late_answered} at {:.1} s after the \
         first opened; waiting out the gateway's pre-auth timeout",
        early_at.as_secs_f64(),
        late_at.as_secs_f64()
    );

    // Past the gateway's pre-auth timeout of the last opened: how many did
    // it close?
    let wait_until = open_took + GATEWAY_PREAUTH + Duration::from_secs(3);
    if let Some(rest) = wait_until.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let states = futures_util::future::join_all(sockets.iter_mut().map(|ws| async move {
        let drained = async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return describe_close(frame),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return "closed without a close frame".to_owned(),
                }
            }
        };
        // Still open when nothing comes within the moment.
        tokio::time::timeout(Duration::from_millis(500), drained)
            .await
            .ok()
    }));
    let states = tokio::time::timeout(Duration::from_secs(10), states)
        .await
        .unwrap_or_default();
    let closed_later = states.iter().filter(|s| s.is_some()).count();
    let close_frame = states.into_iter().flatten().next();
    close_all(sockets).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_close = memory(pids);
    Holding {
        wanted: n,
        concurrency,
        open,
        refused,
        open_took,
        before,
        early,
        early_at,
        early_answered,
        late,
        late_at,
        late_answered,
        after_close,
        closed_later,
        close_frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_addresses_are_distinct_and_documentation_only() {
        let all: std::collections::HashSet<String> = (0..762).map(documentation_address).collect();
        assert_eq!(all.len(), 762);
        assert!(all.iter().all(|a| a.starts_with("203.0.113.")
            || a.starts_with("198.51.100.")
            || a.starts_with("192.0.2.")));
        assert!(!all.iter().any(|a| a.ends_with(".0") || a.ends_with(".255")));
        assert_eq!(documentation_address(762), documentation_address(0));
    }
}
