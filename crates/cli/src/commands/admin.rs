//! `clawplane admin ...`: operator commands against the store. Each prints
//! JSON on stdout; failures print one line on stderr and exit non-zero.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use clawplane_billing::{BillingError, EntryRequest, Ledger};
use clawplane_domain::{IdempotencyKey, MicroUsd, UserId};
use clawplane_store::Vault;
use serde::Serialize;

use crate::config::{parse_usd, BillingArgs, KeyArgs, StoreArgs};

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create or upgrade the database schema, then exit.
    Migrate(StoreArgs),
    /// Encryption key management.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The credit ledger.
    Credits(CreditsArgs),
}

/// `admin secrets ...`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every stored secret under the current key (safe while the
    /// server runs). Put the old key in OPENCLAW_ENCRYPTION_KEY_PREVIOUS and
    /// the new one in OPENCLAW_ENCRYPTION_KEY first.
    #[command(after_help = crate::config::env_help(crate::config::ROTATE_ENV))]
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// `admin credits ...` and its shared settings.
#[derive(Debug, Args)]
pub struct CreditsArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    billing: BillingArgs,
    #[command(subcommand)]
    command: CreditsCommand,
}

/// The ledger operations.
#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Add credits to a user.
    Grant(WriteArgs),
    /// Use a user's credits (refused below the floor).
    Burn(WriteArgs),
    /// Cancel an entry with an opposite one.
    Reverse {
        /// The user.
        #[arg(long)]
        user: String,
        /// The entry id.
        #[arg(long)]
        entry: i64,
        /// Why.
        #[arg(long, default_value = "correction")]
        reason: String,
        /// Repeat a key to retry safely; a random one is used otherwise.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show a user's balance.
    Balance {
        /// The user.
        #[arg(long)]
        user: String,
    },
    /// Show a user's entries, newest first.
    Ledger {
        /// The user.
        #[arg(long)]
        user: String,
        /// Cursor from a previous page.
        #[arg(long)]
        before: Option<String>,
        /// Entries per page (1-200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Re-sum every user's entries and compare with the stored balances;
    /// exits 1 if any differs.
    Verify,
    /// Run the monthly grant once now.
    GrantMonthly,
}

/// A grant or burn.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The user.
    #[arg(long)]
    user: String,
    /// Amount in USD, exact to 6 decimals (e.g. 12.50).
    #[arg(long, value_parser = parse_usd, allow_hyphen_values = true)]
    amount: MicroUsd,
    /// Why (`manual`, `promotional`, `usage`, ...).
    #[arg(long)]
    source: Option<String>,
    /// Repeat a key to retry safely; a random one is used (and printed) otherwise.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// A JSON object stored with the entry.
    #[arg(long)]
    meta: Option<String>,
}

/// Runs an admin command.
pub async fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::Migrate(store) => {
            let s = store.open().await?;
            print_json(&serde_json::json!({ "migrated": true, "database": s.backend().as_str() }))?;
            s.close().await;
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Secrets(SecretsCommand::Rotate { store, keys }) => {
            let s = store.open().await?;
            let ring = keys.key_ring(&store, s.backend())?;
            let report = Vault::new(s.clone(), ring).rotate().await?;
            print_json(&serde_json::json!({
                "reencrypted": report.reencrypted,
                "skipped_concurrent": report.skipped_concurrent,
                "failed": report.failed,
            }))?;
            s.close().await;
            Ok(if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AdminCommand::Credits(args) => credits(args).await,
    }
}

async fn credits(args: CreditsArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open().await?;
    let ledger = Ledger::new(store.clone(), args.billing.config()?);
    let code = match args.command {
        CreditsCommand::Grant(w) => print_result(ledger.grant(w.request("manual")?).await)?,
        CreditsCommand::Burn(w) => print_result(ledger.burn(w.request("manual")?).await)?,
        CreditsCommand::Reverse {
            user,
            entry,
            reason,
            idempotency_key,
        } => {
            let key = key_or_random(idempotency_key)?;
            print_result(
                ledger
                    .reverse(&parse_user(&user)?, entry, key, &reason)
                    .await,
            )?
        }
        CreditsCommand::Balance { user } => {
            print_result(ledger.balance(&parse_user(&user)?).await)?
        }
        CreditsCommand::Ledger {
            user,
            before,
            limit,
        } => print_result(
            ledger
                .entries(&parse_user(&user)?, before.as_deref(), limit)
                .await,
        )?,
        CreditsCommand::Verify => {
            let report = ledger.verify().await?;
            let clean = report.is_clean();
            print_json(&serde_json::json!({
                "users": report.users,
                "entries": report.entries,
                "holds": report.holds,
                "clean": clean,
                "hold_problems": report.hold_problems.iter().map(|p| serde_json::json!({
                    "user_id": p.user_id,
                    "hold_id": p.hold_id,
                    "problem": p.problem,
                })).collect::<Vec<_>>(),
                "mismatches": report.mismatches.iter().map(|m| serde_json::json!({
                    "user_id": m.user_id,
                    "stored_micro_usd": m.stored.micros(),
                    "summed_micro_usd": m.summed.micros(),
                })).collect::<Vec<_>>(),
            }))?;
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        CreditsCommand::GrantMonthly => {
            print_result(ledger.grant_monthly(chrono::Utc::now()).await)?
        }
    };
    store.close().await;
    Ok(code)
}

impl WriteArgs {
    fn request(&self, default_source: &str) -> anyhow::Result<EntryRequest> {
        let meta = match &self.meta {
            Some(text) => serde_json::from_str(text).context("--meta must be a JSON object")?,
            None => serde_json::Value::Null,
        };
        Ok(EntryRequest {
            user_id: parse_user(&self.user)?,
            amount: self.amount,
            source: self
                .source
                .clone()
                .unwrap_or_else(|| default_source.to_owned()),
            idempotency_key: key_or_random(self.idempotency_key.clone())?,
            meta,
        })
    }
}

fn parse_user(text: &str) -> anyhow::Result<UserId> {
    UserId::parse(text).context("--user")
}

fn key_or_random(key: Option<String>) -> anyhow::Result<IdempotencyKey> {
    let key = key.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let key = IdempotencyKey::parse(&key).context("--idempotency-key")?;
    anyhow::ensure!(
        !key.is_internal(),
        "--idempotency-key values starting with 'clawplane:' are reserved"
    );
    Ok(key)
}

fn print_result<T: Serialize>(result: Result<T, BillingError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(value) => {
            print_json(&value)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
