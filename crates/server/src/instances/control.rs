//! What the operator's other services may do to an instance through the
//! control routes, with the same rules as the user's own requests.

use clawplane_domain::{Instance, InstanceStatus, UserId};

use super::{InstanceError, Instances};

impl Instances {
    /// `POST /control/openclaw/instance/status`: moves the user's live
    /// instance to `status` through the transition table (409 when not
    /// allowed). `deleted` deletes as the API does; `provisioning` (from
    /// `error`) provisions again.
    ///
    /// A move into a running status (`provisioning` or `ready`) is checked
    /// as the API's create and start are: a balance at the floor is 402, and
    /// an instance that does not run yet needs room on the host (503
    /// `capacity`). A refused move changes nothing. Writing the current
    /// status again is no move: it only records the reason.
    pub async fn set_status_by_control(
        &self,
        user: &UserId,
        status: InstanceStatus,
        reason: Option<&str>,
    ) -> Result<Instance, InstanceError> {
        if status == InstanceStatus::Deleted {
            let (instance, _backup) = self.delete(user).await?;
            return Ok(instance);
        }
        let instance = self.live(user).await?;
        instance.status.check_transition(status)?;
        if is_running(status) && instance.status != status {
            self.inner.ledger.ensure_can_run(user).await?;
            if !is_running(instance.status) {
                self.ensure_room().await?;
            }
        }
        let updated = self
            .inner
            .store
            .set_instance_status(instance.id, status, reason)
            .await?;
        if status == InstanceStatus::Provisioning {
            self.drive(updated.id);
        }
        Ok(updated)
    }
}

/// The statuses that hold a runtime's share of the host (see `Capacity`).
fn is_running(status: InstanceStatus) -> bool {
    matches!(status, InstanceStatus::Provisioning | InstanceStatus::Ready)
}
