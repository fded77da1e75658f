//! Opaque ids for sessions, queries and jobs: a prefix and 64 random bits.

/// `prefix_` followed by 16 hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}
