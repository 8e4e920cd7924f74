//! WebSockets through [`Proxy::forward`] end to end on loopback: a real
//! client and a real WebSocket server (tokio-tungstenite) with the proxy
//! (an axum server) between them. The upstream is an echo server written
//! for the test (`fake_upstream`), because it has to misbehave on cue: a
//! long stream, a stream faster than its reader, a restart mid-stream.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use clawplane_proxy::{Limits, Proxy, Upstream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// An echo server: `stream N SIZE` sends N numbered messages of SIZE bytes,
/// `restart` closes with 1012 (service restart) in the middle of a stream.
async fn fake_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) if t.starts_with("stream ") => {
                            let mut words = t.split(' ').skip(1);
                            let n: usize = words.next().unwrap().parse().unwrap();
                            let size: usize = words.next().unwrap().parse().unwrap();
                            for i in 0..n {
                                let mut body = format!("{i:08} ");
                                body.extend(std::iter::repeat_n('x', size.saturating_sub(9)));
                                if ws.send(Message::Text(body)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Message::Text(t) if t == "restart" => {
                            for i in 0..5 {
                                let _ = ws.send(Message::Text(format!("{i}"))).await;
                            }
                            let _ = ws
                                .close(Some(CloseFrame {
                                    code: CloseCode::Restart,
                                    reason: "restarting".into(),
                                }))
                                .await;
                            return;
                        }
                        Message::Text(_) | Message::Binary(_) => {
                            let sent = ws.send(msg).await;
                            if sent.is_err() {
                                return;
                            }
                        }
                        // A close (answered with the same code by the
                        // library as the loop goes on), a ping (answered
                        // with a pong the same way).
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

async fn forward(State((proxy, upstream)): State<(Proxy, Upstream)>, req: Request) -> Response {
    match proxy.forward(req, &upstream).await {
        Ok(r) => r,
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn proxy_to(upstream: SocketAddr) -> SocketAddr {
    let proxy = Proxy::new(Limits::default());
    let upstream = Upstream {
        authority: upstream.to_string(),
        path_prefix: String::new(),
        set_headers: HeaderMap::new(),
        strip: Vec::new(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((proxy, upstream));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open")
        .expect("a valid frame")
}

#[tokio::test]
async fn echo_ping_long_stream_and_close_code_pass_through() {
    let proxy = proxy_to(fake_upstream().await).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{proxy}/chat"))
        .await
        .expect("the upgrade passes the proxy");
    assert_eq!(response.status(), 101);

    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_text(&mut ws).await, Message::Text("hello".into()));
    ws.send(Message::Binary(vec![0, 1, 2, 255])).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        Message::Binary(vec![0, 1, 2, 255])
    );

    // The upstream answers the ping; the pong comes back through the relay.
    ws.send(Message::Ping(b"are you there".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        Message::Pong(b"are you there".to_vec())
    );

    // A long stream arrives complete and in order.
    ws.send(Message::Text("stream 20000 64".into()))
        .await
        .unwrap();
    for i in 0..20000 {
        let Message::Text(t) = next_text(&mut ws).await else {
            panic!("text expected")
        };
        assert!(t.starts_with(&format!("{i:08} ")), "message {i}: {t}");
    }

    // A close code chosen by the client comes back from the upstream.
    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    match next_text(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Library(4001));
            assert_eq!(frame.reason, "bye");
        }
        other => panic!("close expected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_reader_gets_everything() {
    let proxy = proxy_to(fake_upstream().await).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/"))
        .await
        .unwrap();
    // 32 MiB offered at once; the reader waits, then reads slowly.
    ws.send(Message::Text("stream 2048 16384".into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..2048 {
        let Message::Text(t) = next_text(&mut ws).await else {
            panic!("text expected")
        };
        assert_eq!(t.len(), 16384);
        assert!(t.starts_with(&format!("{i:08} ")));
        if i % 256 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn an_upstream_restart_mid_stream_closes_the_client_with_its_code() {
    let proxy = proxy_to(fake_upstream().await).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/"))
        .await
        .unwrap();
    ws.send(Message::Text("restart".into())).await.unwrap();
    for i in 0..5 {
        assert_eq!(next_text(&mut ws).await, Message::Text(format!("{i}")));
    }
    match next_text(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Restart),
        other => panic!("a 1012 close expected, got {other:?}"),
    }
    // And then the stream ends: the client can reconnect.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(end.is_none() || matches!(end, Some(Err(_))), "{end:?}");
    let again = tokio_tungstenite::connect_async(format!("ws://{proxy}/")).await;
    assert!(again.is_ok(), "a reconnect goes through");
}

#[tokio::test]
async fn plain_http_is_forwarded_and_an_unreachable_upstream_is_an_error() {
    // Nothing listens on the upstream port: the proxy says so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = proxy_to(closed).await;
    let r = reqwest_free_get(proxy, "/x").await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    let _ = Body::empty();
}

/// A minimal HTTP/1.1 GET over a raw socket (this crate needs no HTTP client).
async fn reqwest_free_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}
