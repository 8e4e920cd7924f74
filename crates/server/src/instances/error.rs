//! What the instance service refuses or fails with, without HTTP.
//!
//! Each surface maps it by an exhaustive match of its own: the API to the
//! envelope (`crate::error`), the console to a sentence for people
//! (`crate::console`). A new variant fails to compile there until each
//! surface decides what it means.

use clawplane_billing::BillingError;
use clawplane_domain::{InstanceStatus, SecretName, StatusError};
use clawplane_store::{StoreError, VaultError};

use crate::provision::ProvisionError;
use crate::runtime_client::RuntimeError;

/// Why an instance operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The user has no live instance.
    #[error("instance not found")]
    NotFound,
    /// The instance has no runtime yet (still provisioning).
    #[error("runtime url not set")]
    RuntimeUrlNotSet,
    /// The instance has no service token yet (still provisioning).
    #[error("service token not set")]
    ServiceTokenNotSet,
    /// One more running instance would exceed the host's budget.
    #[error("This host is full: it runs {slots} instances at most and all of them are in use. Try again later, or ask the operator to add capacity.")]
    HostFull {
        /// Instances the host may run.
        slots: u64,
        /// Instances running (or provisioning) now.
        running: i64,
    },
    /// The move is not in the transition table.
    #[error(transparent)]
    Transition(#[from] StatusError),
    /// The action needs another status (a restart of a stopped gateway).
    #[error("the instance is {0}")]
    WrongStatus(InstanceStatus),
    /// A delete's protective backup could not be taken, so nothing was
    /// deleted; `None`: the runtime is not running (and a fresh backup was
    /// asked for).
    #[error("the protective backup failed, so nothing was deleted")]
    BackupFailed(Option<RuntimeError>),
    /// Provider keys the rules refuse (count, name, length); the message
    /// says which rule.
    #[error("{0}")]
    InvalidProviderKeys(String),
    /// A secret's value the rules refuse; the message says which rule.
    #[error("{0}")]
    InvalidSecret(&'static str),
    /// The secret asked for is not set.
    #[error("{} is not set", .0.as_str())]
    SecretNotSet(SecretName),
    /// Credits or the ledger refused.
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// The instance's runtime refused or did not answer.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The provisioner could not do its part (remove a runtime).
    #[error("the runtime could not be changed: {0}")]
    Provision(ProvisionError),
    /// A secret could not be read (storage, or no key decrypts it).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for InstanceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => InstanceError::NotFound,
            StoreError::Transition(t) => InstanceError::Transition(t),
            StoreError::WrongStatus(s) => InstanceError::WrongStatus(s),
            other => InstanceError::Store(other),
        }
    }
}

impl InstanceError {
    /// The error as an instance's status reason, which its user reads:
    /// the store's, the vault's and the provisioner's causes are logged
    /// here and replaced by a sentence (they may name internals).
    pub fn reason(&self) -> String {
        match self {
            InstanceError::Store(_) | InstanceError::Vault(_) | InstanceError::Provision(_) => {
                tracing::error!(error = %self, "instance operation failed");
                "something went wrong on our side; try again, and tell the operator if it persists"
                    .to_owned()
            }
            _ => self.to_string(),
        }
    }
}
