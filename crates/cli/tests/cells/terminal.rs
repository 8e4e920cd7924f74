//! The Control UI's terminal as the owner's browser drives it: the console's
//! "Open OpenClaw" pass exchanged for the door cookie; the Control UI's page
//! and scripts loaded through the door (the gateway refuses a Control UI
//! whose build is not its own); a WebSocket through `serve`'s front door
//! with an `Origin`, as a browser; the gateway's own protocol (v4:
//! `connect`, then `terminal.open`, `terminal.input`, `terminal.close`); and
//! the shell's output read from `terminal.data` events.
//!
//! A reader task takes every frame off the socket as it arrives (the gateway
//! drops `terminal.data` for slow readers); a gap in the events' offsets is
//! repaired from `terminal.attach`'s replay buffer. A command's output is
//! framed by markers the shell computes (`$((n*7))`), so the echo of the
//! typed line never matches, and travels as base64, so the terminal cannot
//! mangle it.

use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::console::Visitor;
use crate::host::port_of;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The bound of every wait: an answer, the prompt's output, a command's.
const WAIT: Duration = Duration::from_secs(30);
/// Wide enough that no probe's line wraps.
const COLS: u32 = 500;

/// The owner's browser at its gateway's door.
pub struct Door {
    /// `<runtime_name>.localhost:<port>`, the gateway's host.
    pub host: String,
    /// The `clawplane_door` cookie the door set.
    pub cookie: String,
    /// `127.0.0.1:<port>`: serve, where the host's name leads.
    serve: String,
    client: reqwest::Client,
}

impl Door {
    /// "Open OpenClaw" as the signed-in `visitor`'s browser follows it: the
    /// console's page posts its one-time pass to the gateway's host, whose
    /// answer sets the door cookie.
    pub async fn enter(visitor: &mut Visitor<'_>) -> Door {
        let (status, page) = visitor.get("/console/open").await;
        assert_eq!(status, 200, "the console's Open OpenClaw page: {page}");
        let action = attribute(&page, "action");
        let host = action
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/__clawplane/door"))
            .unwrap_or_else(|| panic!("the door's address: {action}"))
            .to_owned();
        let pass = attribute(
            &page[page.find("name=\"pass\"").expect("a pass")..],
            "value",
        );
        let console = visitor.server.address.replace("127.0.0.1", "localhost");
        let r = visitor
            .client
            .post(format!("{}/__clawplane/door", visitor.server.address))
            .header("host", &host)
            .header("origin", console)
            .header("sec-fetch-mode", "navigate")
            .form(&[("pass", pass.as_str())])
            .send()
            .await
            .expect("the door's form posted");
        assert_eq!(r.status().as_u16(), 303, "the door took the pass");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.starts_with("clawplane_door="))
            .expect("the door cookie")
            .to_owned();
        Door {
            host,
            cookie,
            serve: format!("127.0.0.1:{}", port_of(&visitor.server.address)),
            client: visitor.client.clone(),
        }
    }

    /// The build of the Control UI the gateway serves its owner, as the
    /// page's scripts tell it to the gateway: the page is loaded through the
    /// door, then its module scripts and their static imports (a handful),
    /// until one holds the bundle's `buildId`.
    pub async fn control_ui_build(&self) -> String {
        let page = self.load("/", "navigate").await;
        assert!(
            page.contains("data-openclaw-control-ui-build-id"),
            "the door serves its owner the Control UI: {page}"
        );
        let mut queue: Vec<String> = page
            .match_indices("src=\"")
            .filter_map(|(at, _)| page[at + 5..].split('"').next())
            .filter(|src| src.ends_with(".js"))
            .map(|src| format!("/{}", src.trim_start_matches("./").trim_start_matches('/')))
            .collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(path) = queue.pop() {
            if !seen.insert(path.clone()) {
                continue;
            }
            assert!(
                seen.len() <= 50,
                "no buildId in 50 scripts of the Control UI"
            );
            let script = self.load(&path, "cors").await;
            if let Some(at) = script.find("buildId:`") {
                let rest = &script[at + 9..];
                return rest[..rest.find('`').unwrap_or(0)].to_owned();
            }
            let dir = &path[..path.rfind('/').unwrap_or(0)];
            queue.extend(static_imports(&script).map(|file| format!("{dir}/{file}")));
        }
        panic!("no buildId in the Control UI's scripts {seen:?} of its page {page}");
    }

    /// A page or script of the gateway's host, as the browser asks for it.
    async fn load(&self, path: &str, mode: &str) -> String {
        let r = self
            .client
            .get(format!("http://{}{path}", self.serve))
            .header("host", &self.host)
            .header("cookie", &self.cookie)
            .header("sec-fetch-mode", mode)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} through the door: {e}"));
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} through the door: {body}");
        body
    }
}

/// The files a module imports statically from its own directory
/// (`import"./x.js"`, `from"./x.js"`).
fn static_imports(script: &str) -> impl Iterator<Item = &str> {
    script.match_indices("\"./").filter_map(|(at, _)| {
        let before = script[..at].trim_end();
        let file = script[at + 3..].split('"').next()?;
        ((before.ends_with("from") || before.ends_with("import")) && file.ends_with(".js"))
            .then_some(file)
    })
}

/// The value of the first `name="..."` attribute in `html`.
fn attribute(html: &str, name: &str) -> String {
    let start = format!("{name}=\"");
    let at = html
        .find(&start)
        .unwrap_or_else(|| panic!("a {name} attribute in {html}"))
        + start.len();
    html[at..]
        .split('"')
        .next()
        .unwrap_or_default()
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// One terminal of the Control UI, on its own connection.
pub struct Terminal {
    sink: SplitSink<Ws, Message>,
    frames: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
    /// `hello-ok`'s payload.
    pub hello: Value,
    /// `terminal.open`'s answer: `sessionId`, `agentId`, `shell`, `cwd`, `confined`.
    pub opened: Value,
    session: String,
    requests: u64,
    runs: u64,
    /// The output since the current command was typed (raw, with escapes).
    screen: String,
    /// The UTF-16 end offset of the last output received (`None` after a
    /// replay without one: the next event's is taken as it comes).
    end: Option<u64>,
    /// Output was dropped since: the screen is to be replayed.
    gap: bool,
    /// The terminal is being closed: its end is expected.
    closing: bool,
}

impl Terminal {
    /// Connects through `door` as the Control UI of `build` does and opens
    /// a terminal.
    pub async fn open(door: &Door, build: &str) -> Terminal {
        let mut request = format!("ws://{}/", door.serve)
            .into_client_request()
            .expect("a ws:// url");
        let headers = request.headers_mut();
        headers.insert("host", door.host.parse().unwrap());
        headers.insert("cookie", door.cookie.parse().unwrap());
        headers.insert("origin", format!("http://{}", door.host).parse().unwrap());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the door answered the WebSocket within 30 s")
            .expect("the door opened the WebSocket to the gateway");
        let (sink, mut stream) = ws.split();
        let (tx, frames) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let frame = match message {
                    Message::Text(text) => serde_json::from_str(&text)
                        .unwrap_or_else(|_| json!({"type": "unreadable", "text": text})),
                    Message::Close(close) => json!({"type": "closed", "why": format!("{close:?}")}),
                    _ => continue,
                };
                if tx.send(frame).is_err() {
                    break;
                }
            }
        });
        let mut terminal = Terminal {
            sink,
            frames,
            reader,
            hello: Value::Null,
            opened: Value::Null,
            session: String::new(),
            requests: 0,
            runs: 0,
            screen: String::new(),
            end: Some(0),
            gap: false,
            closing: false,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = terminal
                .frame(deadline, "the connect.challenge event")
                .await;
            if frame["type"] == "event" && frame["event"] == "connect.challenge" {
                break;
            }
        }
        // As the Control UI sends it (its build must be the gateway's); the
        // runtime signs it in as the owner.
        let hello = terminal
            .call(
                "connect",
                json!({
                    "minProtocol": 4, "maxProtocol": 4,
                    "client": {
                        "id": "openclaw-control-ui", "version": "control-ui", "buildId": build,
                        "platform": "Linux x86_64", "mode": "webchat",
                    },
                    "role": "operator", "scopes": ["operator.admin", "operator.read"],
                    "caps": ["terminal-offset-seq", "terminal-session-metadata"],
                }),
            )
            .await;
        assert_eq!(hello["type"], "hello-ok", "{hello}");
        let methods = hello["features"]["methods"].as_array();
        assert!(
            methods.is_some_and(|m| m.iter().any(|m| m == "terminal.open")),
            "the owner's connection offers the terminal: {hello}"
        );
        terminal.hello = hello;
        let opened = terminal
            .call("terminal.open", json!({"cols": COLS, "rows": 50}))
            .await;
        terminal.session = opened["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a terminal session: {opened}"))
            .to_owned();
        terminal.opened = opened;
        terminal
    }

    /// Types `line` and Enter, then waits until the terminal shows `shown`;
    /// everything it showed since, without escapes.
    pub async fn type_line(&mut self, line: &str, shown: &str) -> String {
        self.screen.clear();
        self.input(line).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let text = plain(&self.screen);
            if text.contains(shown) {
                return text;
            }
            self.next(deadline, &format!("{shown:?} after typing {line:?}"))
                .await;
        }
    }

    /// Runs `command` at the prompt (in a subshell, its stderr merged as the
    /// agent's shell tool does, nothing on its stdin); what it printed.
    pub async fn run(&mut self, command: &str) -> String {
        self.runs += 1;
        let n = self.runs;
        let (begin, end) = (
            format!("CELL-BEGIN-{}\n", n * 7),
            format!("CELL-END-{}\n", n * 7),
        );
        self.screen.clear();
        self.input(&format!(
            "echo CELL-BEGIN-$(({n}*7)); ( {command} ) </dev/null 2>&1 | base64 -w0; echo; echo CELL-END-$(({n}*7))"
        ))
        .await;
        let deadline = Instant::now() + WAIT;
        loop {
            let text = plain(&self.screen);
            if let Some(from) = text.find(&begin).map(|at| at + begin.len()) {
                if let Some(to) = text[from..].find(&end) {
                    let encoded = &text[from..from + to];
                    let bytes = base64_decode(encoded).unwrap_or_else(|| {
                        panic!("`{command}` printed no base64 in the terminal: {encoded:?}")
                    });
                    return String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            self.next(deadline, &format!("the output of `{command}`"))
                .await;
        }
    }

    /// Closes the terminal and the connection.
    pub async fn close(mut self) {
        let session = self.session.clone();
        self.closing = true;
        let closed = self
            .call("terminal.close", json!({"sessionId": session}))
            .await;
        assert_eq!(closed["ok"], true, "the terminal closed: {closed}");
        let _ = self.sink.close().await;
        self.reader.abort();
    }

    async fn input(&mut self, line: &str) {
        let session = self.session.clone();
        let typed = self
            .call(
                "terminal.input",
                json!({"sessionId": session, "data": format!("{line}\r")}),
            )
            .await;
        assert_eq!(typed["ok"], true, "the terminal took {line:?}: {typed}");
    }

    /// Sends a request and waits (bounded) for its answer's payload; panics
    /// on an error answer. Output arriving meanwhile goes to the screen.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.requests += 1;
        let id = self.requests.to_string();
        let request = json!({"type": "req", "id": id, "method": method, "params": params});
        self.sink
            .send(Message::Text(request.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{method} sent: {e}"));
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = self
                .frame(deadline, &format!("the answer to {method}"))
                .await;
            if frame["type"] == "res" && frame["id"] == id.as_str() {
                assert_eq!(frame["ok"], true, "{method} failed: {frame}");
                return frame["payload"].clone();
            }
            self.observe(&frame);
        }
    }

    /// Reads one frame and takes in what it says; replays the screen when
    /// output was dropped.
    async fn next(&mut self, deadline: Instant, what: &str) {
        let frame = self.frame(deadline, what).await;
        self.observe(&frame);
        if self.gap {
            self.replay().await;
        }
    }

    /// The next frame, within `deadline`.
    async fn frame(&mut self, deadline: Instant, what: &str) -> Value {
        let received = tokio::time::timeout_at(deadline.into(), self.frames.recv()).await;
        let shown = || {
            let text = plain(&self.screen);
            let skip = text.chars().count().saturating_sub(2000);
            text.chars().skip(skip).collect::<String>()
        };
        match received {
            Ok(Some(frame)) if frame["type"] == "closed" => {
                panic!("the gateway closed the connection waiting for {what}: {frame}")
            }
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the connection ended waiting for {what}"),
            Err(_) => panic!(
                "no {what} within {} s; the terminal showed (its last 2000 characters): {:?}",
                WAIT.as_secs(),
                shown()
            ),
        }
    }

    /// Output of this terminal goes to the screen (a gap in its offsets is
    /// noted); its end fails the test.
    fn observe(&mut self, frame: &Value) {
        if frame["type"] != "event" || frame["payload"]["sessionId"] != self.session.as_str() {
            return;
        }
        let payload = &frame["payload"];
        match frame["event"].as_str() {
            Some("terminal.data") => {
                let data = payload["data"].as_str().unwrap_or_default();
                let seq = payload["seq"].as_u64().unwrap_or_default();
                let start = seq.saturating_sub(data.encode_utf16().count() as u64);
                if self.end.is_some_and(|end| end != start) {
                    self.gap = true;
                }
                self.end = Some(seq);
                self.screen.push_str(data);
            }
            Some("terminal.exit") if !self.closing => {
                panic!("the terminal's shell ended: {payload}")
            }
            _ => {}
        }
    }

    /// Output was dropped: the screen becomes the gateway's replay buffer
    /// (which holds the current command's output unless it was huge).
    async fn replay(&mut self) {
        let session = self.session.clone();
        let attached = self
            .call("terminal.attach", json!({"sessionId": session}))
            .await;
        self.screen = attached["buffer"].as_str().unwrap_or_default().to_owned();
        self.end = attached["seq"].as_u64();
        self.gap = false;
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Terminal output as text: without escape sequences (CSI, OSC, two- and
/// three-character ones), carriage returns and other control characters
/// but line ends and tabs.
pub fn plain(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if c == '\n' || c == '\t' || !c.is_control() {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final character.
            Some('[') => {
                while chars
                    .next_if(|c| ('\u{20}'..='\u{3f}').contains(c))
                    .is_some()
                {}
                chars.next();
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Character sets: ESC ( B and the like.
            Some('(' | ')' | '*' | '+') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// Standard base64 (padding and whitespace allowed); `None` when `text` is not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn terminal_output_is_read_as_text() {
    let raw = "\u{1b}[?2004h\u{1b}]0;a@cell: ~\u{7}$ echo\u{1b}[0m \u{1b}(Bok\r\n";
    assert_eq!(plain(raw), "$ echo ok\n");
    assert_eq!(
        base64_decode("aGVsbG8sIGNlbGwK\n").as_deref(),
        Some(&b"hello, cell\n"[..])
    );
    assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
    assert!(base64_decode("not base64!").is_none());
}
