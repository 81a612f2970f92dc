//! Clearing prices as exchanges send them in win and billing notices (`${AUCTION_PRICE}`): a
//! plain CPM, or one encrypted with the scheme DoubleClick / Google Authorized Buyers documents
//! ("Decrypt price confirmations"), under the keys of an exchange configured with them.
//!
//! The encrypted form is web-safe base64 without padding of 28 bytes: `iv` (16) | `ciphertext`
//! (8) | `integrity` (4). The price, micros of a CPM as a big-endian u64, is `ciphertext` XOR the
//! first 8 bytes of HMAC-SHA1(`e_key`, `iv`); it is genuine when the first 4 bytes of
//! HMAC-SHA1(`i_key`, price bytes | `iv`) are `integrity` (compared in constant time). A bid
//! response does not know which exchange it answers, so a notice is not told which keys to use:
//! each configured exchange's keys are tried, and the integrity check says which one encrypted it
//! (a wrong pair passes once in 2^32).
//!
//! This module only reads text: what a price that cannot be read costs is the recorder's
//! decision. It never panics on input and never logs a key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use std::fmt;

type HmacSha1 = Hmac<Sha1>;

const IV_LEN: usize = 16;
const PRICE_LEN: usize = 8;
const INTEGRITY_LEN: usize = 4;
/// Bytes of an encrypted price.
const SEALED_LEN: usize = IV_LEN + PRICE_LEN + INTEGRITY_LEN;
/// Micros in one unit of currency.
const MICROS: f64 = 1e6;

/// Why a notice's price could not be read; each is counted (see [`Unreadable::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// No `price` at all, or an empty one.
    Missing,
    /// The exchange left `${AUCTION_PRICE}` as it was.
    Unexpanded,
    /// The shape of an encrypted price that no configured exchange's keys open: keys precis does
    /// not hold, or a price altered on the way.
    Undecryptable,
    /// Neither a number of at least 0 nor an encrypted price.
    Malformed,
}

impl Unreadable {
    /// Every reason, in `/metrics` order.
    pub const ALL: [Unreadable; 4] = [
        Unreadable::Missing,
        Unreadable::Unexpanded,
        Unreadable::Undecryptable,
        Unreadable::Malformed,
    ];

    /// Its label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Unreadable::Missing => "missing",
            Unreadable::Unexpanded => "unexpanded",
            Unreadable::Undecryptable => "undecryptable",
            Unreadable::Malformed => "malformed",
        }
    }
}

/// A price read from a notice, CPM in the bid's currency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Read {
    pub cpm: f64,
    /// The exchange whose keys decrypted it (its index in [`Exchanges`]); `None` for a plain number.
    pub decrypted_by: Option<usize>,
}

/// An exchange's key pair could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "exchange `{name}`: `{key}` must be the key in base64 (web-safe or not), as the exchange gives it"
)]
pub struct KeyError {
    pub name: String,
    pub key: &'static str,
}

/// One exchange's price keys.
#[derive(Clone)]
pub struct Exchange {
    name: String,
    encryption: HmacSha1,
    integrity: HmacSha1,
}

impl fmt::Debug for Exchange {
    /// Never shows the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// The exchange `name` with its encryption and integrity keys as it hands them out: base64
    /// (web-safe or standard, padded or not) of the key bytes.
    pub fn new(name: &str, e_key: &str, i_key: &str) -> Result<Exchange, KeyError> {
        let key = |text: &str, key: &'static str| {
            let bytes = decode_base64(text.trim())
                .filter(|bytes| !bytes.is_empty())
                .ok_or_else(|| KeyError {
                    name: name.to_owned(),
                    key,
                })?;
            HmacSha1::new_from_slice(&bytes).map_err(|_| KeyError {
                name: name.to_owned(),
                key,
            })
        };
        Ok(Exchange {
            name: name.to_owned(),
            encryption: key(e_key, "e_key")?,
            integrity: key(i_key, "i_key")?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The price in micros, if `sealed` was encrypted with these keys and not altered.
    fn open(&self, sealed: &[u8; SEALED_LEN]) -> Option<u64> {
        let (iv, rest) = sealed.split_first_chunk::<IV_LEN>()?;
        let (ciphertext, integrity) = rest.split_first_chunk::<PRICE_LEN>()?;
        let mut pad = self.encryption.clone();
        pad.update(iv);
        let pad = pad.finalize().into_bytes();
        let mut price = [0u8; PRICE_LEN];
        for (i, byte) in price.iter_mut().enumerate() {
            *byte = ciphertext[i] ^ pad.get(i).copied().unwrap_or(0);
        }
        let mut check = self.integrity.clone();
        check.update(&price);
        check.update(iv);
        check.verify_truncated_left(integrity).ok()?;
        Some(u64::from_be_bytes(price))
    }

    /// `micros` encrypted under these keys with `iv`: what the exchange sends (for tests).
    pub fn seal(&self, micros: u64, iv: [u8; IV_LEN]) -> String {
        let price = micros.to_be_bytes();
        let mut pad = self.encryption.clone();
        pad.update(&iv);
        let pad = pad.finalize().into_bytes();
        let mut integrity = self.integrity.clone();
        integrity.update(&price);
        integrity.update(&iv);
        let integrity = integrity.finalize().into_bytes();
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(&iv);
        out.extend(price.iter().zip(pad.iter()).map(|(p, k)| p ^ k));
        out.extend_from_slice(&integrity[..INTEGRITY_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }
}

/// The exchanges whose encrypted prices precis can read.
#[derive(Debug, Clone, Default)]
pub struct Exchanges(Vec<Exchange>);

impl Exchanges {
    pub fn new(exchanges: Vec<Exchange>) -> Exchanges {
        Exchanges(exchanges)
    }

    /// Their names, in order (what [`Read::decrypted_by`] indexes).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Exchange::name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The price a notice gives as `text`: a plain CPM (a finite number of at least 0), or an
    /// encrypted one a configured exchange's keys open (its micros as a CPM).
    pub fn read(&self, text: Option<&str>) -> Result<Read, Unreadable> {
        let text = text.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(Unreadable::Missing);
        }
        if text.contains("${") || text.to_ascii_uppercase().contains("AUCTION_PRICE") {
            return Err(Unreadable::Unexpanded);
        }
        if let Some(sealed) = sealed(text) {
            return self
                .0
                .iter()
                .enumerate()
                .find_map(|(i, exchange)| {
                    exchange.open(&sealed).map(|micros| Read {
                        cpm: micros as f64 / MICROS,
                        decrypted_by: Some(i),
                    })
                })
                .ok_or(Unreadable::Undecryptable);
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|cpm| Read {
                cpm,
                decrypted_by: None,
            })
            .ok_or(Unreadable::Malformed)
    }
}

/// The 28 bytes of an encrypted price, if `text` has that shape: web-safe base64, unpadded (as
/// the macro is filled) or padded with `=` or `.`.
fn sealed(text: &str) -> Option<[u8; SEALED_LEN]> {
    let unpadded = text.trim_end_matches(['=', '.']);
    let web_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if unpadded.len() != 38 || !unpadded.bytes().all(web_safe) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(unpadded).ok()?;
    bytes.try_into().ok()
}

/// Base64 in any of the forms exchanges hand keys out in: web-safe or standard, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let unpadded = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(unpadded)
        .ok()
        .or_else(|| URL_SAFE.decode(text).ok())
        .or_else(|| STANDARD.decode(text).ok())
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(unpadded)
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example keys of Google's "Decrypt price confirmations" page.
    const E_KEY: &str = "skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=";
    const I_KEY: &str = "arO23ykdNqUQ5LEoQ0FVmPkBd7xB5CO89PDZlSjpFxo=";
    /// Its example: 100 micros, encrypted with the iv `abc123def456ghi7` (the text's bytes).
    const EXAMPLE: &str = "YWJjMTIzZGVmNDU2Z2hpN7fhCuPemCce_6msaw";

    fn google() -> Exchanges {
        Exchanges::new(vec![Exchange::new("adx", E_KEY, I_KEY).unwrap()])
    }

    #[test]
    fn googles_published_example_decrypts_to_its_price() {
        let read = google().read(Some(EXAMPLE));
        assert_eq!(
            read,
            Ok(Read {
                cpm: 100.0 / MICROS,
                decrypted_by: Some(0),
            })
        );
        // Padded by hand, as some forward it.
        let padded = google().read(Some(&format!("{EXAMPLE}=="))).unwrap();
        assert_eq!(padded.cpm, 100.0 / MICROS);
    }

    #[test]
    fn a_price_sealed_here_opens_under_its_exchanges_keys_only() {
        // A vector computed apart (Python's hmac and base64) with the documented scheme: 1.234567
        // CPM, keys `other encryption key` and `other integrity key`, iv `0123456789abcdef`.
        let sealed = "MDEyMzQ1Njc4OWFiY2RlZpQKMWPqPbTcHyAfIQ";
        let keys = Exchange::new(
            "other",
            "b3RoZXIgZW5jcnlwdGlvbiBrZXk",
            "b3RoZXIgaW50ZWdyaXR5IGtleQ==",
        )
        .unwrap();
        assert_eq!(keys.seal(1_234_567, *b"0123456789abcdef"), sealed);
        let both = Exchanges::new(vec![
            Exchange::new("adx", E_KEY, I_KEY).unwrap(),
            keys.clone(),
        ]);
        let read = both.read(Some(sealed)).unwrap();
        assert_eq!(read.decrypted_by, Some(1), "the second exchange's keys");
        assert!((read.cpm - 1.234567).abs() < 1e-12, "{}", read.cpm);
        // Google's keys alone cannot read it, nor can no keys at all.
        assert_eq!(google().read(Some(sealed)), Err(Unreadable::Undecryptable));
        assert_eq!(
            Exchanges::default().read(Some(sealed)),
            Err(Unreadable::Undecryptable)
        );
        // The example's keys seal the example as Google does.
        let adx = Exchange::new("adx", E_KEY, I_KEY).unwrap();
        assert_eq!(adx.seal(100, *b"abc123def456ghi7"), EXAMPLE);
    }

    #[test]
    fn an_altered_price_fails_its_integrity_check() {
        let exchanges = google();
        for at in 0..EXAMPLE.len() {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            // The last character carries 2 bits base64 drops: changing it may keep the bytes.
            if URL_SAFE_NO_PAD.decode(&altered).ok() == URL_SAFE_NO_PAD.decode(EXAMPLE).ok() {
                continue;
            }
            let read = exchanges.read(Some(&altered));
            assert!(
                matches!(read, Err(Unreadable::Undecryptable | Unreadable::Malformed)),
                "{altered} read as {read:?}"
            );
        }
    }

    #[test]
    fn plain_prices_missing_macros_and_garbage_are_told_apart() {
        let exchanges = google();
        let plain = |cpm| {
            Ok(Read {
                cpm,
                decrypted_by: None,
            })
        };
        assert_eq!(exchanges.read(Some("1.5")), plain(1.5));
        assert_eq!(exchanges.read(Some(" 0 ")), plain(0.0));
        assert_eq!(exchanges.read(None), Err(Unreadable::Missing));
        assert_eq!(exchanges.read(Some("")), Err(Unreadable::Missing));
        for macro_left in [
            "${AUCTION_PRICE}",
            "${AUCTION_PRICE:B64}",
            "%24%7BAUCTION_PRICE%7D",
        ] {
            assert_eq!(
                exchanges.read(Some(macro_left)),
                Err(Unreadable::Unexpanded)
            );
        }
        for garbage in [
            "-1",
            "NaN",
            "inf",
            "1e400",
            "abc",
            "1,5",
            &EXAMPLE[1..],
            &EXAMPLE[..37],
        ] {
            assert_eq!(
                exchanges.read(Some(garbage)),
                Err(Unreadable::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn random_text_never_panics() {
        let exchanges = google();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "AZaz09-_=.+/ é$%{}".chars().collect();
        for _ in 0..2000 {
            let len = (next() % 60) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = exchanges.read(Some(&text));
            // Any 28 bytes in the encrypted shape are refused unless they verify.
            let bytes: Vec<u8> = (0..SEALED_LEN).map(|_| next() as u8).collect();
            let sealed = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(
                exchanges.read(Some(&sealed)),
                Err(Unreadable::Undecryptable)
            );
        }
    }

    #[test]
    fn keys_that_are_not_base64_are_refused_by_name() {
        let refused = Exchange::new("x", "not base64!", I_KEY).unwrap_err();
        assert_eq!(
            refused,
            KeyError {
                name: "x".into(),
                key: "e_key"
            }
        );
        assert_eq!(Exchange::new("x", E_KEY, "").unwrap_err().key, "i_key");
        // Standard base64 with + and / reads too.
        assert!(Exchange::new("x", "a+b/cw==", "a+b/cw").is_ok());
    }
}
