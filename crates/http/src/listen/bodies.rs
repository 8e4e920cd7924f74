//! What each request carries through the listener: the request body's
//! deadline, and the count of requests in flight that tells a quiet
//! connection from a busy one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body did not arrive within the listener's
/// `request_body_timeout`; what a handler reading the body gets.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f32())]
pub struct BodyTimeout(Duration);

/// A request body that must end before a deadline set at its head.
pub(super) struct Deadline<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Made only when the body first has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
}

pub(super) fn deadline<B>(inner: B, timeout: Duration) -> Deadline<B> {
    Deadline {
        inner,
        timeout,
        deadline: Instant::now() + timeout,
        sleep: None,
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's requests: how many are in flight now, and how many
/// have started since it was accepted.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Requests {
    in_flight: usize,
    started: u64,
}

/// One request in flight on its connection, from its head until its
/// response body is finished or dropped.
pub(super) struct InFlight(Arc<watch::Sender<Requests>>);

impl InFlight {
    pub(super) fn start(count: Arc<watch::Sender<Requests>>) -> Self {
        count.send_modify(|n| {
            n.in_flight += 1;
            n.started += 1;
        });
        Self(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| n.in_flight -= 1);
    }
}

/// A response body that keeps its request counted as in flight.
pub(super) struct Tracked {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub(super) fn new(inner: axum::body::Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves once the connection has had nothing in flight for too long:
/// `first` from accept until its first request head has arrived, `idle`
/// after each request.
pub(super) async fn quiet(
    mut requests: watch::Receiver<Requests>,
    first: Duration,
    idle: Duration,
) {
    loop {
        // An error means the connection (which owns the sender) is gone.
        let seen = requests
            .wait_for(|n| n.in_flight == 0)
            .await
            .map(|n| n.started);
        let Ok(started) = seen else {
            return std::future::pending().await;
        };
        // Whether a request came is read from the count, not from having
        // seen it change: a request may start and end before this looks.
        let limit = if started == 0 { first } else { idle };
        if tokio::time::timeout(limit, requests.changed())
            .await
            .is_err()
        {
            return;
        }
    }
}
