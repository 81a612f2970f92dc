//! Fuzz target `event_token`: event tokens, as `/win`, `/bill`, `/imp`, `/click` and `/conv`
//! read them.
//!
//! Owns three checks on one input: the input as a token string is refused or opened without a
//! panic; the input as a payload, signed with the test key (as only precis could), reaches the
//! payload decoder itself, and what it opens signs again to the same claims; the input as
//! arbitrary claims signs and opens back to those claims (string fields clipped as documented).
//! It must never touch disk or the network.
#![no_main]

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use precis::token::{Claims, Keys, Purpose};
use precis_fuzz::clipped;
use sha2::Sha256;

const SECRET: &[u8] = b"the fuzzing secret, 32 bytes....";

/// Any time is in range: issued at most `u32::MAX` seconds ago, and never after `u32::MAX`.
const NOW: u32 = u32::MAX;
const TTL: u32 = u32::MAX;

/// `payload` with a valid tag: the token format of `precis::token` (its domain prefix, the first
/// 16 bytes of HMAC-SHA256, URL-safe base64 without padding).
fn forge(payload: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).expect("any key length");
    mac.update(b"token\0");
    mac.update(payload);
    let tag = mac.finalize().into_bytes();
    URL_SAFE_NO_PAD.encode([payload, &tag[..16]].concat())
}

const PURPOSES: [Purpose; 5] = [
    Purpose::Win,
    Purpose::Bill,
    Purpose::Imp,
    Purpose::Click,
    Purpose::Conversion,
];

fn claims(u: &mut Unstructured) -> Result<Claims> {
    Ok(Claims {
        purpose: *u.choose(&PURPOSES)?,
        issued: u.arbitrary()?,
        bid: u.arbitrary()?,
        request: u.arbitrary()?,
        imp: u.arbitrary()?,
        campaign: u.arbitrary()?,
        creative: u.arbitrary()?,
        bid_price: u.arbitrary()?,
        cur: u.arbitrary()?,
        user: u.arbitrary()?,
        country: u.arbitrary()?,
        device: u.arbitrary()?,
        os: u.arbitrary()?,
    })
}

/// Claims equal but for the price, compared by bits (a NaN price must come back as that NaN).
fn same(a: &Claims, b: &Claims) -> bool {
    let priceless = |c: &Claims| Claims {
        bid_price: 0.0,
        ..c.clone()
    };
    a.bid_price.to_bits() == b.bid_price.to_bits() && priceless(a) == priceless(b)
}

fuzz_target!(|data: &[u8]| {
    let keys = Keys::new(SECRET, Some(b"the previous secret, also long")).expect("long secrets");
    let open = |token: &str, purpose| keys.verify(token, NOW, TTL, purpose);

    // As a token string: garbage is refused, never a panic.
    let text = String::from_utf8_lossy(data);
    for purpose in PURPOSES {
        let _ = open(&text, purpose);
    }

    // As a payload: the decoder reads only what it checks, and what it opens signs the same.
    let forged = forge(data);
    for purpose in PURPOSES {
        if let Ok(claims) = open(&forged, purpose) {
            let again = open(&keys.sign(&claims), purpose).expect("a signed token opens");
            assert!(same(&again, &claims), "{again:?} != {claims:?}");
        }
    }

    // As claims: sign then open gives them back.
    if let Ok(claims) = claims(&mut Unstructured::new(data)) {
        let opened = open(&keys.sign(&claims), claims.purpose).expect("a signed token opens");
        assert!(same(&opened, &clipped(&claims)), "{opened:?} != {claims:?}");
    }
});
