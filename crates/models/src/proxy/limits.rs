//! Per-instance rate limits, in memory: requests per minute (counted when a
//! request is admitted) and tokens per minute (counted from the usage the
//! upstream reported). Windows are fixed minutes per caller; a request is
//! refused while either count has reached its limit, with the seconds left
//! in the window. They protect the operator's provider key from one tenant;
//! they are per process, not shared between replicas.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::Limit;

const WINDOW: Duration = Duration::from_secs(60);
/// Windows kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    requests: u64,
    tokens: u64,
}

/// The limits of every caller (keyed by instance id).
#[derive(Debug)]
pub(crate) struct RateLimits {
    requests_per_minute: u64,
    tokens_per_minute: u64,
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimits {
    /// Limits of `requests_per_minute` and `tokens_per_minute`; 0 turns one off.
    pub(crate) fn new(requests_per_minute: u64, tokens_per_minute: u64) -> Self {
        RateLimits {
            requests_per_minute,
            tokens_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request for `key`, or says which limit it reached and how
    /// long until the window turns.
    pub(crate) fn admit(&self, key: &str, now: Instant) -> Result<(), (Limit, Duration)> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| now.duration_since(w.start) < WINDOW);
        }
        let window = windows.entry(key.to_string()).or_insert(Window {
            start: now,
            requests: 0,
            tokens: 0,
        });
        if now.duration_since(window.start) >= WINDOW {
            *window = Window {
                start: now,
                requests: 0,
                tokens: 0,
            };
        }
        let retry = WINDOW.saturating_sub(now.duration_since(window.start));
        if self.requests_per_minute > 0 && window.requests >= self.requests_per_minute {
            return Err((Limit::Requests, retry));
        }
        if self.tokens_per_minute > 0 && window.tokens >= self.tokens_per_minute {
            return Err((Limit::Tokens, retry));
        }
        window.requests += 1;
        Ok(())
    }

    /// Counts `tokens` the upstream reported for `key` in its current window.
    pub(crate) fn spend(&self, key: &str, tokens: u64, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = windows.get_mut(key) {
            if now.duration_since(window.start) < WINDOW {
                window.tokens = window.tokens.saturating_add(tokens);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_past_the_limit_wait_for_the_next_minute() {
        let limits = RateLimits::new(2, 0);
        let t0 = Instant::now();
        assert!(limits.admit("i", t0).is_ok());
        assert!(limits.admit("i", t0).is_ok());
        let (limit, retry) = limits.admit("i", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(limit, Limit::Requests);
        assert_eq!(retry, Duration::from_secs(50));
        assert!(limits.admit("other", t0).is_ok(), "limits are per caller");
        assert!(limits.admit("i", t0 + WINDOW).is_ok());
    }

    #[test]
    fn tokens_reported_count_against_the_minute() {
        let limits = RateLimits::new(0, 100);
        let t0 = Instant::now();
        assert!(limits.admit("i", t0).is_ok());
        limits.spend("i", 99, t0);
        assert!(limits.admit("i", t0).is_ok());
        limits.spend("i", 1, t0);
        assert_eq!(limits.admit("i", t0).unwrap_err().0, Limit::Tokens);
        assert!(limits.admit("i", t0 + WINDOW).is_ok());
    }
}
