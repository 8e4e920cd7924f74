//! Relaying a WebSocket message by message, for the rare connection whose
//! messages a hop must read or change (the runtime signing its owner in to
//! the gateway); every other connection is relayed byte for byte by
//! [`crate::relay`].
//!
//! Each hop answers its own pings (the WebSocket library does), so pings and
//! pongs are not passed on. Close frames are passed on with their code. At
//! the idle or total limit both sides get a close frame (1001, "going
//! away"), so clients reconnect instead of seeing a dropped connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
pub use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{Limits, RelayEnd};

/// Largest message either way (the gateway's own limit is 25 MiB).
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// What a hop does with the messages it relays.
pub trait MessageFilter: Send + 'static {
    /// A message from the client on its way to the upstream; `None` drops it.
    fn client_message(&mut self, message: Message) -> Option<Message>;
    /// A message from the upstream on its way to the client; `None` drops it.
    fn upstream_message(&mut self, message: Message) -> Option<Message>;
}

/// Relays two upgraded connections message by message through `filter`.
pub async fn relay_messages<C, U>(
    client: C,
    upstream: U,
    limits: Limits,
    mut filter: Box<dyn MessageFilter>,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE),
        max_frame_size: Some(MAX_MESSAGE),
        ..Default::default()
    };
    let mut client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
    let mut upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, Some(config)).await;
    let total = Instant::now() + limits.total;
    loop {
        let idle = tokio::time::sleep(limits.idle);
        let (message, from_client) = tokio::select! {
            m = client.next() => (m, true),
            m = upstream.next() => (m, false),
            _ = idle => return going_away(client, upstream, "idle", RelayEnd::Idle).await,
            _ = tokio::time::sleep_until(total) => {
                return going_away(client, upstream, "time limit", RelayEnd::Total).await
            }
        };
        let Some(Ok(message)) = message else {
            // One side is gone: tell the other with a close frame.
            let reason = if from_client {
                "client gone"
            } else {
                "upstream gone"
            };
            let frame = close(CloseCode::Away, reason);
            if from_client {
                let _ = upstream.close(Some(frame)).await;
            } else {
                let _ = client.close(Some(frame)).await;
            }
            return RelayEnd::Closed;
        };
        if matches!(message, Message::Ping(_) | Message::Pong(_)) {
            continue;
        }
        let closing = matches!(message, Message::Close(_));
        let sent = if from_client {
            match filter.client_message(message) {
                Some(m) => upstream.send(m).await,
                None => Ok(()),
            }
        } else {
            match filter.upstream_message(message) {
                Some(m) => client.send(m).await,
                None => Ok(()),
            }
        };
        if closing {
            // The library queued the answer to the closing side: send it,
            // then let the other side answer ours.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                if from_client {
                    let _ = client.flush().await;
                    while let Some(Ok(_)) = upstream.next().await {}
                } else {
                    let _ = upstream.flush().await;
                    while let Some(Ok(_)) = client.next().await {}
                }
            })
            .await;
            return RelayEnd::Closed;
        }
        if sent.is_err() {
            return RelayEnd::Closed;
        }
    }
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame<'static> {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

async fn going_away<C, U>(
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    reason: &'static str,
    end: RelayEnd,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tokio::join!(
            client.close(Some(close(CloseCode::Away, reason))),
            upstream.close(Some(close(CloseCode::Away, reason)))
        );
    })
    .await;
    end
}
