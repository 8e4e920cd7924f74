//! The bounded listener: every limit of `ListenerLimits` over real loopback
//! sockets, and what must stay unlimited (streamed responses, upgrades).

#[path = "listen/client.rs"]
mod client;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clawplane_http::{BodyTimeout, ListenerLimits};
use client::{Client, Server, PATIENCE};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Notify};

/// Slack on top of a timeout before a test calls a connection "not closed".
const SLACK: Duration = Duration::from_secs(3);

fn limits(header: u64, idle: u64, body: u64) -> ListenerLimits {
    ListenerLimits {
        header_read_timeout: Duration::from_secs(header),
        idle_timeout: Duration::from_secs(idle),
        request_body_timeout: Duration::from_secs(body),
        max_connections: 4096,
    }
}

/// `/hello`, `/stream` (three chunks, 3 s of silence between them: longer
/// than every timeout the tests set), `/upload` (408 when the body times
/// out), `/echo` (a raw upgrade echoing bytes back).
fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/stream", get(stream))
        .route("/upload", post(upload))
        .route("/echo", get(echo))
}

async fn stream() -> Body {
    let chunks = futures_util::stream::unfold(0u8, |n| async move {
        if n == 3 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Some((Ok::<_, std::io::Error>(format!("chunk{n};")), n + 1))
    });
    Body::from_stream(chunks)
}

async fn upload(request: Request) -> Response {
    match axum::body::to_bytes(request.into_body(), 1 << 20).await {
        Ok(bytes) => format!("{} bytes", bytes.len()).into_response(),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<BodyTimeout>() {
                    return (StatusCode::REQUEST_TIMEOUT, s.to_string()).into_response();
                }
                source = s.source();
            }
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
    }
}

async fn echo(mut request: Request) -> Response {
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut read, &mut write).await;
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [(header::CONNECTION, "upgrade"), (header::UPGRADE, "echo")],
    )
        .into_response()
}

/// Opens `/echo` and reads the 101.
async fn upgraded(server: &Server) -> Client {
    let mut c = server.client().await;
    let request = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
    assert!(c.send(request.as_bytes()).await);
    let head = c.line_block().await.expect("an answer to the upgrade");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_holding_partial_heads_are_closed_while_others_are_answered() {
    let header = Duration::from_secs(2);
    let server = Server::start(app(), limits(2, 60, 60)).await;
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..300 {
        let addr = server.addr;
        slow.spawn(async move {
            let mut c = Client::connect(addr).await;
            assert!(c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
            let closed = c
                .trickle_until_closed(b"abcdef", Duration::from_secs(1), header + SLACK)
                .await;
            (format!("trickling client {i}"), closed)
        });
    }
    // Some say nothing at all once connected.
    for i in 0..20 {
        let addr = server.addr;
        slow.spawn(async move {
            let mut c = Client::connect(addr).await;
            (
                format!("silent client {i}"),
                c.closed_within(header + SLACK).await,
            )
        });
    }
    // Fresh connections are answered while the slow ones wait to be closed.
    let mut answered = 0;
    while !slow.is_empty() && answered < 100 {
        let mut c = server.client().await;
        let r = c.get("/hello").await;
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
        answered += 1;
        while let Some(done) = slow.try_join_next() {
            let (who, closed) = done.unwrap();
            assert!(
                closed.is_some(),
                "{who} was still open after {:?}",
                header + SLACK
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered >= 3, "only {answered} requests were answered");
    while let Some(done) = slow.join_next().await {
        let (who, closed) = done.unwrap();
        assert!(
            closed.is_some(),
            "{who} was still open after {:?}",
            header + SLACK
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_closed_when_idle_and_a_busy_one_is_not() {
    let server = Server::start(app(), limits(30, 2, 60)).await;
    let mut idle = server.client().await;
    assert_eq!(idle.get("/hello").await.status, 200);
    let mut busy = server.client().await;
    assert!(busy.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await);

    let closed = idle.closed_within(Duration::from_secs(2) + SLACK).await;
    assert!(closed.is_some(), "the idle connection is still open");
    let streamed = busy.response().await.expect("the whole stream");
    assert_eq!(streamed.body, b"chunk0;chunk1;chunk2;");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waiting_for_its_next_request_is_closed_by_the_header_timer() {
    // hyper starts its header timer as soon as a response is written.
    let server = Server::start(app(), limits(2, 60, 60)).await;
    let mut c = server.client().await;
    assert_eq!(c.get("/hello").await.status, 200);
    let closed = c.closed_within(Duration::from_secs(2) + SLACK).await;
    assert!(closed.is_some(), "still open past the header read timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_body_is_cut_but_a_long_response_is_not() {
    let server = Server::start(app(), limits(2, 2, 2)).await;
    let mut long = server.client().await;
    assert!(long.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await);

    // One byte every half second: each gap is well within the timeout, the
    // whole body (1000 bytes, over 8 minutes) is not.
    let mut slow = server.client().await;
    let head = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    assert!(slow.send(head.as_bytes()).await);
    let limit = Duration::from_secs(2) + SLACK;
    let start = tokio::time::Instant::now();
    let answer = loop {
        assert!(
            start.elapsed() < limit,
            "the trickling body was still being read after {limit:?}"
        );
        match slow.response_within(Duration::from_millis(500)).await {
            Some(answer) => break answer,
            None if !slow.send(b"a").await => break None,
            None => {}
        }
    };
    // An answer saying why, or the connection closed.
    if let Some(r) = answer {
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 408, "{text}");
        assert!(text.contains("did not arrive within 2 s"), "{text}");
        // The rest of that body is not waited for.
        assert!(
            slow.closed_within(SLACK).await.is_some(),
            "still open after the 408"
        );
    }

    let streamed = long.response().await.expect("the whole stream");
    assert_eq!(streamed.body, b"chunk0;chunk1;chunk2;");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_the_next_connection_waits_until_one_closes() {
    let limits = ListenerLimits {
        max_connections: 2,
        ..limits(30, 30, 30)
    };
    let server = Server::start(app(), limits).await;
    let mut first = server.client().await;
    assert_eq!(first.get("/hello").await.status, 200);
    let mut second = server.client().await;
    assert_eq!(second.get("/hello").await.status, 200);

    // The kernel completes the handshake; the server does not accept it.
    let mut third = server.client().await;
    assert!(third.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await);
    assert!(
        third
            .response_within(Duration::from_secs(1))
            .await
            .is_none(),
        "a third connection was served past the limit of 2"
    );
    drop(first);
    let r = third.response().await.expect("served once a slot is free");
    assert_eq!(r.status, 200);
    assert_eq!(second.get("/hello").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_outlives_the_header_and_idle_timeouts() {
    let server = Server::start(app(), limits(1, 1, 1)).await;
    let mut c = upgraded(&server).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(c.send(b"ping").await, "the upgraded connection was closed");
    let echoed = tokio::time::timeout(PATIENCE, c.exactly(4)).await.unwrap();
    assert_eq!(echoed.as_deref(), Some(b"ping".as_slice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_server_closes_its_connections() {
    let server = Server::start(app(), ListenerLimits::default()).await;
    let mut kept = server.client().await;
    assert_eq!(kept.get("/hello").await.status, 200);
    let mut streaming = server.client().await;
    assert!(
        streaming
            .send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
    );
    let mut ws = upgraded(&server).await;

    server.task.abort();
    for (what, c) in [
        ("kept-alive", &mut kept),
        ("streaming", &mut streaming),
        ("upgraded", &mut ws),
    ] {
        assert!(
            c.closed_within(SLACK).await.is_some(),
            "the {what} connection is still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_a_request_in_flight_finish() {
    let release = Arc::new(Notify::new());
    let (started_tx, mut started) = mpsc::channel::<()>(1);
    let app = app().route(
        "/slow",
        get({
            let release = release.clone();
            move || async move {
                let _ = started_tx.send(()).await;
                release.notified().await;
                "done"
            }
        }),
    );
    let mut server = Server::start(app, ListenerLimits::default()).await;
    let mut idle = server.client().await;
    assert_eq!(idle.get("/hello").await.status, 200);
    let mut busy = server.client().await;
    assert!(busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await);
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap();

    server.shut_down();
    assert!(
        idle.closed_within(PATIENCE).await.is_some(),
        "the idle connection is still open"
    );
    let refused = tokio::time::timeout(PATIENCE, async {
        while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(refused.await.is_ok(), "still accepting after shutdown");
    assert!(
        !server.task.is_finished(),
        "returned with a request in flight"
    );

    release.notify_one();
    let r = busy
        .response()
        .await
        .expect("the request in flight is answered");
    assert_eq!((r.status, r.body.as_slice()), (200, b"done".as_slice()));
    let done = tokio::time::timeout(PATIENCE, &mut server.task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}
