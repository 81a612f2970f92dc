//! Who a user is to precis' own data: [`UserId`], a stable 64-bit id for a user key.
//!
//! A request names its user by `user.id`, else `user.buyeruid`, else `device.ifa`
//! ([`crate::request::facts::Facts::user`]). Audience packages and user profiles are keyed by the
//! SHA-256 of that key (its first 8 bytes), not by the secret-keyed [`crate::token::Keys::user_hash`]
//! that tokens and the event log carry: advertisers share lists as raw ids or as SHA-256 hex, and
//! both must match the same requests whatever secret this bidder signs with, across restarts.
//! This module never stores a raw key; it only turns keys into ids.

use std::fmt;

use sha2::{Digest, Sha256};

/// The first 8 bytes (big-endian) of the SHA-256 of a user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub u64);

impl UserId {
    /// The id of a raw user key, as a request carries it. The key is trimmed of surrounding
    /// whitespace and otherwise taken byte for byte (ids are case-sensitive on most exchanges).
    pub fn of_key(key: &str) -> UserId {
        let digest = Sha256::digest(key.trim().as_bytes());
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        UserId(u64::from_be_bytes(first))
    }

    /// The id of a key already hashed by its owner: the SHA-256 of the raw key in hex (64 digits,
    /// either case). Only the first 16 digits are read, but all 64 must be hex.
    pub fn from_sha256_hex(hex: &str) -> Option<UserId> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(&hex[..16], 16).ok().map(UserId)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_key_and_its_sha256_hex_are_the_same_user() {
        // sha256("user-1") as an advertiser would export it.
        let hex = "c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b";
        assert_eq!(UserId::from_sha256_hex(hex), Some(UserId::of_key("user-1")));
        assert_eq!(
            UserId::from_sha256_hex(&hex.to_uppercase()),
            Some(UserId::of_key(" user-1\n"))
        );
        assert_ne!(UserId::of_key("user-1"), UserId::of_key("User-1"));
    }

    #[test]
    fn malformed_hex_is_no_user() {
        assert_eq!(UserId::from_sha256_hex("0a041b94"), None);
        let not_hex = format!("{}zz", "0".repeat(62));
        assert_eq!(UserId::from_sha256_hex(&not_hex), None);
        assert_eq!(UserId::from_sha256_hex("é".repeat(32).as_str()), None);
    }

    #[test]
    fn displays_as_the_hex_it_came_from() {
        let id = UserId::of_key("user-1");
        assert_eq!(id.to_string(), "c6c289e49e9c05b2");
    }
}
