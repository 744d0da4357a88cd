//! Deriving bucket keys and request fingerprints from `Idempotency-Key`.
//!
//! Keys are scoped to the user who sent them, as payment APIs do: two users choosing the same
//! key never see each other's answers.

use sha2::{Digest, Sha256};

fn hex_digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bucket key (and JetStream message id) for a user's Idempotency-Key.
pub fn idempotency_key(user: &str, key: &str) -> String {
    hex_digest(&[user.as_bytes(), key.as_bytes()])
}

/// Identifies the request a key was first used with.
pub fn fingerprint(command: &str, body: &[u8]) -> String {
    hex_digest(&[command.as_bytes(), body])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_per_user_and_bucket_safe() {
        let a = idempotency_key("an", "k1");
        assert_ne!(a, idempotency_key("binh", "k1"));
        assert_eq!(a, idempotency_key("an", "k1"));
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        // Length-prefixing keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(idempotency_key("ab", "c"), idempotency_key("a", "bc"));
    }
}
