//! Timestamps as stored: integer milliseconds since the Unix epoch, UTC.

use chrono::{DateTime, TimeZone, Utc};

use crate::StoreError;

/// Now, truncated to the millisecond (what the database keeps).
pub(crate) fn now() -> DateTime<Utc> {
    from_millis(Utc::now().timestamp_millis()).unwrap_or_else(|_| Utc::now())
}

pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}
