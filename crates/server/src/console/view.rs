//! What the pages show, from the instance, the runtime's answers and the
//! ledger: labels, times, amounts, rows.

use chrono::{DateTime, TimeZone, Utc};
use clawplane_domain::{Instance, InstanceStatus, MicroUsd};
use clawplane_http::v1;
use serde_json::Value;

/// A status badge: CSS class and label.
pub fn badge(instance: Option<&Instance>) -> (&'static str, &'static str) {
    match instance.map(|i| i.status) {
        None => ("none", "Not created"),
        Some(InstanceStatus::Ready) => ("ready", "Ready"),
        Some(InstanceStatus::Provisioning) => ("provisioning", "Provisioning"),
        Some(InstanceStatus::Stopped) => ("stopped", "Stopped"),
        Some(InstanceStatus::Error) => ("error", "Error"),
        Some(InstanceStatus::Deleted) => ("deleted", "Deleted"),
    }
}

/// The stepper Creating → Deploying → Booting → Ready, from the instance as
/// the reconciler moves it: a row (creating), a runtime (deploying: its URL
/// is recorded), a gateway starting (booting), ready.
pub fn steps(instance: Option<&Instance>) -> Vec<(&'static str, &'static str)> {
    let reached = match instance {
        None => 0,
        Some(i) => match i.status {
            InstanceStatus::Ready | InstanceStatus::Stopped => 4,
            InstanceStatus::Provisioning if i.runtime_url.is_some() => 3,
            InstanceStatus::Provisioning => 2,
            _ => 1,
        },
    };
    ["Creating", "Deploying", "Booting", "Ready"]
        .into_iter()
        .enumerate()
        .map(|(n, label)| {
            let state = if n + 1 < reached || reached == 4 {
                "done"
            } else if n + 1 == reached {
                "current"
            } else {
                "todo"
            };
            (label, state)
        })
        .collect()
}

/// The gateway's address through the ingress, on the console's own port
/// and scheme: `http://<runtime_name>.<domain>:<port>/`.
pub fn gateway_url(runtime_name: &str, domain: &str, headers: &axum::http::HeaderMap) -> String {
    let port = crate::peer::port_suffix(headers);
    let scheme = if super::session::behind_tls(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{runtime_name}.{domain}{port}/")
}

/// `2026-11-24 09:30 UTC`.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time in milliseconds as `when`.
pub fn when_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(when)
        .unwrap_or_else(|| "-".into())
}

/// How long ago, roughly.
pub fn age_ms(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".into() };
    let secs = (Utc::now().timestamp_millis() - ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// `$12.35`, `-$0.50`.
pub fn usd(amount: MicroUsd) -> String {
    let cents = amount.format_cents();
    match cents.strip_prefix('-') {
        Some(abs) => format!("-${abs}"),
        None => format!("${cents}"),
    }
}

/// The runtime's `lastBackup` as text.
pub fn last_backup(status: &v1::Status) -> String {
    status
        .last_backup
        .as_ref()
        .map_or_else(|| "never".into(), |b| when(b.created_at))
}

/// Text of a JSON field (of OpenClaw's records, say), or `-`.
pub fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("-").to_owned()
}

/// Bytes as `1.2 MB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KB", bytes as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
        _ => format!("{:.1} GB", bytes as f64 / 1_073_741_824.0),
    }
}

/// A wait as people say it: "a second", "3 seconds", "2 minutes" (rounded up).
pub fn wait(wait: std::time::Duration) -> String {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    match seconds {
        1 => "a second".to_owned(),
        2..=90 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(wait(Duration::from_millis(300)), "a second");
        assert_eq!(wait(Duration::from_millis(1500)), "2 seconds");
        assert_eq!(wait(Duration::from_secs(91)), "2 minutes");
        assert_eq!(wait(Duration::from_secs(15 * 60)), "15 minutes");
    }

    #[test]
    fn the_stepper_follows_provisioning() {
        assert_eq!(steps(None)[0].1, "todo");
        let mut i = clawplane_testkit::provisioning_instance("u");
        let states = |i: &Instance| steps(Some(i)).into_iter().map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(states(&i), ["done", "current", "todo", "todo"]);
        i.runtime_url = Some("http://127.0.0.1:1".into());
        assert_eq!(states(&i), ["done", "done", "current", "todo"]);
        i.status = InstanceStatus::Ready;
        assert_eq!(states(&i), ["done", "done", "done", "done"]);
    }
}

/// The stylesheet's colours meet WCAG 2.x AA contrast (4.5:1 for text).
#[cfg(test)]
mod contrast {
    const STYLE: &str = include_str!("../../assets/console.css");

    /// A `--name:#rrggbb` colour of the stylesheet, or a literal `#rrggbb`.
    fn colour(name: &str) -> [f64; 3] {
        let hex = if let Some(hex) = name.strip_prefix('#') {
            hex.to_owned()
        } else {
            let at = STYLE
                .find(&format!("--{name}:#"))
                .unwrap_or_else(|| panic!("--{name} in the stylesheet"));
            STYLE[at + name.len() + 4..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect()
        };
        // `#abc` is `#aabbcc`.
        let hex = if hex.len() == 3 {
            hex.chars().flat_map(|c| [c, c]).collect()
        } else {
            hex
        };
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        [channel(0), channel(2), channel(4)]
    }

    fn ratio(fg: &str, bg: &str) -> f64 {
        let l = |c: [f64; 3]| 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        let (a, b) = (l(colour(fg)), l(colour(bg)));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    #[test]
    fn every_text_colour_is_readable_on_its_background() {
        // Backgrounds of the notices, read from the stylesheet.
        let notice = &STYLE[STYLE.find(".notice").unwrap()..];
        let notice_bg = &notice[notice.find("background:").unwrap() + 11..][..7];
        let problem = &STYLE[STYLE.find(".problem").unwrap()..];
        let problem_bg = &problem[problem.find("background:").unwrap() + 11..][..7];
        for (fg, bg) in [
            ("fg", "bg"),
            ("muted", "bg"),
            ("accent", "bg"),
            ("ok", "bg"),
            ("warn", "bg"),
            ("bad", "bg"),
            ("fg", notice_bg),
            ("fg", problem_bg),
        ] {
            let r = ratio(fg, bg);
            assert!(r >= 4.5, "{fg} on {bg}: {r:.2}:1, below 4.5:1");
        }
        assert!(ratio("#000000", "#ffffff") > 20.9, "the formula itself");
    }
}
