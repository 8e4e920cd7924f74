//! Bounds on sign-in and sign-up that do not depend on the email typed:
//! how many password hashes run at once (each argon2 hash holds its memory
//! cost, about 19 MiB, until it ends) and how many attempts one client
//! address may make per window.
//!
//! Both answer 429 with `Retry-After` and a page; neither locks anyone out
//! for longer than a short window, so the owner's correct password always
//! works again soon. Once the email is known, [`SignInGate::admit`] adds
//! the failures remembered in [`super::failures::Throttle`]: a growing
//! delay for the (account, address) pair, a bounded slow-down per account.
//!
//! The hashes run in working memory kept here for reuse, at most one
//! buffer per permit. Left to the allocator, a buffer freed on a blocking
//! thread stays resident in that thread's arena: measured, 300 sign-ins
//! with 13 permits left serve 1.5 GiB larger, and with a single permit
//! still 230 MiB, so a semaphore alone would not bound memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use clawplane_domain::Email;

use super::{ConsoleError, ConsoleState};
use crate::peer::client_address;
use crate::state::AppState;
use crate::ServerConfig;

/// Most client addresses tracked at once; a new one past it waits for a
/// window to expire.
const MAX_ADDRESSES: usize = 100_000;

/// The limits of one server, built from its settings.
pub struct SignInLimits {
    hashing: Arc<Semaphore>,
    hash_wait: Duration,
    memory: Memory,
    attempts: AttemptWindow,
}

impl SignInLimits {
    /// Limits from `config`: `hash_memory_bytes` over argon2's memory cost
    /// hashes at once (at least one).
    pub fn new(config: &ServerConfig) -> Self {
        SignInLimits {
            hashing: Arc::new(Semaphore::new(hash_permits(config.hash_memory_bytes))),
            hash_wait: config.hash_wait,
            memory: Memory::default(),
            attempts: AttemptWindow::new(config.sign_in_attempts, config.sign_in_window),
        }
    }
}

/// How many argon2 hashes fit in `budget` bytes, as [`Argon2::default`]
/// is configured (`m_cost` is in KiB).
pub fn hash_permits(budget: u64) -> usize {
    let per_hash = u64::from(Argon2::default().params().m_cost()) * 1024;
    usize::try_from(budget / per_hash.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, Semaphore::MAX_PERMITS)
}

/// Attempts per client address in fixed windows, in memory (per process).
struct AttemptWindow {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AttemptWindow {
    fn new(max: u32, window: Duration) -> Self {
        AttemptWindow {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `client` at `now`; `Err` holds how long
    /// until it may try again.
    fn attempt(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut seen) = self.seen.lock() else {
            return Err(self.window);
        };
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&client) {
            seen.retain(|_, (_, since)| now.duration_since(*since) < self.window);
            if seen.len() >= MAX_ADDRESSES {
                return Err(self.window);
            }
        }
        let entry = seen.entry(client).or_insert((0, now));
        let elapsed = now.duration_since(entry.1);
        if elapsed >= self.window {
            *entry = (0, now);
        }
        if entry.0 >= self.max {
            return Err(self.window.saturating_sub(elapsed));
        }
        entry.0 += 1;
        Ok(())
    }
}

/// The key of a client: its address, or its /64 for IPv6, since one
/// host commonly holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Leave to attempt a sign-in or sign-up: the client address is within its
/// attempts, and a password hash may run (the permit is held until the
/// request ends, so each attempt's one hash is bounded).
///
/// The client address is the one every surface uses ([`client_address`]: the peer, or
/// behind a trusted proxy its `X-Forwarded-For`). Without a peer address
/// (a router called without `ConnectInfo`), only the hashing bound applies.
pub struct SignInGate {
    _permit: OwnedSemaphorePermit,
    memory: Memory,
    hashing: Arc<Semaphore>,
    hash_wait: Duration,
    /// The client's key ([`client_key`]), when there is a peer address.
    client: Option<IpAddr>,
    console: Arc<ConsoleState>,
}

impl SignInGate {
    /// Leave to check a password for `email`: refused (429 with
    /// `Retry-After`) while this client's failures at this account make it
    /// wait; slowed, never refused, while the account has many failures
    /// from anywhere (the hashing permit is given back meanwhile, so a
    /// slowed account does not hold up anyone else's sign-in).
    pub async fn admit(self, email: &Email) -> Result<SignInGate, ConsoleError> {
        let failures = &self.console.throttle;
        let now = Instant::now();
        if let Some(wait) = self
            .client
            .and_then(|client| failures.pair_wait(email, client, now))
        {
            return Err(ConsoleError::too_many(&format!(
                "Too many failed sign-ins to this account from your address. Wait {}, \
                 then try again.",
                super::view::wait(wait)
            ))
            .retry_after(wait));
        }
        let slowdown = failures.account_slowdown(email, now);
        if slowdown.is_zero() {
            return Ok(self);
        }
        let SignInGate {
            _permit,
            memory,
            hashing,
            hash_wait,
            client,
            console,
        } = self;
        drop(_permit);
        tokio::time::sleep(slowdown).await;
        let permit = acquire(&hashing, hash_wait)
            .await
            .map_err(|busy| busy.retry_after(hash_wait))?;
        Ok(SignInGate {
            _permit: permit,
            memory,
            hashing,
            hash_wait,
            client,
            console,
        })
    }

    /// Records a wrong password (or unknown address) for `email` from this client.
    pub fn failed(&self, email: &Email) {
        let failures = &self.console.throttle;
        failures.record_failure(email, self.client, Instant::now());
    }

    /// Records a right password for `email` from this client: its failures
    /// there are forgotten.
    pub fn succeeded(&self, email: &Email) {
        self.console.throttle.record_success(email, self.client);
    }

    /// An argon2id hash of a password, as [`Argon2::default`] makes them
    /// (run off the async threads, in this permit's memory).
    pub async fn hash_password(&self, password: String) -> Result<String, ConsoleError> {
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || hash(&memory, password.as_bytes()))
            .await
            .map_err(|e| ConsoleError::internal(&e))?
            .map_err(|e| ConsoleError::internal(&e))
    }

    /// Whether `password` matches the PHC string `hash` (off the async
    /// threads, in this permit's memory).
    pub async fn verify_password(&self, password: String, hash: String) -> bool {
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || verify(&memory, password.as_bytes(), &hash))
            .await
            .unwrap_or(false)
    }
}

impl FromRequestParts<AppState> for SignInGate {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let limits = state.console.throttle.limits(&state.config);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = peer.map(|peer| {
            client_key(client_address(
                peer,
                &parts.headers,
                &state.config.ingress.trusted_proxies,
            ))
        });
        if let Some(client) = client {
            if let Err(wait) = limits.attempts.attempt(client, Instant::now()) {
                return Err(too_many(
                    "Too many sign-in attempts from your address. Wait a minute, then try again.",
                    wait,
                ));
            }
        }
        let permit = acquire(&limits.hashing, limits.hash_wait)
            .await
            .map_err(|busy| busy.retry_after(limits.hash_wait).into_response())?;
        Ok(SignInGate {
            _permit: permit,
            memory: limits.memory.clone(),
            hashing: Arc::clone(&limits.hashing),
            hash_wait: limits.hash_wait,
            client,
            console: Arc::clone(&state.console),
        })
    }
}

/// A hashing permit within `wait`, or the page saying the server is busy.
async fn acquire(
    hashing: &Arc<Semaphore>,
    wait: Duration,
) -> Result<OwnedSemaphorePermit, ConsoleError> {
    match tokio::time::timeout(wait, Arc::clone(hashing).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        // The semaphore is never closed; a closed one is as busy as can be.
        Ok(Err(_)) | Err(_) => Err(ConsoleError::too_many(
            "Too many people are signing in right now. Wait a few seconds, then try again.",
        )),
    }
}

/// Argon2 working memory for reuse; only permit holders take from it, so
/// it holds at most one buffer per permit.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<Vec<Block>>>>);

impl Memory {
    /// Runs `f` over at least `blocks` blocks of reused memory.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut buffer = self
            .0
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let result = f(&mut buffer);
        if let Ok(mut kept) = self.0.lock() {
            kept.push(buffer);
        }
        result
    }
}

/// What [`argon2::PasswordHasher::hash_password`] computes, in `memory`.
fn hash(memory: &Memory, password: &[u8]) -> argon2::password_hash::Result<String> {
    let argon2 = Argon2::default();
    let params = argon2.params().clone();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let output = memory.with(params.block_count(), |blocks| {
        Output::init_with(output_len(&params), |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, blocks)?)
        })
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// What [`argon2::PasswordVerifier::verify_password`] checks, in `memory`:
/// the hash's own algorithm, version and parameters, and a constant-time
/// comparison of the outputs.
fn verify(memory: &Memory, password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    let computed = memory.with(params.block_count(), |blocks| {
        Output::init_with(output_len(&params), |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, blocks)?)
        })
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|c| c == expected)
}

fn output_len(params: &Params) -> usize {
    params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
}

/// A 429 page with `Retry-After` (whole seconds, at least one).
fn too_many(message: &str, retry_after: Duration) -> Response {
    ConsoleError::too_many(message)
        .retry_after(retry_after)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_holds_thirteen_default_hashes() {
        // argon2 0.5's default: 19 MiB.
        assert_eq!(hash_permits(256 * 1024 * 1024), 13);
        assert_eq!(hash_permits(0), 1);
    }

    #[test]
    fn an_address_past_its_attempts_waits_for_the_window_only() {
        let w = AttemptWindow::new(2, Duration::from_millis(50));
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let start = Instant::now();
        assert!(w.attempt(a, start).is_ok());
        assert!(w.attempt(a, start).is_ok());
        let later = start + Duration::from_millis(20);
        assert_eq!(w.attempt(a, later), Err(Duration::from_millis(30)));
        assert!(
            w.attempt(b, later).is_ok(),
            "another address is not affected"
        );
        let after = start + Duration::from_millis(50);
        assert!(w.attempt(a, after).is_ok(), "the window passed");
    }

    #[test]
    fn hashes_in_reused_memory_are_argon2s_own() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let memory = Memory::default();
        let ours = hash(&memory, b"correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        let stock = Argon2::default()
            .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify(&memory, b"correct horse battery", &stock));
        assert!(!verify(&memory, b"wrong horse battery", &stock));
        assert!(!verify(&memory, b"correct horse battery", "not a hash"));
        assert_eq!(memory.0.lock().unwrap().len(), 1, "one buffer, reused");
    }

    #[test]
    fn one_ipv6_host_is_one_client() {
        let a = client_key("2001:db8:1:2:3:4:5:6".parse().unwrap());
        let b = client_key("2001:db8:1:2:ffff::1".parse().unwrap());
        assert_eq!(a, b);
    }
}
