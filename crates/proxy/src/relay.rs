//! Relaying two upgraded connections byte for byte, with back-pressure (a
//! bounded buffer per direction: a write waits for a slow reader before the
//! next read), an idle limit across both directions and a total limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Limits;

/// Bytes read before they are written on; a write waits for the reader.
const BUFFER: usize = 16 * 1024;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed (or one failed).
    Closed,
    /// No traffic either way for [`Limits::idle`].
    Idle,
    /// [`Limits::total`] reached.
    Total,
}

/// Milliseconds since the relay started at the last byte either way.
#[derive(Default)]
struct Activity {
    started: Option<Instant>,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        if let Some(s) = self.started {
            self.last_ms
                .store(s.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn idle_for(&self) -> std::time::Duration {
        let now = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        std::time::Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

async fn pump<R, W>(mut from: R, mut to: W, activity: &Activity) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        activity.touch();
    }
}

/// Relays `a` and `b` until both close, or a limit is reached (then both
/// are dropped, which closes them).
pub async fn relay<A, B>(a: A, b: B, limits: Limits) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity {
        started: Some(Instant::now()),
        last_ms: AtomicU64::new(0),
    });
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let both = async {
        let _ = tokio::join!(
            pump(a_read, b_write, &activity),
            pump(b_read, a_write, &activity)
        );
    };
    let idle = async {
        loop {
            let quiet = activity.idle_for();
            if quiet >= limits.idle {
                return;
            }
            tokio::time::sleep(limits.idle - quiet).await;
        }
    };
    tokio::select! {
        _ = both => RelayEnd::Closed,
        _ = idle => RelayEnd::Idle,
        _ = tokio::time::sleep(limits.total) => RelayEnd::Total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(idle_ms: u64, total_ms: u64) -> Limits {
        Limits {
            idle: Duration::from_millis(idle_ms),
            total: Duration::from_millis(total_ms),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_a_close_ends_the_relay() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(relay(a, b, limits(5_000, 10_000)));
        client.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        server.write_all(b"back").await.unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back");
        drop(client);
        drop(server);
        assert_eq!(task.await.unwrap(), RelayEnd::Closed);
    }

    #[tokio::test]
    async fn a_slow_reader_holds_the_writer_back_and_loses_nothing() {
        use std::sync::atomic::AtomicUsize;
        const CHUNK: usize = 1024;
        const CHUNKS: usize = 1024;
        let (mut client, a) = tokio::io::duplex(CHUNK);
        let (b, mut server) = tokio::io::duplex(CHUNK);
        tokio::spawn(relay(a, b, limits(5_000, 20_000)));
        let written = Arc::new(AtomicUsize::new(0));
        let counter = written.clone();
        tokio::spawn(async move {
            for i in 0..CHUNKS {
                let chunk = [(i % 251) as u8; CHUNK];
                if client.write_all(&chunk).await.is_err() {
                    break;
                }
                counter.fetch_add(CHUNK, Ordering::Relaxed);
            }
        });
        // The reader does not read yet: the writer gets only as far as the
        // buffers on the way (two pipes and the relay's own).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = written.load(Ordering::Relaxed);
        assert!(
            held <= 2 * CHUNK + BUFFER + CHUNK,
            "writer ran ahead: {held} bytes"
        );
        let mut all = Vec::with_capacity(CHUNK * CHUNKS);
        let mut buf = [0u8; 4096];
        while all.len() < CHUNK * CHUNKS {
            let n = tokio::time::timeout(Duration::from_secs(10), server.read(&mut buf))
                .await
                .expect("bounded")
                .unwrap();
            assert!(n > 0, "stream ended early at {}", all.len());
            all.extend_from_slice(&buf[..n]);
        }
        for (i, chunk) in all.chunks(CHUNK).enumerate() {
            assert!(
                chunk.iter().all(|b| *b == (i % 251) as u8),
                "chunk {i} intact and in order"
            );
        }
    }

    #[tokio::test]
    async fn a_quiet_connection_is_closed_after_the_idle_limit() {
        let (_client, a) = tokio::io::duplex(64);
        let (b, _server) = tokio::io::duplex(64);
        let end = relay(a, b, limits(100, 10_000)).await;
        assert_eq!(end, RelayEnd::Idle);
    }

    #[tokio::test]
    async fn a_busy_connection_is_closed_at_the_total_limit() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(relay(a, b, limits(150, 400)));
        // Traffic every 50 ms keeps it from idling; the total limit ends it.
        let sender = tokio::spawn(async move {
            for _ in 0..40 {
                if client.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            while matches!(server.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        assert_eq!(task.await.unwrap(), RelayEnd::Total);
        sender.abort();
        reader.abort();
    }
}
