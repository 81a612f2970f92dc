//! Event tokens: the `t=` of the win, billing, impression and click URLs precis puts in its bids,
//! and the `pclid` it hands to landing pages for conversions.
//!
//! This module owns signing and verifying them, and the keyed user hash that keeps raw user ids
//! out of tokens and logs, under a user key of its own that a rotation of the signing secret
//! leaves alone ([`Keys`]). A token is a compact binary payload followed by the first 16 bytes of
//! its HMAC-SHA256, in URL-safe base64 without padding, so it goes in a URL as it is. Each token
//! carries one [`Purpose`] and verifies for that purpose only: the click URL a page shows can never
//! be used as the win notice the exchange holds. A bid's tokens share one encoded payload, and the
//! MAC state over it ([`Keys::signer`]): the purpose is the payload's last byte, so each token
//! costs the MAC of that byte and its base64.
//!
//! What it must never do: trust a field it has not verified (the signature is checked before
//! any field is read), panic on input (every length is checked against the bytes that are left),
//! or compare signatures in variable time (the comparison is `subtle`'s, through `Mac`).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret [`Keys::new`] accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest string field a token carries, in bytes (ids in precis are at most 128).
pub const MAX_FIELD_LEN: usize = 255;
/// How far in the future a token's issue time may be (clock skew between instances), seconds.
pub const MAX_FUTURE_SECS: u32 = 300;

/// 2: one purpose per route, the purpose last. Tokens of version 1 (one event token for every
/// route) are refused.
const VERSION: u8 = 2;
/// Bytes of the HMAC kept in a token: 128 bits.
const TAG_LEN: usize = 16;
/// Longer tokens are refused before decoding: a full token with every field at its limit is ~2.8k.
const MAX_TOKEN_LEN: usize = 4096;
/// Domain separation: what the same key signs for tokens and hashes for users never collide.
const TOKEN_DOMAIN: &[u8] = b"token\0";
const USER_DOMAIN: &[u8] = b"user\0";

const HAS_USER: u8 = 1;
const HAS_COUNTRY: u8 = 2;
const HAS_DEVICE: u8 = 4;
const HAS_OS: u8 = 8;

/// What a token may be used for: each route accepts one purpose, and a token of one purpose
/// never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The bid's `nurl`, held by the exchange: `/win`.
    Win,
    /// The bid's `burl`, held by the exchange: `/bill`.
    Bill,
    /// `${IMP_URL}` in the markup, seen by the page: `/imp` (counts the impression, never spend).
    Imp,
    /// `${CLICK_URL}` in the markup, seen by the page: `/click`.
    Click,
    /// The `pclid` given to the landing page: `/conv`.
    Conversion,
}

impl Purpose {
    /// Its byte, the payload's last.
    fn byte(self) -> u8 {
        match self {
            Purpose::Conversion => 1,
            Purpose::Win => 2,
            Purpose::Bill => 3,
            Purpose::Imp => 4,
            Purpose::Click => 5,
        }
    }

    fn of_byte(byte: u8) -> Option<Purpose> {
        [
            Purpose::Conversion,
            Purpose::Win,
            Purpose::Bill,
            Purpose::Imp,
            Purpose::Click,
        ]
        .into_iter()
        .find(|p| p.byte() == byte)
    }
}

/// What a token carries: everything its event needs to be logged without another lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub purpose: Purpose,
    /// When the token was signed, unix seconds.
    pub issued: u32,
    pub bid: String,
    pub request: String,
    pub imp: String,
    pub campaign: String,
    pub creative: String,
    /// What precis bid, CPM in `cur`.
    pub bid_price: f64,
    /// Three letters (ISO 4217).
    pub cur: String,
    /// [`Keys::user_hash`] of the user key.
    pub user: Option<u64>,
    pub country: Option<String>,
    /// OpenRTB `devicetype`.
    pub device: Option<u32>,
    pub os: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad token signature")]
    BadSignature,
    /// Past its time to live, or issued more than [`MAX_FUTURE_SECS`] in the future.
    #[error("token expired or not yet valid")]
    Expired,
    #[error("token not valid for this endpoint")]
    WrongPurpose,
    #[error("secret shorter than 16 bytes")]
    WeakSecret,
}

/// Bytes of a user key ([`Keys::user_key_of_current`]).
pub const USER_KEY_LEN: usize = 32;
/// What a signing secret signs to give its user key.
const USER_KEY_LABEL: &[u8] = b"precis user key\0";

/// The signing secret, and during a rotation the previous one, still accepted; and the user key,
/// which keys user hashes and nothing else.
///
/// User hashes have a key of their own so that they outlive the signing secret: frequency caps,
/// the users in `precis` packages and every user hash in the event log stay the same across a
/// rotation. The user key is derived from the first signing secret ([`Keys::user_key_of_current`]), and
/// the bidder keeps it from then on ([`Keys::with_user_key`]): bidders started with one secret agree
/// on user hashes without sharing a file, and a rotation changes nothing for users.
#[derive(Clone)]
pub struct Keys {
    current: HmacSha256,
    previous: Option<HmacSha256>,
    user: HmacSha256,
}

impl fmt::Debug for Keys {
    /// Never shows the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Refuses secrets shorter than [`MIN_SECRET_LEN`] bytes. User hashes are keyed with the user
    /// key of `current` ([`Keys::user_key_of_current`]) until [`Keys::with_user_key`] gives the one kept.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Result<Keys, TokenError> {
        let current = key(current)?;
        Ok(Keys {
            user: key(&user_key_of(&current))?,
            current,
            previous: previous.map(key).transpose()?,
        })
    }

    /// The user key the current secret gives: what the bidder keeps at first start.
    pub fn user_key_of_current(&self) -> [u8; USER_KEY_LEN] {
        user_key_of(&self.current)
    }

    /// These keys with user hashes keyed by `user_key` (at least [`MIN_SECRET_LEN`] bytes): the
    /// one kept since the first secret, whichever secret signs now.
    pub fn with_user_key(mut self, user_key: &[u8]) -> Result<Keys, TokenError> {
        self.user = key(user_key)?;
        Ok(self)
    }

    /// Signs with the current key. String fields longer than [`MAX_FIELD_LEN`] bytes are cut at a
    /// char boundary: request and imp ids come from exchanges and may be any length.
    pub fn sign(&self, claims: &Claims) -> String {
        self.signer(claims).sign(claims.purpose)
    }

    /// Signs `claims` for several purposes (a bid's win, billing, impression and click tokens):
    /// the payload is encoded and run through the MAC once; each token then costs the MAC of its
    /// purpose byte and its base64.
    pub fn signer(&self, claims: &Claims) -> Signer {
        let payload = encode(claims);
        Signer {
            mac: tagger(&self.current, &payload),
            payload,
        }
    }

    /// The claims of a token signed with the current or the previous key, for `purpose`, issued
    /// at most `ttl_secs` before `now` (the boundary included) and at most [`MAX_FUTURE_SECS`]
    /// after it.
    pub fn verify(
        &self,
        token: &str,
        now: u32,
        ttl_secs: u32,
        purpose: Purpose,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        let (payload, tag) = bytes
            .split_last_chunk::<TAG_LEN>()
            .ok_or(TokenError::Malformed)?;
        let signed_by = |key: &HmacSha256| tagger(key, payload).verify_truncated_left(tag).is_ok();
        if !signed_by(&self.current) && !self.previous.as_ref().is_some_and(signed_by) {
            return Err(TokenError::BadSignature);
        }
        let claims = decode(payload)?;
        if claims.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        let (now, issued) = (u64::from(now), u64::from(claims.issued));
        if now > issued + u64::from(ttl_secs) || issued > now + u64::from(MAX_FUTURE_SECS) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// A keyed hash of a user's id (user.id, buyeruid or ifa), so that tokens and logs never hold
    /// the raw id: the first 8 bytes of HMAC-SHA256 under the user key. The same user key and id
    /// always give the same value, whichever secret signs; another user key gives new values.
    pub fn user_hash(&self, user_key: &str) -> u64 {
        let mut mac = self.user.clone();
        mac.update(USER_DOMAIN);
        mac.update(user_key.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut first = [0; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }
}

/// One set of claims, encoded once, signed for as many purposes as asked (see [`Keys::signer`]).
pub struct Signer {
    /// The payload but its purpose byte.
    payload: Vec<u8>,
    /// The MAC under the current key, `payload` fed in.
    mac: HmacSha256,
}

impl Signer {
    /// The token of the claims for `purpose` (whatever purpose the claims themselves name):
    /// the payload, the purpose byte and the tag, in base64url.
    pub fn sign(&mut self, purpose: Purpose) -> String {
        let mut mac = self.mac.clone();
        mac.update(&[purpose.byte()]);
        let tag = mac.finalize().into_bytes();
        let payload_len = self.payload.len();
        self.payload.push(purpose.byte());
        self.payload.extend_from_slice(&tag[..TAG_LEN]);
        let token = URL_SAFE_NO_PAD.encode(&self.payload);
        self.payload.truncate(payload_len);
        token
    }
}

/// The user key a signing secret gives: its HMAC-SHA256 of a fixed label. It reveals nothing
/// of the secret and signs nothing: it only keys user hashes.
fn user_key_of(secret: &HmacSha256) -> [u8; USER_KEY_LEN] {
    let mut mac = secret.clone();
    mac.update(USER_KEY_LABEL);
    mac.finalize().into_bytes().into()
}

/// An HMAC key of `secret`, refused when shorter than [`MIN_SECRET_LEN`] bytes.
fn key(secret: &[u8]) -> Result<HmacSha256, TokenError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::WeakSecret);
    }
    HmacSha256::new_from_slice(secret).map_err(|_| TokenError::WeakSecret)
}

/// The MAC of a token payload, ready to finalize or verify.
fn tagger(key: &HmacSha256, payload: &[u8]) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(TOKEN_DOMAIN);
    mac.update(payload);
    mac
}

// The payload, all integers big-endian:
//   version u8 | issued u32 | bid_price f64 bits | flags u8 |
//   bid, request, imp, campaign, creative, cur: str |
//   user u64 (HAS_USER) | country str (HAS_COUNTRY) | device varint (HAS_DEVICE) | os str (HAS_OS) |
//   purpose u8
// where str is a u8 length then UTF-8, and varint is LEB128 (a devicetype takes one byte). The
// purpose comes last so that a bid's tokens share the MAC state of everything before it.

/// The payload of `claims` but its purpose byte (see [`Signer::sign`]).
fn encode(claims: &Claims) -> Vec<u8> {
    let flag = |present: bool, bit: u8| if present { bit } else { 0 };
    let flags = flag(claims.user.is_some(), HAS_USER)
        | flag(claims.country.is_some(), HAS_COUNTRY)
        | flag(claims.device.is_some(), HAS_DEVICE)
        | flag(claims.os.is_some(), HAS_OS);
    let mut out = Vec::with_capacity(160 + 1 + TAG_LEN);
    out.push(VERSION);
    out.extend(claims.issued.to_be_bytes());
    out.extend(claims.bid_price.to_bits().to_be_bytes());
    out.push(flags);
    for field in [
        &claims.bid,
        &claims.request,
        &claims.imp,
        &claims.campaign,
        &claims.creative,
        &claims.cur,
    ] {
        put_str(&mut out, field);
    }
    if let Some(user) = claims.user {
        out.extend(user.to_be_bytes());
    }
    if let Some(country) = &claims.country {
        put_str(&mut out, country);
    }
    if let Some(mut device) = claims.device {
        while device >= 0x80 {
            out.push(device as u8 | 0x80);
            device >>= 7;
        }
        out.push(device as u8);
    }
    if let Some(os) = &claims.os {
        put_str(&mut out, os);
    }
    out
}

fn put_str(out: &mut Vec<u8>, field: &str) {
    let field = clip(field);
    out.push(field.len() as u8);
    out.extend_from_slice(field.as_bytes());
}

/// `text` cut to at most [`MAX_FIELD_LEN`] bytes, at a char boundary.
fn clip(text: &str) -> &str {
    &text[..text.floor_char_boundary(MAX_FIELD_LEN)]
}

/// Reads a verified payload; anything out of shape (including trailing bytes) is `Malformed`.
fn decode(payload: &[u8]) -> Result<Claims, TokenError> {
    let mut r = Reader(payload);
    let [version] = r.array()?;
    if version != VERSION {
        return Err(TokenError::Malformed);
    }
    let issued = u32::from_be_bytes(r.array()?);
    let bid_price = f64::from_bits(u64::from_be_bytes(r.array()?));
    let [flags] = r.array()?;
    if flags & !(HAS_USER | HAS_COUNTRY | HAS_DEVICE | HAS_OS) != 0 {
        return Err(TokenError::Malformed);
    }
    let (bid, request, imp) = (r.string()?, r.string()?, r.string()?);
    let (campaign, creative, cur) = (r.string()?, r.string()?, r.string()?);
    let user = match flags & HAS_USER {
        0 => None,
        _ => Some(u64::from_be_bytes(r.array()?)),
    };
    let country = match flags & HAS_COUNTRY {
        0 => None,
        _ => Some(r.string()?),
    };
    let device = match flags & HAS_DEVICE {
        0 => None,
        _ => Some(r.varint()?),
    };
    let os = match flags & HAS_OS {
        0 => None,
        _ => Some(r.string()?),
    };
    let [purpose] = r.array()?;
    let purpose = Purpose::of_byte(purpose).ok_or(TokenError::Malformed)?;
    if !r.0.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Claims {
        purpose,
        issued,
        bid,
        request,
        imp,
        campaign,
        creative,
        bid_price,
        cur,
        user,
        country,
        device,
        os,
    })
}

/// The bytes not read yet.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(TokenError::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }

    fn string(&mut self) -> Result<String, TokenError> {
        let [len] = self.array()?;
        let (head, rest) = self
            .0
            .split_at_checked(usize::from(len))
            .ok_or(TokenError::Malformed)?;
        self.0 = rest;
        let text = std::str::from_utf8(head).map_err(|_| TokenError::Malformed)?;
        Ok(text.to_owned())
    }

    /// LEB128, at most 5 bytes, refusing bits beyond a u32.
    fn varint(&mut self) -> Result<u32, TokenError> {
        let mut value = 0;
        for shift in [0, 7, 14, 21, 28] {
            let [byte] = self.array()?;
            if shift == 28 && byte > 0x0f {
                return Err(TokenError::Malformed);
            }
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u32 = 86_400;
    const NOW: u32 = 1_767_225_600; // 2026-01-01

    fn keys() -> Keys {
        Keys::new(b"correct horse battery staple", None).unwrap()
    }

    /// A typical bid: a precis bid id, a UUID request id, ids from the example campaigns.
    fn full() -> Claims {
        Claims {
            purpose: Purpose::Win,
            issued: NOW,
            bid: "19b7a0c2f4e10-2a".into(),
            request: "0f6c2a9e-3b1d-4c8e-9a55-7d2e1f4b6a30".into(),
            imp: "1".into(),
            campaign: "kestrel-black-friday".into(),
            creative: "kestrel-bf-300x250".into(),
            bid_price: 2.345678,
            cur: "USD".into(),
            user: Some(keys().user_hash("a1b2c3d4-user")),
            country: Some("USA".into()),
            device: Some(4),
            os: Some("ios".into()),
        }
    }

    fn minimal() -> Claims {
        Claims {
            purpose: Purpose::Conversion,
            issued: 0,
            bid: String::new(),
            request: String::new(),
            imp: String::new(),
            campaign: String::new(),
            creative: String::new(),
            bid_price: 0.0,
            cur: String::new(),
            user: None,
            country: None,
            device: None,
            os: None,
        }
    }

    fn check(keys: &Keys, token: &str) -> Result<Claims, TokenError> {
        keys.verify(token, NOW, DAY, Purpose::Win)
    }

    /// xorshift64: a tiny seeded PRNG, so failures reproduce.
    fn rng(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn full_and_minimal_claims_round_trip() {
        let keys = keys();
        assert_eq!(check(&keys, &keys.sign(&full())), Ok(full()));
        let token = keys.sign(&minimal());
        assert_eq!(
            keys.verify(&token, 0, 0, Purpose::Conversion),
            Ok(minimal())
        );
        // Non-ASCII text, extreme numbers and a multi-byte devicetype survive too.
        let odd = Claims {
            imp: "été-1".into(),
            bid_price: 1e-9,
            user: Some(u64::MAX),
            device: Some(u32::MAX),
            issued: u32::MAX,
            ..full()
        };
        assert_eq!(
            keys.verify(&keys.sign(&odd), u32::MAX, 0, Purpose::Win),
            Ok(odd)
        );
    }

    #[test]
    fn tokens_are_url_safe_and_short_for_a_typical_bid() {
        let token = keys().sign(&full());
        assert!(token.len() < 200, "{} chars: {token}", token.len());
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn the_previous_key_is_accepted_during_rotation_and_unknown_keys_never() {
        let old = Keys::new(b"the old secret, retiring", None).unwrap();
        let rotating = Keys::new(
            b"the new secret, current!",
            Some(b"the old secret, retiring"),
        )
        .unwrap();
        let rotated = Keys::new(b"the new secret, current!", None).unwrap();
        let stranger = Keys::new(b"someone else's secret", None).unwrap();

        let before = old.sign(&full());
        assert_eq!(check(&rotating, &before), Ok(full()));
        assert_eq!(check(&rotated, &before), Err(TokenError::BadSignature));
        // New tokens are signed with the current key, which the old deployment does not know.
        let after = rotating.sign(&full());
        assert_eq!(check(&rotated, &after), Ok(full()));
        assert_eq!(check(&old, &after), Err(TokenError::BadSignature));
        assert_eq!(
            check(&rotating, &stranger.sign(&full())),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn secrets_shorter_than_16_bytes_are_refused() {
        assert_eq!(
            Keys::new(&[7; 15], None).unwrap_err(),
            TokenError::WeakSecret
        );
        assert_eq!(
            Keys::new(&[7; 16], Some(&[7; 15])).unwrap_err(),
            TokenError::WeakSecret
        );
        assert!(Keys::new(&[7; 16], Some(&[8; 16])).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("horse"), "{shown}");
        // It still says what it is, and whether a previous key is held.
        assert_eq!(shown, "Keys { previous: false, .. }");
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let keys = keys();
        let bytes = URL_SAFE_NO_PAD.decode(keys.sign(&full())).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let token = URL_SAFE_NO_PAD.encode(&flipped);
            assert_eq!(
                check(&keys, &token),
                Err(TokenError::BadSignature),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn every_changed_character_is_refused() {
        let keys = keys();
        let token = keys.sign(&full());
        for at in 0..token.len() {
            let mut changed = token.clone().into_bytes();
            changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(check(&keys, &changed).is_err(), "char {at}");
        }
    }

    #[test]
    fn truncated_and_extended_tokens_are_refused() {
        let keys = keys();
        let token = keys.sign(&full());
        for len in 0..token.len() {
            assert!(check(&keys, &token[..len]).is_err(), "length {len}");
        }
        for extra in ["A", "AA", "AAAA", "=", "=="] {
            assert!(check(&keys, &(token.clone() + extra)).is_err(), "{extra}");
        }
        assert_eq!(check(&keys, &"A".repeat(5000)), Err(TokenError::Malformed));
        // Up to MAX_TOKEN_LEN characters a token is read (and its signature found wrong); one
        // more is refused unread.
        let longest = "A".repeat(MAX_TOKEN_LEN);
        assert_eq!(check(&keys, &longest), Err(TokenError::BadSignature));
        assert_eq!(check(&keys, &(longest + "A")), Err(TokenError::Malformed));
    }

    #[test]
    fn random_garbage_is_refused_without_panic() {
        let keys = keys();
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let alphabet: Vec<char> = "ABCXYZabcxyz0189-_=+/%. é\0".chars().collect();
        for _ in 0..1000 {
            let len = (next() % 300) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert!(check(&keys, &text).is_err(), "{text:?}");
            // Well-formed base64 of random bytes gets as far as the signature check.
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert!(check(&keys, &URL_SAFE_NO_PAD.encode(bytes)).is_err());
        }
    }

    #[test]
    fn validly_signed_but_malformed_payloads_are_refused() {
        let keys = keys();
        // `payload`, its purpose byte included, signed as it is.
        let seal = |payload: &[u8]| {
            let tag = tagger(&keys.current, payload).finalize().into_bytes();
            URL_SAFE_NO_PAD.encode([payload, &tag[..TAG_LEN]].concat())
        };
        let good = [encode(&full()), vec![Purpose::Win.byte()]].concat();
        assert_eq!(check(&keys, &seal(&good)), Ok(full()));
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut payload = good.clone();
            edit(&mut payload);
            check(&keys, &seal(&payload))
        };
        let malformed = Err(TokenError::Malformed);
        assert_eq!(with(&|p| p.push(0)), malformed, "trailing byte");
        assert_eq!(
            with(&|p| p.truncate(p.len() - 1)),
            malformed,
            "missing byte"
        );
        assert_eq!(with(&|p| p[0] = 3), malformed, "unknown version");
        let last = good.len() - 1;
        assert_eq!(with(&|p| p[last] = 6), malformed, "unknown purpose");
        assert_eq!(with(&|p| p[last] = 0), malformed, "no purpose");
        // Version 1: the purpose second, one event token for every route.
        let first = [&[1, 0][..], &good[1..last]].concat();
        assert_eq!(check(&keys, &seal(&first)), malformed, "a version 1 token");
        assert_eq!(with(&|p| p[13] |= 0x10), malformed, "unknown flag");
        assert_eq!(with(&|p| p[14] = 255), malformed, "length past the end");
        assert_eq!(with(&|p| p[15] = 0xff), malformed, "invalid UTF-8");
        assert_eq!(check(&keys, &seal(&[])), malformed, "empty");
        // A devicetype whose LEB128 runs past 32 bits.
        let device = Claims {
            user: None,
            country: None,
            os: None,
            ..full()
        };
        let mut payload = encode(&device);
        payload.pop();
        payload.extend([0xff, 0xff, 0xff, 0xff, 0x1f, Purpose::Win.byte()]);
        assert_eq!(check(&keys, &seal(&payload)), malformed);
    }

    #[test]
    fn a_token_lives_exactly_its_ttl() {
        let keys = keys();
        let token = keys.sign(&full());
        let at = |now| keys.verify(&token, now, DAY, Purpose::Win).map(|_| ());
        assert_eq!(at(NOW + DAY), Ok(()));
        assert_eq!(at(NOW + DAY + 1), Err(TokenError::Expired));
        // Another instance's clock may run a little ahead, not more.
        assert_eq!(at(NOW - MAX_FUTURE_SECS), Ok(()));
        assert_eq!(at(NOW - MAX_FUTURE_SECS - 1), Err(TokenError::Expired));
        // No overflow at the ends of time.
        let last = keys.sign(&Claims {
            issued: u32::MAX,
            ..full()
        });
        assert!(keys.verify(&last, u32::MAX, u32::MAX, Purpose::Win).is_ok());
        assert_eq!(
            keys.verify(&last, 0, u32::MAX, Purpose::Win),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn each_purpose_verifies_only_as_itself_and_a_bids_tokens_all_differ() {
        let keys = keys();
        let all = [
            Purpose::Win,
            Purpose::Bill,
            Purpose::Imp,
            Purpose::Click,
            Purpose::Conversion,
        ];
        let mut signer = keys.signer(&full());
        let tokens = all.map(|purpose| signer.sign(purpose));
        for (i, token) in tokens.iter().enumerate() {
            for (j, purpose) in all.iter().enumerate() {
                let verified = keys.verify(token, NOW, DAY, *purpose);
                if i == j {
                    let expected = Claims {
                        purpose: *purpose,
                        ..full()
                    };
                    assert_eq!(verified, Ok(expected), "{purpose:?}");
                } else {
                    let wrong = Err(TokenError::WrongPurpose);
                    assert_eq!(verified, wrong, "a {:?} token as {purpose:?}", all[i]);
                }
            }
            // No two tokens of a bid are the same string, nor the same tag.
            for other in &tokens[i + 1..] {
                assert_ne!(token, other);
                assert_ne!(token[token.len() - 20..], other[other.len() - 20..]);
            }
        }
        // The shared payload comes out as `sign` makes it, whatever was signed before.
        assert_eq!(signer.sign(Purpose::Imp), tokens[2]);
        let imp = Claims {
            purpose: Purpose::Imp,
            ..full()
        };
        assert_eq!(keys.sign(&imp), tokens[2]);
    }

    #[test]
    fn user_hash_is_stable_and_keyed() {
        let keys = keys();
        let same = Keys::new(b"correct horse battery staple", Some(b"an older secret!")).unwrap();
        let other = Keys::new(b"another secret entirely", None).unwrap();
        assert_eq!(keys.user_hash("user-1"), same.user_hash("user-1"));
        assert_ne!(keys.user_hash("user-1"), keys.user_hash("user-2"));
        assert_ne!(keys.user_hash("user-1"), other.user_hash("user-1"));
        // Pinned: a change here would split every user's history in two.
        assert_eq!(keys.user_hash("user-1"), PINNED_USER_1);
    }

    /// `user_hash("user-1")` under the user key of `keys()`' secret: HMAC-SHA256 under
    /// HMAC-SHA256(secret, "precis user key\0") of "user\0user-1", its first 8 bytes big-endian
    /// (worked out apart from this code).
    const PINNED_USER_1: u64 = 10_964_545_739_456_661_769;

    #[test]
    fn the_kept_user_key_keeps_user_hashes_through_a_rotation() {
        let first = keys();
        let kept = first.user_key_of_current();
        let new_secret: &[u8] = b"the next secret, after rotation";
        let rotating = Keys::new(new_secret, Some(b"correct horse battery staple"))
            .and_then(|k| k.with_user_key(&kept))
            .unwrap();
        let rotated = Keys::new(new_secret, None)
            .and_then(|k| k.with_user_key(&kept))
            .unwrap();
        for user in ["user-1", "a1b2c3d4-user", ""] {
            let hash = first.user_hash(user);
            assert_eq!(rotating.user_hash(user), hash, "{user} while rotating");
            assert_eq!(rotated.user_hash(user), hash, "{user} after");
        }
        assert_eq!(rotated.user_hash("user-1"), PINNED_USER_1);
        // The signing changed all the same: the new secret's tokens are not the old one's.
        let claims = full();
        assert_ne!(rotated.sign(&claims), first.sign(&claims));
        assert_eq!(
            check(&first, &rotated.sign(&claims)),
            Err(TokenError::BadSignature)
        );
        // Without the kept key, the new secret's own user key gives other hashes.
        let forgot = Keys::new(new_secret, None).unwrap();
        assert_ne!(forgot.user_hash("user-1"), first.user_hash("user-1"));
    }

    #[test]
    fn the_user_key_is_not_the_signing_secret_and_short_ones_are_refused() {
        let keys = keys();
        let user_key = keys.user_key_of_current();
        assert_ne!(&user_key[..], b"correct horse battery staple");
        // Tokens signed with the user key as a secret are not this bidder's.
        let forger = Keys::new(&user_key, None).unwrap();
        let token = forger.sign(&full());
        assert_eq!(check(&keys, &token), Err(TokenError::BadSignature));
        assert_eq!(
            keys.clone().with_user_key(&[7; 15]).unwrap_err(),
            TokenError::WeakSecret
        );
        let other = keys.clone().with_user_key(&[7; 32]).unwrap();
        assert_ne!(other.user_hash("user-1"), keys.user_hash("user-1"));
    }

    #[test]
    fn overlong_fields_are_cut_at_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = clip(&long);
        assert_eq!(cut.len(), 254);
        assert!(long.starts_with(cut));
        assert_eq!(clip("short"), "short");
        // An exchange's over-long request id is signed cut short, not refused and never a panic.
        let keys = keys();
        let claims = Claims {
            request: "r".repeat(1000),
            ..full()
        };
        let back = keys
            .verify(&keys.sign(&claims), claims.issued, 60, Purpose::Win)
            .unwrap();
        assert_eq!(back.request, "r".repeat(MAX_FIELD_LEN));
    }
}
