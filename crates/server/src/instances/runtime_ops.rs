//! What a user may ask of their own runtime, one method each: read its
//! status, devices and backups; decide a device's pairing request; take and
//! restore backups. Each finds the user's live instance and its runtime,
//! then makes one call; the surfaces (API, console) only parse and render.

use clawplane_domain::UserId;
use clawplane_http::v1;
use uuid::Uuid;

use super::{InstanceError, Instances};

/// A pairing request's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// Pair the device.
    Approve,
    /// Refuse it.
    Reject,
}

impl Instances {
    /// The runtime's status: gateway state, last backup, cell, versions.
    pub async fn runtime_status(&self, user: &UserId) -> Result<v1::Status, InstanceError> {
        let (_, target) = self.target(user).await?;
        Ok(self.inner.client.status(&target).await?)
    }

    /// Pending pairing requests and paired devices.
    pub async fn devices(&self, user: &UserId) -> Result<v1::DeviceList, InstanceError> {
        let (_, target) = self.target(user).await?;
        Ok(self.inner.client.devices(&target).await?)
    }

    /// Approves or rejects one pending pairing request.
    pub async fn decide_device(
        &self,
        user: &UserId,
        request: Uuid,
        decision: DeviceDecision,
    ) -> Result<v1::DeviceDecision, InstanceError> {
        let (_, target) = self.target(user).await?;
        let client = &self.inner.client;
        Ok(match decision {
            DeviceDecision::Approve => client.approve_device(&target, request).await?,
            DeviceDecision::Reject => client.reject_device(&target, request).await?,
        })
    }

    /// Takes a backup now.
    pub async fn backup(&self, user: &UserId) -> Result<v1::BackupTaken, InstanceError> {
        let (_, target) = self.target(user).await?;
        Ok(self.inner.client.backup(&target).await?)
    }

    /// The backup history, newest first.
    pub async fn backups(&self, user: &UserId) -> Result<v1::BackupList, InstanceError> {
        let (_, target) = self.target(user).await?;
        Ok(self.inner.client.backups(&target).await?)
    }

    /// Restores a backup (`None`: the latest); the id must already have
    /// passed [`clawplane_domain::is_backup_id`].
    pub async fn restore_backup(
        &self,
        user: &UserId,
        backup_id: Option<&str>,
    ) -> Result<v1::RestoreReply, InstanceError> {
        let (_, target) = self.target(user).await?;
        Ok(self.inner.client.restore(&target, backup_id).await?)
    }
}
