//! The passes of an instance's door: issued by the console, taken by the
//! ingress. Both surfaces call this module, so neither imports the other.
//!
//! The console's "Open OpenClaw" issues a one-time pass good for
//! [`HANDOFF_LIFETIME`] ([`issue_handoff`]) and posts it to [`DOOR_PATH`]
//! on the instance's host; the door takes it once ([`take_handoff`]) and
//! issues a door cookie good for [`DOOR_LIFETIME`] ([`issue_door`]), which
//! it checks at every request ([`door_owner`]). Each pass is bound to one
//! account and one host, and only its digest is stored (`door_passes`).
//!
//! Each account holds at most [`MAX_HANDOFFS`] unused passes and
//! [`MAX_DOORS`] door cookies: a new pass trims the oldest beyond the
//! bounds. Signing out of the console deletes the account's passes and door
//! cookies; expired ones are swept with the console's sessions.

use clawplane_domain::UserId;
use clawplane_secrets::{api_token_digest, generate_token, ExposeSecret, SecretString};
use clawplane_store::{PassKind, Store, StoreError};

/// The path on an instance's host where the console's pass is exchanged for
/// the door cookie.
pub const DOOR_PATH: &str = "/__clawplane/door";
/// How long the console's pass is good for.
pub const HANDOFF_LIFETIME: chrono::Duration = chrono::Duration::seconds(60);
/// How long a door cookie is good for.
pub const DOOR_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Unused passes an account may hold at once (each is good for a minute).
pub const MAX_HANDOFFS: u32 = 20;
/// Door cookies an account may hold at once (each is good for 12 hours;
/// a browser that opens OpenClaw again replaces its own, so most of the
/// older ones belong to no browser any more).
pub const MAX_DOORS: u32 = 50;

/// A one-time pass for `user` to `runtime_name`'s door, good for
/// [`HANDOFF_LIFETIME`]. The account's older passes and door cookies
/// beyond the bounds go ([`bound`]).
pub async fn issue_handoff(
    store: &Store,
    user: &UserId,
    runtime_name: &str,
) -> Result<SecretString, StoreError> {
    let pass = issue(
        store,
        user,
        PassKind::Handoff,
        runtime_name,
        HANDOFF_LIFETIME,
    )
    .await?;
    bound(store, user).await?;
    Ok(pass)
}

/// Uses the one-time pass `pass` to `runtime_name`'s door: when it is a
/// live pass to this host, it is deleted (whoever the caller turns out to
/// be) and its owner returned.
pub async fn take_handoff(
    store: &Store,
    pass: &str,
    runtime_name: &str,
) -> Result<Option<UserId>, StoreError> {
    store
        .take_door_pass(&api_token_digest(pass), PassKind::Handoff, runtime_name)
        .await
}

/// A door cookie for `user` at `runtime_name`'s host, good for
/// [`DOOR_LIFETIME`].
pub async fn issue_door(
    store: &Store,
    user: &UserId,
    runtime_name: &str,
) -> Result<SecretString, StoreError> {
    issue(store, user, PassKind::Door, runtime_name, DOOR_LIFETIME).await
}

/// The owner of the door cookie `cookie`, if it is a live one of
/// `runtime_name`'s host.
pub async fn door_owner(
    store: &Store,
    cookie: &str,
    runtime_name: &str,
) -> Result<Option<UserId>, StoreError> {
    store
        .door_pass_owner(&api_token_digest(cookie), PassKind::Door, runtime_name)
        .await
}

async fn issue(
    store: &Store,
    user: &UserId,
    kind: PassKind,
    runtime_name: &str,
    lifetime: chrono::Duration,
) -> Result<SecretString, StoreError> {
    let token = generate_token();
    store
        .create_door_pass(
            &api_token_digest(token.expose_secret()),
            user,
            kind,
            runtime_name,
            chrono::Utc::now() + lifetime,
        )
        .await?;
    Ok(token)
}

/// Keeps the account's newest passes, so no account grows the table
/// without bound between sweeps: at most [`MAX_HANDOFFS`] unused passes
/// and [`MAX_DOORS`] door cookies (each needs a pass, so between two passes
/// at most [`MAX_HANDOFFS`] more). The oldest go first.
async fn bound(store: &Store, user: &UserId) -> Result<(), StoreError> {
    store
        .keep_newest_door_passes(user, PassKind::Handoff, MAX_HANDOFFS)
        .await?;
    store
        .keep_newest_door_passes(user, PassKind::Door, MAX_DOORS)
        .await?;
    Ok(())
}
