//! Instance statuses and the single table of allowed transitions.
//!
//! The seed knew `provisioning`, `ready`, `error` and `deleted`. clawplane adds
//! `stopped`, for one reason: a gateway can be stopped on purpose (by its user,
//! or by billing when the balance reaches the floor) while its runtime, state
//! and backups still exist. That is neither `ready` (nothing answers) nor
//! `error` (nothing is wrong) nor `deleted` (it can be started again).
//!
//! Every write of a status goes through [`InstanceStatus::check_transition`];
//! the store calls it inside the same transaction as the write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lifecycle state of an OpenClaw instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String", into = "&'static str")]
pub enum InstanceStatus {
    /// A runtime is being created and its gateway started.
    Provisioning,
    /// The gateway answered its readiness probe.
    Ready,
    /// The gateway was stopped on purpose; the instance can be started again.
    Stopped,
    /// Provisioning or the runtime failed; see the instance's status reason.
    Error,
    /// The runtime was removed. Terminal: re-provisioning creates a new instance.
    Deleted,
}

/// Why a status could not be parsed or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The input named no known status.
    #[error("unknown status '{0}': expected one of provisioning, ready, stopped, error, deleted")]
    Unknown(String),
    /// The transition is not in the table of allowed transitions.
    #[error("an instance cannot go from '{from}' to '{to}'")]
    Transition {
        /// The current status.
        from: InstanceStatus,
        /// The refused target status.
        to: InstanceStatus,
    },
}

impl InstanceStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [InstanceStatus; 5] = [
        InstanceStatus::Provisioning,
        InstanceStatus::Ready,
        InstanceStatus::Stopped,
        InstanceStatus::Error,
        InstanceStatus::Deleted,
    ];

    /// The wire and database name of the status.
    pub const fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Provisioning => "provisioning",
            InstanceStatus::Ready => "ready",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Error => "error",
            InstanceStatus::Deleted => "deleted",
        }
    }

    /// Parses user input: surrounding whitespace is trimmed and case ignored.
    pub fn parse(input: &str) -> Result<Self, StatusError> {
        let normalized = input.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == normalized)
            .ok_or_else(|| StatusError::Unknown(truncate_for_message(input.trim())))
    }

    /// Whether an instance in this status counts as the user's live instance.
    /// At most one live instance per user exists; the database enforces it.
    pub const fn is_live(self) -> bool {
        !matches!(self, InstanceStatus::Deleted)
    }

    /// The one table of allowed transitions. Writing the current status again
    /// is allowed and changes nothing, so retries are harmless.
    pub const fn can_transition_to(self, to: InstanceStatus) -> bool {
        use InstanceStatus::*;
        if self as u8 == to as u8 {
            return true;
        }
        matches!(
            (self, to),
            (Provisioning, Ready | Error | Deleted)
                | (Ready, Stopped | Error | Deleted)
                | (Stopped, Ready | Error | Deleted)
                | (Error, Provisioning | Deleted)
        )
    }

    /// [`Self::can_transition_to`] as a `Result` with a clear error.
    pub fn check_transition(self, to: InstanceStatus) -> Result<(), StatusError> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(StatusError::Transition { from: self, to })
        }
    }
}

/// Echoes at most 64 characters of hostile input back in an error message.
fn truncate_for_message(input: &str) -> String {
    let mut out: String = input.chars().filter(|c| !c.is_control()).take(64).collect();
    if input.chars().count() > 64 {
        out.push('…');
    }
    out
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceStatus {
    type Err = StatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for InstanceStatus {
    type Error = StatusError;

    fn try_from(value: String) -> Result<Self, StatusError> {
        Self::parse(&value)
    }
}

impl From<InstanceStatus> for &'static str {
    fn from(value: InstanceStatus) -> Self {
        value.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceStatus::{self, *};
    use super::StatusError;

    /// The full expected matrix, written out by hand so that a change to the
    /// table has to change this test too.
    const ALLOWED: &[(InstanceStatus, InstanceStatus)] = &[
        (Provisioning, Provisioning),
        (Provisioning, Ready),
        (Provisioning, Error),
        (Provisioning, Deleted),
        (Ready, Ready),
        (Ready, Stopped),
        (Ready, Error),
        (Ready, Deleted),
        (Stopped, Stopped),
        (Stopped, Ready),
        (Stopped, Error),
        (Stopped, Deleted),
        (Error, Error),
        (Error, Provisioning),
        (Error, Deleted),
        (Deleted, Deleted),
    ];

    #[test]
    fn every_transition_pair_is_allowed_or_refused_as_the_table_says() {
        let mut checked = 0;
        for from in InstanceStatus::ALL {
            for to in InstanceStatus::ALL {
                let expected = ALLOWED.contains(&(from, to));
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
                match from.check_transition(to) {
                    Ok(()) => assert!(expected),
                    Err(StatusError::Transition { from: f, to: t }) => {
                        assert!(!expected);
                        assert_eq!((f, t), (from, to));
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 25);
    }

    #[test]
    fn deleted_is_terminal() {
        for to in [Provisioning, Ready, Stopped, Error] {
            let err = Deleted.check_transition(to).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("an instance cannot go from 'deleted' to '{to}'")
            );
        }
    }

    #[test]
    fn input_is_trimmed_and_lower_cased() {
        assert_eq!(InstanceStatus::parse("  READY\n").unwrap(), Ready);
        assert_eq!(InstanceStatus::parse("Provisioning").unwrap(), Provisioning);
        assert_eq!(InstanceStatus::parse("\tdeleted ").unwrap(), Deleted);
    }

    #[test]
    fn unknown_values_are_refused_with_a_clear_message() {
        for bad in ["", " ", "running", "readyy", "ready\0", "ré", "READY!"] {
            let err = InstanceStatus::parse(bad).unwrap_err();
            assert!(matches!(err, StatusError::Unknown(_)), "{bad:?}");
            assert!(err.to_string().contains("expected one of"), "{err}");
        }
        let long = "x".repeat(10_000);
        let message = InstanceStatus::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "hostile input is not echoed whole");
    }

    #[test]
    fn serde_uses_the_lower_case_names_and_parses_leniently() {
        assert_eq!(serde_json::to_string(&Stopped).unwrap(), "\"stopped\"");
        let parsed: InstanceStatus = serde_json::from_str("\" Error \"").unwrap();
        assert_eq!(parsed, Error);
        assert!(serde_json::from_str::<InstanceStatus>("\"gone\"").is_err());
    }

    #[test]
    fn only_deleted_is_not_live() {
        for s in InstanceStatus::ALL {
            assert_eq!(s.is_live(), s != Deleted);
        }
    }
}
