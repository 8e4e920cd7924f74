//! The benchmark's Markdown report, as it goes into `docs/benchmarks.md`.

use std::time::Duration;

use crate::stats::{machine, median, ms, p95, p99};

use super::hold::Holding;
use super::latency::Samples;
use super::{CLIENT_ADDRESS, GATEWAY_PREAUTH, ONE_ADDRESS_PROBE, TARGET};

pub(super) struct Report<'a> {
    pub(super) requests: usize,
    pub(super) warmup: usize,
    pub(super) block: usize,
    pub(super) load: &'a str,
    pub(super) ready_after: Duration,
    pub(super) route: &'a str,
    pub(super) http: (&'a Samples, &'a Samples),
    pub(super) ping: (&'a Samples, &'a Samples),
    /// How long the HTTP and the WebSocket runs took, both sides.
    pub(super) took: (Duration, Duration),
    pub(super) reconnects: (usize, usize),
    pub(super) close_seen: Option<&'a str>,
    pub(super) one_address: (usize, &'a str),
    pub(super) holding: &'a Holding,
}

pub(super) fn print_report(r: &Report<'_>) {
    println!("## Ingress: latency and WebSockets held\n");
    println!(
        "Machine: {}. Load average at the start: {}.\n",
        machine(),
        r.load
    );
    println!(
        "Settings: {} timed samples each side after {} warm-ups, sides alternating in blocks of \
         {}; one client on loopback; `serve` a child process (SQLite, the `local` provisioner, \
         request logging at `warn`), the instance ready {:.1} s after `POST \
         /api/openclaw/instance`; through the ingress with `Host: <runtime_name>.localhost:<port>` \
         and `X-Forwarded-For: {CLIENT_ADDRESS}` (127.0.0.1 is `serve`'s trusted proxy).\n",
        r.requests,
        r.warmup,
        r.block,
        r.ready_after.as_secs_f64()
    );
    println!("| what | path | p50 ms | p95 ms | p99 ms | max ms | samples | failures |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let rows = [
        (
            format!("HTTP `GET {}`", r.route),
            "direct to the gateway",
            r.http.1,
        ),
        (
            format!("HTTP `GET {}`", r.route),
            "through the ingress",
            r.http.0,
        ),
        (
            "WebSocket ping -> pong".to_owned(),
            "direct to the gateway",
            r.ping.1,
        ),
        (
            "WebSocket ping -> pong".to_owned(),
            "through the ingress",
            r.ping.0,
        ),
    ];
    for (what, path, s) in &rows {
        println!(
            "| {what} | {path} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
            ms(median(&s.times)),
            ms(p95(&s.times)),
            ms(p99(&s.times)),
            ms(s.times.last().copied().unwrap_or_default()),
            s.times.len(),
            s.failures
        );
    }
    println!();
    println!("| | added by the ingress at p50 ms | at p95 ms | at p99 ms | p50 within +1 ms |");
    println!("|---|---:|---:|---:|---|");
    for (what, (via, direct)) in [("HTTP", r.http), ("WebSocket", r.ping)] {
        let added = ms(median(&via.times)) - ms(median(&direct.times));
        println!(
            "| {what} | {added:+.3} | {:+.3} | {:+.3} | {} |",
            ms(p95(&via.times)) - ms(p95(&direct.times)),
            ms(p99(&via.times)) - ms(p99(&direct.times)),
            if added <= ms(TARGET) { "yes" } else { "**no**" }
        );
    }
    for (what, s) in [
        ("HTTP through the ingress", r.http.0),
        ("HTTP direct", r.http.1),
        ("ping through the ingress", r.ping.0),
        ("ping direct", r.ping.1),
    ] {
        if let Some(e) = &s.first_error {
            println!("\n{what}: first failure: {e}");
        }
    }
    println!(
        "\nThe HTTP run took {:.1} s and the WebSocket run {:.1} s (both sides, warm-ups \
         included). WebSockets reopened after the gateway closed them: {} through the ingress, \
         {} direct (close frame: {}).\n",
        r.took.0.as_secs_f64(),
        r.took.1.as_secs_f64(),
        r.reconnects.0,
        r.reconnects.1,
        r.close_seen.unwrap_or("none seen")
    );
    println!(
        "{ONE_ADDRESS_PROBE} WebSockets through the ingress from one client address: {} opened, \
         refused: {}.\n",
        r.one_address.0, r.one_address.1
    );

    let h = r.holding;
    println!(
        "### {} WebSockets held through the ingress\n\nOpened {} at a time, each from its own \
         documentation address: {} open in {:.2} s (refused: {}). A ping on each answered by {} \
         of {} at {:.1} s and by {} at {:.1} s after the first opened (memory read just before \
         each). After the gateway's {} s pre-auth timeout: {} closed by the gateway ({}).\n",
        h.wanted,
        h.concurrency,
        h.open,
        h.open_took.as_secs_f64(),
        h.refused,
        h.early_answered,
        h.open,
        h.early_at.as_secs_f64(),
        h.late_answered,
        h.late_at.as_secs_f64(),
        GATEWAY_PREAUTH.as_secs(),
        h.closed_later,
        h.close_frame.as_deref().unwrap_or("no close seen"),
    );
    println!(
        "| process | RSS before MiB | with {n} open, at {:.0} s | at {:.0} s | added MiB | KiB per \
         connection | after closing |",
        h.early_at.as_secs_f64(),
        h.late_at.as_secs_f64(),
        n = h.open
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mib = |k: u64| k as f64 / 1024.0;
    let per = |before: u64, with: u64| {
        if h.open == 0 {
            0.0
        } else {
            (with as f64 - before as f64) / h.open as f64
        }
    };
    let gateway = format!(
        "gateway ({} processes), for context",
        h.late.gateway_processes
    );
    for (name, b, e, l, a) in [
        (
            "`serve`",
            h.before.serve,
            h.early.serve,
            h.late.serve,
            h.after_close.serve,
        ),
        (
            "runtime agent",
            h.before.runtime,
            h.early.runtime,
            h.late.runtime,
            h.after_close.runtime,
        ),
        (
            gateway.as_str(),
            h.before.gateway,
            h.early.gateway,
            h.late.gateway,
            h.after_close.gateway,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:+.1} | {:.1} | {:.1} |",
            mib(b),
            mib(e),
            mib(l),
            mib(l) - mib(b),
            per(b, l),
            mib(a)
        );
    }
}
