//! What each route answers, for the OpenAPI document only: every success is
//! the envelope `{"ok": true, "data": ...}`, and these types name what
//! `data` holds. Records the domain owns (an instance, a ledger entry, a
//! token's record) and the runtime's own bodies are described as objects;
//! their fields are documented on the domain types and in `http::v1`.

#![allow(dead_code)]

use utoipa::ToSchema;

/// Declares a reply: `$reply` is `{ok: true, data: $data}`, and `$data`
/// has the fields given (or is an opaque object with `=> Object`).
macro_rules! reply {
    ($(#[$doc:meta])* $reply:ident => Object) => {
        $(#[$doc])*
        #[derive(ToSchema)]
        pub struct $reply {
            /// Always `true` on a success.
            ok: bool,
            #[schema(value_type = Object)]
            data: (),
        }
    };
    ($(#[$doc:meta])* $reply:ident, $data:ident { $($(#[$f:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(ToSchema)]
        pub struct $reply {
            /// Always `true` on a success.
            ok: bool,
            data: $data,
        }

        #[doc = concat!("The `data` of [`", stringify!($reply), "`].")]
        #[derive(ToSchema)]
        pub struct $data {
            $($(#[$f])* $field: $ty,)*
        }
    };
}

reply!(
    /// The instance (never a secret field); `null` for a user without one
    /// where the route says so.
    InstanceReply => Object
);

reply!(
    /// A deleted instance and the backup kept for it.
    DeletedReply, Deleted {
        /// The instance, now `deleted`.
        #[schema(value_type = Object)]
        instance: (),
        /// The protective backup, or `{fresh: false, kept, note}` when its
        /// runtime was not running.
        #[schema(value_type = Object)]
        backup: (),
    }
);

reply!(
    /// The names of the user's provider keys (never their values).
    KeyNamesReply, KeyNames {
        /// Environment variable names.
        names: Vec<String>,
    }
);

reply!(
    /// Provider keys changed.
    KeysSetReply, KeysSet {
        /// The names now stored.
        names: Vec<String>,
        /// Whether a running runtime restarts to use them.
        restarting: bool,
    }
);

reply!(
    /// What the instance's runtime answered (`http::v1`'s body for the
    /// route: its status, devices, backups, or the gateway's state).
    RuntimeReply => Object
);

reply!(
    /// A user's billing summary: balance, month-to-date usage, the floor,
    /// the next monthly grant and recent entries.
    SummaryReply => Object
);

reply!(
    /// A page of the user's ledger, newest first.
    LedgerPageReply, LedgerPage {
        /// Ledger entries.
        #[schema(value_type = Vec<Object>)]
        entries: (),
        /// Pass as `cursor` for the next page; `null` at the end.
        next_cursor: Option<String>,
    }
);

reply!(
    /// A ledger write (grant, burn or reversal).
    LedgerWriteReply, LedgerWrite {
        /// Whose.
        user_id: String,
        /// The balance after the write, rounded half-up to cents.
        balance_usd: f64,
        /// The exact balance, micro-USD.
        balance_micro_usd: i64,
        /// The entry written (or the earlier one, for a replay).
        #[schema(value_type = Option<Object>)]
        entry: (),
        /// `true` when this Idempotency-Key had been used for the same
        /// request and nothing was written again; absent otherwise.
        replayed: Option<bool>,
    }
);

reply!(
    /// Model spend by day and model.
    UsageReply, Usage {
        /// The first day, inclusive (`YYYY-MM-DD`, UTC).
        from: String,
        /// The last day, inclusive.
        to: String,
        /// `{day, model, requests, input_tokens, output_tokens,
        /// cached_tokens, cost_usd, cost_micro_usd}`, oldest first.
        #[schema(value_type = Vec<Object>)]
        days: (),
        /// Everything billed in the range, rounded to cents.
        total_usd: f64,
        /// Everything billed in the range, exact.
        total_micro_usd: i64,
        /// More entries than one report reads: a lower bound.
        truncated: bool,
    }
);

reply!(
    /// The caller's API tokens (hints only, never the tokens).
    TokensReply, Tokens {
        /// Token records.
        #[schema(value_type = Vec<Object>)]
        tokens: (),
    }
);

reply!(
    /// A new API token: shown in this reply only.
    NewTokenReply, NewToken {
        /// The token; keep it, it is not shown again.
        token: String,
        /// Its record (a hint, never the token).
        #[schema(value_type = Object)]
        api_token: (),
    }
);

reply!(
    /// A revoked API token's record.
    RevokedTokenReply, RevokedToken {
        /// Its record, with the time it was revoked.
        #[schema(value_type = Object)]
        api_token: (),
    }
);

reply!(
    /// One secret's plaintext (the one place one leaves the server).
    SecretReply, Secret {
        /// `service_token`, `gateway_token` or `provider_keys`.
        name: String,
        /// The plaintext.
        value: String,
    }
);

reply!(
    /// A secret stored.
    SecretStoredReply, SecretStored {
        /// Which.
        name: String,
        /// Always `true`.
        stored: bool,
    }
);

reply!(
    /// The user's audit records, newest first.
    AuditReply, Audit {
        /// Audit entries (who, what, which secret by name, when).
        #[schema(value_type = Vec<Object>)]
        entries: (),
    }
);
