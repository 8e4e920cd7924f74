//! A raw HTTP/1.1 client over one loopback socket, so the tests control every
//! byte and see exactly when the server closes; and a server under test.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use clawplane_http::ListenerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// How long any single exchange the tests expect to succeed may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `clawplane_http::serve` on 127.0.0.1:0.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(app: Router, limits: ListenerLimits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(clawplane_http::serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Resolves the shutdown future.
    pub fn shut_down(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `raw`; false once the server has closed.
    pub async fn send(&mut self, raw: &[u8]) -> bool {
        self.stream.write_all(raw).await.is_ok()
    }

    /// `GET path`, kept alive.
    pub async fn get(&mut self, path: &str) -> Response {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(self.send(request.as_bytes()).await, "send GET {path}");
        self.response()
            .await
            .unwrap_or_else(|| panic!("an answer to GET {path}"))
    }

    /// The next response; `None` if the server closed first. Panics past
    /// [`PATIENCE`].
    pub async fn response(&mut self) -> Option<Response> {
        timeout(PATIENCE, self.read_response())
            .await
            .expect("a response in time")
    }

    /// The next response if one starts within `limit`.
    pub async fn response_within(&mut self, limit: Duration) -> Option<Option<Response>> {
        timeout(limit, self.read_response()).await.ok()
    }

    async fn read_response(&mut self) -> Option<Response> {
        let head = self.line_block().await?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let body = if let Some(length) = length {
            self.exactly(length).await?
        } else if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                let size_line = self.line().await?;
                let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
                let chunk = self.exactly(size + 2).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
            body
        } else {
            Vec::new()
        };
        Some(Response { status, body })
    }

    /// Reads until `\r\n\r\n`; the head without it.
    pub async fn line_block(&mut self) -> Option<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head[..end]).into_owned());
            }
            self.fill().await?;
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            self.fill().await?;
        }
    }

    pub async fn exactly(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// How long until the server closes this connection (EOF or reset),
    /// anything it sends meanwhile discarded; `None` if still open after
    /// `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let drained = timeout(limit, async {
            while self.fill().await.is_some() {
                self.buf.clear();
            }
        });
        drained.await.ok().map(|()| start.elapsed())
    }

    /// Until the server closes, writes `trickle` one byte a `pace`; how long
    /// that took, or `None` if it was still open after `limit`.
    pub async fn trickle_until_closed(
        &mut self,
        trickle: &[u8],
        pace: Duration,
        limit: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        let mut bytes = trickle.iter().cycle();
        while start.elapsed() < limit {
            let Self { stream, .. } = self;
            let (mut read, mut write) = stream.split();
            let mut scratch = [0u8; 1024];
            tokio::select! {
                r = read.read(&mut scratch) => match r {
                    Ok(0) | Err(_) => return Some(start.elapsed()),
                    Ok(_) => {}
                },
                () = tokio::time::sleep(pace) => {
                    let byte = [*bytes.next().unwrap()];
                    if write.write_all(&byte).await.is_err() {
                        return Some(start.elapsed());
                    }
                }
            }
        }
        None
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
