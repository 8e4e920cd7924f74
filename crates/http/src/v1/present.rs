//! A field that is absent from some answers and `null` in others: read as
//! `Option<Option<T>>` (outer `None`: absent, so it is not written back;
//! inner `None`: `null`), so a body passed through keeps its exact keys.

use serde::{Deserialize, Deserializer};

/// Reads a present field (the field's `default` covers an absent one).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
