//! The memory of failed sign-ins, in memory (per process): per (account,
//! client address) pair a growing delay, per account a small bounded
//! slow-down, and never a lock-out of the account itself.
//! [`super::throttle::SignInGate`] applies it with the per-address window
//! and the hashing bound.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use clawplane_domain::Email;

use super::throttle::SignInLimits;
use crate::ServerConfig;

/// Failed sign-ins, in memory (per process), and the limits that do not
/// depend on the email ([`SignInLimits`]).
///
/// - Per (account, client address) pair: the first [`FREE_FAILURES`] are
///   free, then each failure makes the pair wait twice as long as the last
///   (1 s, 2 s, 4 s, ... at most [`MAX_PAIR_DELAY`]). While it waits, the
///   pair is refused before any hash runs and nothing is counted, so
///   failures during a delay extend nothing; a success clears the pair, and
///   a pair without a failure for [`FORGET_AFTER`] starts over.
/// - Per account, across addresses: past [`ACCOUNT_FREE_FAILURES`] in
///   [`ACCOUNT_WINDOW`] (a fixed window, never extended), each attempt is
///   slowed by 100 ms per failure, at most [`MAX_ACCOUNT_SLOWDOWN`]: it is
///   never refused, so the owner's right password works from any address
///   that has not failed itself.
///
/// Accounts are keyed by a keyed hash of the email (fixed-size entries,
/// and an unknown address is counted like a known one, so the throttle does
/// not tell them apart). Each map holds at most [`MAX_TRACKED`] entries:
/// past it, expired ones go, then the oldest.
#[derive(Default)]
pub struct Throttle {
    pairs: Mutex<HashMap<(u64, IpAddr), PairFailures>>,
    accounts: Mutex<HashMap<u64, AccountFailures>>,
    keys: RandomState,
    limits: OnceLock<SignInLimits>,
}

/// Failures of one pair before it waits.
pub const FREE_FAILURES: u32 = 3;
/// The first wait of a pair past its free failures.
const FIRST_PAIR_DELAY: Duration = Duration::from_secs(1);
/// The longest wait of a pair.
pub const MAX_PAIR_DELAY: Duration = Duration::from_secs(15 * 60);
/// A pair without a failure for this long starts over.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Failures of one account (from anywhere) before its attempts slow down.
pub const ACCOUNT_FREE_FAILURES: u32 = 10;
/// The window of [`ACCOUNT_FREE_FAILURES`].
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The slow-down per failure past the free ones.
const ACCOUNT_STEP: Duration = Duration::from_millis(100);
/// The most an account's attempts are slowed.
pub const MAX_ACCOUNT_SLOWDOWN: Duration = Duration::from_secs(1);
/// Most pairs, and most accounts, remembered at once.
pub const MAX_TRACKED: usize = 100_000;

struct PairFailures {
    count: u32,
    last: Instant,
    until: Instant,
}

struct AccountFailures {
    count: u32,
    since: Instant,
}

/// The wait after a pair's `count`th failure.
fn pair_delay(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES + 1) {
        None => Duration::ZERO,
        Some(doublings) => FIRST_PAIR_DELAY
            .saturating_mul(2u32.saturating_pow(doublings.min(20)))
            .min(MAX_PAIR_DELAY),
    }
}

/// Makes room for one more entry in `map`: entries `expired` go, then (if
/// still full) the one with the smallest `age` key.
fn make_room<K: Eq + std::hash::Hash + Copy, V>(
    map: &mut HashMap<K, V>,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_TRACKED {
        return;
    }
    map.retain(|_, v| !expired(v));
    if map.len() >= MAX_TRACKED {
        let oldest = map.iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| *k);
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
}

impl Throttle {
    /// The hashing and per-client limits, built from `config` at first use
    /// (a server's settings do not change while it runs).
    pub fn limits(&self, config: &ServerConfig) -> &SignInLimits {
        self.limits.get_or_init(|| SignInLimits::new(config))
    }

    fn account(&self, email: &str) -> u64 {
        self.keys.hash_one(email.to_lowercase())
    }

    /// How long `client` must still wait before trying `email` again, if
    /// at all.
    pub fn pair_wait(&self, email: &Email, client: IpAddr, now: Instant) -> Option<Duration> {
        let key = (self.account(email.as_str()), client);
        let pairs = self.pairs.lock().ok()?;
        let pair = pairs.get(&key)?;
        (pair.until > now).then(|| pair.until - now)
    }

    /// How much an attempt at `email` is slowed now (never a refusal).
    pub fn account_slowdown(&self, email: &Email, now: Instant) -> Duration {
        let key = self.account(email.as_str());
        let Ok(accounts) = self.accounts.lock() else {
            return Duration::ZERO;
        };
        match accounts.get(&key) {
            Some(a) if now.duration_since(a.since) < ACCOUNT_WINDOW => {
                let past = a.count.saturating_sub(ACCOUNT_FREE_FAILURES);
                ACCOUNT_STEP.saturating_mul(past).min(MAX_ACCOUNT_SLOWDOWN)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed sign-in at `email` from `client` (if known).
    pub fn record_failure(&self, email: &Email, client: Option<IpAddr>, now: Instant) {
        let account = self.account(email.as_str());
        if let (Some(client), Ok(mut pairs)) = (client, self.pairs.lock()) {
            if !pairs.contains_key(&(account, client)) {
                let forgotten =
                    |p: &PairFailures| p.until <= now && now.duration_since(p.last) >= FORGET_AFTER;
                make_room(&mut pairs, forgotten, |p| p.last);
            }
            let pair = pairs.entry((account, client)).or_insert(PairFailures {
                count: 0,
                last: now,
                until: now,
            });
            if now.duration_since(pair.last) >= FORGET_AFTER {
                pair.count = 0;
            }
            pair.count = pair.count.saturating_add(1);
            pair.last = now;
            pair.until = now + pair_delay(pair.count);
        }
        self.count_account_failure(account, now);
    }

    fn count_account_failure(&self, account: u64, now: Instant) {
        let Ok(mut accounts) = self.accounts.lock() else {
            return;
        };
        if !accounts.contains_key(&account) {
            let expired = |a: &AccountFailures| now.duration_since(a.since) >= ACCOUNT_WINDOW;
            make_room(&mut accounts, expired, |a| a.since);
        }
        let entry = accounts.entry(account).or_insert(AccountFailures {
            count: 0,
            since: now,
        });
        if now.duration_since(entry.since) >= ACCOUNT_WINDOW {
            *entry = AccountFailures {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }

    /// Forgets the failures of `email` from `client` (after a success); the
    /// account's count stays until its window ends, so an attacker's
    /// slow-down does not end when the owner signs in.
    pub fn record_success(&self, email: &Email, client: Option<IpAddr>) {
        let account = self.account(email.as_str());
        if let (Some(client), Ok(mut pairs)) = (client, self.pairs.lock()) {
            pairs.remove(&(account, client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(e: &str) -> Email {
        Email::parse(e).unwrap()
    }

    #[test]
    fn a_pair_waits_longer_after_each_failure_past_the_free_ones() {
        let delays: Vec<u64> = (1..=8).map(|n| pair_delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16]);
        assert_eq!(pair_delay(40), MAX_PAIR_DELAY);
        assert_eq!(pair_delay(u32::MAX), MAX_PAIR_DELAY);
    }

    #[test]
    fn failures_slow_their_pair_only_and_the_account_boundedly() {
        let t = Throttle::default();
        let (ana, bob) = (email("ana@example.com"), email("bob@example.com"));
        let attacker: IpAddr = "203.0.113.7".parse().unwrap();
        let owner: IpAddr = "198.51.100.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.pair_wait(&ana, attacker, start), None);
            t.record_failure(&ana, Some(attacker), start);
        }
        assert_eq!(t.pair_wait(&ana, attacker, start), None, "free failures");
        t.record_failure(&ana, Some(attacker), start);
        assert_eq!(
            t.pair_wait(&ana, attacker, start),
            Some(Duration::from_secs(1))
        );
        assert_eq!(t.pair_wait(&ana, owner, start), None, "another address");
        assert_eq!(t.pair_wait(&bob, attacker, start), None, "another account");
        let later = start + Duration::from_secs(1);
        assert_eq!(t.pair_wait(&ana, attacker, later), None, "the delay passed");
        t.record_success(&ana, Some(attacker));
        t.record_failure(&ana, Some(attacker), later);
        assert_eq!(
            t.pair_wait(&ana, attacker, later),
            None,
            "a success clears it"
        );

        for _ in 0..1000 {
            t.record_failure(&ana, None, later);
        }
        assert_eq!(t.account_slowdown(&ana, later), MAX_ACCOUNT_SLOWDOWN);
        assert_eq!(t.account_slowdown(&bob, later), Duration::ZERO);
        let next_window = later + ACCOUNT_WINDOW;
        assert_eq!(t.account_slowdown(&ana, next_window), Duration::ZERO);
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        for n in 0..(MAX_TRACKED + 10) {
            t.record_failure(&email(&format!("u{n}@example.com")), Some(client), now);
        }
        assert!(t.pairs.lock().unwrap().len() <= MAX_TRACKED);
        assert!(t.accounts.lock().unwrap().len() <= MAX_TRACKED);
    }
}
