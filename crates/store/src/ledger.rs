//! Credit ledger storage (filled in by the billing work).
