//! The one way clawplane serves HTTP on a socket (`clawplane serve`, the
//! runtime agent): [`serve`] with [`ListenerLimits`], so no stranger can hold
//! a connection, a task or a file descriptor for free.
//!
//! Built on hyper-util's connection builder (HTTP/1.1 and h2c, with upgrades,
//! as `axum::serve` does) and hyper-util's [`GracefulShutdown`]. Each limit:
//!
//! - **Header read** (`header_read_timeout`): hyper's own HTTP/1 header
//!   timer, which needs a timer (`TokioTimer`): without one hyper warns and
//!   ignores its default, and panics on a configured value. Checked in hyper
//!   1.12: the timer starts whenever hyper begins waiting for a request head,
//!   which on a kept-alive connection is the moment the previous response has
//!   been written (hyperium/hyper#3828). So on HTTP/1 the wait *between*
//!   requests is bounded by it too, and a kept-alive connection is closed
//!   after `min(header_read_timeout, idle_timeout)` without a new request;
//!   clients that pool connections to a clawplane listener should drop idle
//!   ones sooner than that. hyper-util's protocol sniffing (the first 24
//!   bytes, to tell HTTP/1 from an h2 preface) runs before hyper's timer
//!   exists, so a client that connects and sends nothing would escape it:
//!   the connection's own watchdog therefore also closes a connection whose
//!   first request has not begun within `header_read_timeout` of accept.
//! - **Idle** (`idle_timeout`): hyper has no idle timeout (hyperium/hyper#1628)
//!   and neither hyper-util nor tower-http has one for a server connection.
//!   Each connection counts its requests in flight (from the head received
//!   until the response body is finished or dropped, so a streamed answer,
//!   SSE included, counts as in flight however quiet it is) and is closed
//!   once nothing has been in flight for `idle_timeout`. This is what bounds
//!   an h2c connection, which has no header timer in hyper.
//! - **Request body** (`request_body_timeout`): the whole body must arrive
//!   within this time of its head. tower-http's `RequestBodyTimeoutLayer` was
//!   not used: its timer restarts at every frame, so a body trickling one
//!   byte a second would never end. The handler reading the body sees a
//!   [`BodyTimeout`] error; responses are never timed.
//! - **Connections** (`max_connections`): a semaphore permit is taken before
//!   each `accept`, so at the limit new connections wait in the kernel's
//!   backlog; the permit lives in the socket, so an upgraded connection
//!   (WebSocket) keeps holding it until it closes.
//!
//! Upgrades: once hyper hands a connection over (`101 Switching Protocols`),
//! the header and idle limits no longer apply to it; the upgraded stream is
//! still cut when `serve` ends or is dropped.
//!
//! Why hyper-util's `auto` builder rather than hyper's `http1` one: in
//! hyper-util 0.1.21 [`GracefulShutdown`] can watch `auto`'s upgradeable
//! connection but not `http1`'s. Its watched future cannot also be told to
//! shut down, so an idle connection is dropped rather than shut down
//! gracefully: for HTTP/1 with nothing in flight that is the same close.
//!
//! Not bounded here: a client that stops reading a response it asked for
//! (its request stays in flight); the caller bounds the graceful drain.

mod bodies;
mod io;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use bodies::BodyTimeout;

/// How long a stranger may hold a listener's connections, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A connection that has not sent a whole request head in this time is
    /// closed; on HTTP/1 this also bounds the wait for the next request on a
    /// kept-alive connection (see the module's notes). Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// The time to receive a request body, from its head. Responses are
    /// never timed (SSE, proxied pages, WebSockets). Default 60 s.
    pub request_body_timeout: Duration,
    /// Connections open at once, upgraded ones included; past it new
    /// connections wait, unaccepted, until one closes. Default 4096.
    pub max_connections: usize,
}

impl ListenerLimits {
    /// The defaults, usable in `const` items.
    pub const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        request_body_timeout: Duration::from_secs(60),
        max_connections: 4096,
    };
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How long `accept` rests after an error that is not one connection's
/// (e.g. too many open files), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, like
/// `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
/// .with_graceful_shutdown(shutdown)`: handlers can extract
/// [`ConnectInfo<SocketAddr>`], upgrades work. When `shutdown` resolves it
/// stops accepting, asks every connection to finish its request and close,
/// and returns once they all have (upgraded connections are then cut).
///
/// Every connection belongs to the returned future: dropping it (e.g. after
/// a `tokio::time::timeout` for the grace period) closes them all. An accept
/// error is logged and retried after a short rest; it never ends the loop.
///
/// # Errors
///
/// None today; the `io::Result` matches `axum::serve`.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let builder = builder(&limits);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Cancelled when this future ends or is dropped: cuts upgraded
    // connections, which hyper has handed to tasks this future does not own.
    let upgraded = CancellationToken::new();
    let _cut_upgraded = upgraded.clone().drop_guard();
    // Dropping the set aborts every connection's task.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer, permit) = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a connection's task panicked");
                    }
                }
                continue;
            }
            accepted = accept(&listener, &permits) => match accepted {
                Some(accepted) => accepted,
                None => continue,
            },
        };
        let io = io::ConnIo::new(stream, permit, upgraded.child_token());
        connections.spawn(connection(
            io,
            peer,
            builder.clone(),
            app.clone(),
            limits,
            graceful.watcher(),
        ));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // WebSockets over HTTP/2 (RFC 8441), as axum::serve enables.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    builder
}

/// Waits for a connection slot, then for a connection. `None` after an
/// accept error (already logged, and rested after when it was not the
/// peer's).
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    // The semaphore is never closed.
    let permit = permits.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(e) if is_peer_error(&e) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot accept a connection; retrying shortly");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            None
        }
    }
}

/// Errors that concern one connection that went away before it was accepted.
fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One connection, from accept until hyper is done with it (closed, or
/// handed over after an upgrade), or until it has been quiet too long.
async fn connection(
    io: io::ConnIo,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    limits: ListenerLimits,
    watcher: Watcher,
) {
    let (in_flight, quiet) = watch::channel(bodies::Requests::default());
    let in_flight = Arc::new(in_flight);
    let body_timeout = limits.request_body_timeout;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let started = bodies::InFlight::start(in_flight.clone());
        let request =
            request.map(|body| axum::body::Body::new(bodies::deadline(body, body_timeout)));
        handle(request, app.clone(), peer, started)
    });
    let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    tokio::select! {
        done = conn => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = bodies::quiet(quiet, limits.header_read_timeout, limits.idle_timeout) => {
            tracing::debug!(%peer, "closed a connection with nothing in flight");
        }
    }
}

async fn handle(
    mut request: Request<axum::body::Body>,
    app: Router,
    peer: SocketAddr,
    started: bodies::InFlight,
) -> Result<hyper::Response<bodies::Tracked>, Infallible> {
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.oneshot(request).await?;
    Ok(response.map(|body| bodies::Tracked::new(body, started)))
}
