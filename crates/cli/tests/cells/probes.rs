//! Probes: one shell command each, run by the attacking tenant's agent, and
//! what its output must not show. Every secret of the host and of the other
//! tenant is looked for in every output; a probe adds what it aims at. What
//! leaked is collected, named and shown with its evidence (secrets by name
//! only), so one run reports every hole, not just the first.

use std::path::PathBuf;

/// What one probe's output is checked for.
#[derive(Clone)]
pub enum Check {
    /// `needle` must not appear (unless the command itself holds it).
    Absent { what: String, needle: String },
    /// No line of the file (read after the command ran) may appear.
    NoLineOf { what: String, path: PathBuf },
    /// The process must not be listed: a line `<pid> <its command line>`.
    NoProcess {
        what: String,
        pid: u32,
        cmdline: String,
    },
    /// A connection must fail: the probe prints `OPEN` or `CLOSED`.
    Closed { what: String },
    /// The marker must appear (an endpoint that has to stay reachable).
    Reaches { what: String, marker: String },
    /// The output is a uid, and not this one.
    NotUid { what: String, uid: u32 },
    /// The command tried to make this file; it must not exist afterwards.
    Unwritten { what: String, path: PathBuf },
}

/// A shell command and its checks.
pub struct Probe {
    pub command: String,
    pub checks: Vec<Check>,
}

impl Probe {
    pub fn new(command: impl Into<String>) -> Probe {
        Probe {
            command: command.into(),
            checks: Vec::new(),
        }
    }

    pub fn absent(mut self, what: impl Into<String>, needle: impl Into<String>) -> Probe {
        self.checks.push(Check::Absent {
            what: what.into(),
            needle: needle.into(),
        });
        self
    }

    pub fn check(mut self, check: Check) -> Probe {
        self.checks.push(check);
        self
    }
}

/// A secret looked for in every output: (what it is, its value).
pub type Secret = (String, String);

/// What leaked so far.
#[derive(Default)]
pub struct Findings {
    leaks: Vec<String>,
}

/// The lines worth matching: long enough not to match by chance.
fn lines_of(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| l.len() >= 24)
}

/// Text without terminal colours (`ESC[1m`; the gateway drops control
/// characters from a tool's result, leaving `[1m`) and other control
/// characters but line ends.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if c == '[' {
            let digits = rest
                .find(|d: char| !(d.is_ascii_digit() || d == ';'))
                .unwrap_or(rest.len());
            if rest[digits..].starts_with('m') {
                rest = &rest[digits + 1..];
                continue;
            }
        }
        if c == '\n' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Up to 60 bytes before `at` and 140 from it, on one line.
fn excerpt(output: &str, at: usize) -> String {
    let boundary = |mut i: usize| {
        while !output.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = boundary(at.saturating_sub(60));
    let end = boundary((at + 140).min(output.len()));
    output[start..end].replace('\n', "⏎")
}

impl Findings {
    /// Checks one probe's output against its own checks and every secret.
    pub fn probe(&mut self, probe: &Probe, secrets: &[Secret], output: &str) {
        let command = &probe.command;
        for (what, value) in secrets {
            if output.contains(value.as_str()) && !command.contains(value.as_str()) {
                self.leaks.push(format!(
                    "{what} leaked through `{command}` (value withheld)"
                ));
            }
        }
        for check in &probe.checks {
            if let Some(leak) = judge(check, command, output) {
                self.leaks.push(leak);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.leaks.is_empty()
    }

    pub fn report(&self) -> String {
        let mut text = format!("{} isolation failures:\n", self.leaks.len());
        for leak in &self.leaks {
            text.push_str("  - ");
            text.push_str(leak);
            text.push('\n');
        }
        text
    }
}

fn judge(check: &Check, command: &str, output: &str) -> Option<String> {
    match check {
        Check::Absent { what, needle } => {
            let at = output.find(needle.as_str())?;
            (!command.contains(needle.as_str())).then(|| {
                format!(
                    "{what} leaked through `{command}`: …{}…",
                    excerpt(output, at)
                )
            })
        }
        Check::NoLineOf { what, path } => {
            let text = plain(&std::fs::read_to_string(path).unwrap_or_default());
            let output = plain(output);
            let line = lines_of(&text).find(|l| output.contains(l))?;
            Some(format!(
                "{what} leaked through `{command}`: the line {:?}",
                line.chars().take(160).collect::<String>()
            ))
        }
        Check::NoProcess { what, pid, cmdline } => {
            let line = output.lines().map(str::trim).find(|l| {
                l.strip_prefix(&format!("{pid} "))
                    .is_some_and(|rest| rest.trim_start().starts_with(cmdline.as_str()))
            })?;
            Some(format!("{what} is visible through `{command}`: {line:?}"))
        }
        Check::Closed { what } => match output.trim() {
            "CLOSED" => None,
            "OPEN" => Some(format!("{what} is reachable: `{command}` connected")),
            other => panic!("`{command}` printed neither OPEN nor CLOSED: {other:?}"),
        },
        Check::Reaches { what, marker } => (!output.contains(marker.as_str())).then(|| {
            format!("{what} is not reachable, but must be: `{command}` printed {output:?}")
        }),
        Check::NotUid { what, uid } => {
            let seen: u32 = output
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("`{command}` printed no uid: {output:?}"));
            (seen == *uid).then(|| format!("{what}: `{command}` printed {seen}"))
        }
        Check::Unwritten { what, path } => path
            .exists()
            .then(|| format!("{what}: `{command}` made {}", path.display())),
    }
}

/// Tries to make `path`; what the shell said (the file is looked for on the host).
pub fn touch(path: &std::path::Path) -> String {
    format!("touch {} 2>&1; echo tried", path.display())
}

/// `OPEN` when a TCP connection to `127.0.0.1:<port>` succeeds within 3 s, else `CLOSED`.
pub fn connect(port: u16) -> String {
    format!("timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo OPEN || echo CLOSED")
}

/// `OPEN` when a connection to the Unix socket at `path` succeeds within 3 s
/// (curl's exit code 7 is "could not connect", whatever the reason), else `CLOSED`.
pub fn connect_unix(path: &str) -> String {
    format!(
        "curl -s -m 3 --unix-socket {path} http://localhost/ >/dev/null 2>&1; \
         rc=$?; [ $rc -eq 7 ] && echo CLOSED || {{ [ $rc -eq 127 ] && echo no curl || echo OPEN; }}"
    )
}
