//! Raw HTTP/1.1 to `serve`, so a target can send any `Host` and any path
//! (an HTTP client library would refuse or normalise them first).
//!
//! Each exchange is one connection (`Connection: close`), so a request
//! `serve` cannot parse never poisons the next one, and a reply is
//! complete when the server closes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one exchange may take before the target fails: far above
/// what any answer needs, so only a hung server trips it.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

/// A request line and headers, written as given (CR and LF inside values
/// are dropped, so one request stays one request).
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The request target: a path, or an absolute URL.
    pub target: Vec<u8>,
    /// Headers in order; `Connection` and `Content-Length` are added.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let clean = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .iter()
                .copied()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect()
        };
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend(clean(&self.target).into_iter().filter(|b| *b != b' '));
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend(clean(value));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A reply: its status, headers (names lower-cased) and decoded body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// Every header named `name` (lower case).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` on a fresh connection and reads the whole reply.
/// `Err` says what went wrong (no reply at all is an error: a panicking
/// handler closes the connection without one).
pub async fn exchange(address: SocketAddr, request: &RawRequest) -> Result<Reply, String> {
    tokio::time::timeout(EXCHANGE_LIMIT, async {
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(&request.to_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        // A reset after the reply was sent still leaves the reply readable.
        let _ = stream.read_to_end(&mut raw).await;
        parse(&raw)
    })
    .await
    .map_err(|_| format!("no reply within {EXCHANGE_LIMIT:?}"))?
}

/// Parses a whole HTTP/1.1 reply.
pub fn parse(raw: &[u8]) -> Result<Reply, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(format!("incomplete reply ({} bytes)", raw.len()))
        }
        Err(e) => return Err(format!("unparsable reply: {e}")),
    };
    let status = response.code.ok_or("no status")?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &raw[head_len..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_one_request_and_replies_are_read_whole() {
        let request = RawRequest {
            method: "GET".into(),
            target: b"/a b\r\nX: y".to_vec(),
            headers: vec![("Host".into(), b"h\r\nInjected: 1".to_vec())],
            body: Vec::new(),
        };
        let bytes = String::from_utf8(request.to_bytes()).unwrap();
        assert!(bytes.starts_with("GET /abX:y HTTP/1.1\r\nHost: hInjected: 1\r\n"));
        let reply = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"abcd"[..]));
    }
}
