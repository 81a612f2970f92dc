//! Whether a request allows personal data: the legal and user signals it carries, read once.
//!
//! precis may use a user's key, tags, age, gender or precise location (to target, cap, log or
//! hand a click id to an advertiser) only when nothing in the request forbids it:
//! - `regs.coppa = 1` (a child-directed site or app): never;
//! - `device.lmt = 1` (limit ad tracking) or `device.dnt = 1` (do not track): never;
//! - a US opt-out of sale: `regs.us_privacy` (2.6, or `regs.ext.us_privacy`) whose third character
//!   is `Y`;
//! - GDPR applies (`regs.gdpr = 1`, or `regs.ext.gdpr`): only with a TCF v2 consent string
//!   (`user.consent`, or `user.ext.consent`) that gives precis' vendor id (`[privacy] vendor_id`)
//!   consent, and consent to purposes 1 (store and access information on a device), 3 (create a
//!   personalised ads profile) and 4 (select personalised ads). No vendor id configured, an empty
//!   or unreadable string: no personal data.
//!
//! It reads the TCF core segment only (the vendor consents live there); publisher restrictions
//! and the other segments are not needed for this decision. It never fails: what cannot be read
//! withholds personal data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::openrtb::BidRequest;

/// Why a request allows no personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    Coppa,
    LimitAdTracking,
    DoNotTrack,
    UsOptOut,
    /// GDPR applies and the consent string does not give precis' vendor and purposes consent.
    NoGdprConsent,
}

impl Withheld {
    /// Its label in `/metrics` and explanations.
    pub fn label(self) -> &'static str {
        match self {
            Withheld::Coppa => "coppa",
            Withheld::LimitAdTracking => "lmt",
            Withheld::DoNotTrack => "dnt",
            Withheld::UsOptOut => "us_privacy",
            Withheld::NoGdprConsent => "gdpr",
        }
    }
}

/// The TCF purposes precis needs consent for: 1 (storage and access), 3 (personalised ads
/// profile), 4 (select personalised ads).
const PURPOSES: [u32; 3] = [1, 3, 4];

/// Whether `request` allows personal data for vendor `vendor` (`None`: no vendor id configured).
pub fn withheld(request: &BidRequest, vendor: Option<u32>) -> Option<Withheld> {
    let regs = request.regs.as_ref();
    let device = request.device.as_ref();
    if regs.and_then(|r| r.coppa) == Some(1) {
        return Some(Withheld::Coppa);
    }
    if device.and_then(|d| d.lmt) == Some(1) {
        return Some(Withheld::LimitAdTracking);
    }
    if device.and_then(|d| d.dnt) == Some(1) {
        return Some(Withheld::DoNotTrack);
    }
    let us_privacy = regs
        .and_then(|r| (r.us_privacy.as_deref()).or_else(|| r.ext.as_ref()?.us_privacy.as_deref()));
    if us_privacy.is_some_and(|s| {
        s.as_bytes()
            .get(2)
            .is_some_and(|c| c.eq_ignore_ascii_case(&b'y'))
    }) {
        return Some(Withheld::UsOptOut);
    }
    let flag = |v: Option<&serde_json::Value>| match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let gdpr = flag(regs.and_then(|r| r.gdpr.as_ref()))
        .or_else(|| flag(regs.and_then(|r| r.ext.as_ref()?.gdpr.as_ref())));
    if gdpr != Some(1) {
        return None;
    }
    let user = request.user.as_ref();
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned));
    let consent = text(user.and_then(|u| u.consent.as_ref()))
        .or_else(|| text(user.and_then(|u| u.ext.as_ref()?.consent.as_ref())));
    let granted = vendor.zip(consent).and_then(|(vendor, consent)| {
        let tc = TcString::parse(&consent)?;
        Some(PURPOSES.iter().all(|&p| tc.purpose(p)) && tc.vendor(vendor))
    });
    match granted {
        Some(true) => None,
        _ => Some(Withheld::NoGdprConsent),
    }
}

/// The parts of a TCF v2 core segment precis reads.
#[derive(Debug, PartialEq, Eq)]
pub struct TcString {
    /// Purposes 1..=24 consented, bit `n - 1`.
    purposes: u32,
    /// Vendors consented.
    vendors: Vendors,
}

#[derive(Debug, PartialEq, Eq)]
enum Vendors {
    /// Bit `id - 1` of the field, for ids up to its length.
    Bits(Vec<bool>),
    /// Inclusive ranges.
    Ranges(Vec<(u32, u32)>),
}

/// Bits before the vendor consent section of a v2 core segment: version 6, created 36, last
/// updated 36, CMP id 12, CMP version 12, consent screen 6, consent language 12, vendor list
/// version 12, TCF policy version 6, is service specific 1, use non-standard texts 1, special
/// feature opt-ins 12, purposes consent 24, purposes legitimate interest 24, purpose one
/// treatment 1, publisher country code 12.
const PURPOSES_AT: usize = 6 + 36 + 36 + 12 + 12 + 6 + 12 + 12 + 6 + 1 + 1 + 12;
const VENDORS_AT: usize = PURPOSES_AT + 24 + 24 + 1 + 12;

impl TcString {
    /// The core segment of `text` (segments are separated by `.`); `None` when it is not a v2
    /// core segment that can be read to the end of its vendor consents.
    pub fn parse(text: &str) -> Option<TcString> {
        let core = text.trim().split('.').next()?;
        let bytes = URL_SAFE_NO_PAD.decode(core.trim_end_matches('=')).ok()?;
        let bits = Bits(&bytes);
        if bits.read(0, 6)? != 2 {
            return None;
        }
        let purposes = bits.read(PURPOSES_AT, 24)? as u32;
        let max = bits.read(VENDORS_AT, 16)? as u32;
        let at = VENDORS_AT + 16;
        let vendors = if bits.read(at, 1)? == 0 {
            let field = (0..max as usize)
                .map(|i| bits.read(at + 1 + i, 1).map(|b| b == 1))
                .collect::<Option<Vec<bool>>>()?;
            Vendors::Bits(field)
        } else {
            let entries = bits.read(at + 1, 12)?;
            let mut at = at + 13;
            let mut ranges = Vec::new();
            for _ in 0..entries {
                let range = bits.read(at, 1)? == 1;
                let start = bits.read(at + 1, 16)? as u32;
                let end = if range {
                    bits.read(at + 17, 16)? as u32
                } else {
                    start
                };
                at += if range { 33 } else { 17 };
                ranges.push((start, end));
            }
            Vendors::Ranges(ranges)
        };
        Some(TcString { purposes, vendors })
    }

    /// Whether purpose `n` (1..=24) is consented.
    pub fn purpose(&self, n: u32) -> bool {
        (1..=24).contains(&n) && self.purposes & (1 << (24 - n)) != 0
    }

    /// Whether vendor `id` is consented.
    pub fn vendor(&self, id: u32) -> bool {
        match &self.vendors {
            Vendors::Bits(bits) => id >= 1 && bits.get(id as usize - 1) == Some(&true),
            Vendors::Ranges(ranges) => ranges.iter().any(|&(a, b)| (a..=b).contains(&id)),
        }
    }
}

/// A bit string, most significant bit first.
struct Bits<'a>(&'a [u8]);

impl Bits<'_> {
    /// `len` (≤ 64) bits from bit `at`, as a number; `None` past the end.
    fn read(&self, at: usize, len: usize) -> Option<u64> {
        let mut value = 0u64;
        for i in at..at.checked_add(len)? {
            let byte = self.0.get(i / 8)?;
            value = (value << 1) | u64::from((byte >> (7 - i % 8)) & 1);
        }
        Some(value)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::request::openrtb::decode;

    /// A TCF v2 core segment, written field by field as the IAB's format sets them out, with
    /// these purposes consented and these vendors, as a bit field or as ranges.
    pub fn tc_string(purposes: &[u32], vendors: &[u32], ranges: bool) -> String {
        let mut bits: Vec<bool> = Vec::new();
        let mut put = |value: u64, len: usize| {
            bits.extend((0..len).rev().map(|i| (value >> i) & 1 == 1));
        };
        put(2, 6); // version
        put(16_000_000_000, 36); // created, deciseconds
        put(16_000_000_000, 36); // last updated
        put(7, 12); // CMP id
        put(1, 12); // CMP version
        put(1, 6); // consent screen
        put(4 * 64 + 13, 12); // consent language: EN
        put(150, 12); // vendor list version
        put(4, 6); // TCF policy version
        put(0, 1); // is service specific
        put(0, 1); // use non-standard texts
        put(0, 12); // special feature opt-ins
        put(purposes.iter().fold(0, |acc, p| acc | 1 << (24 - p)), 24);
        put(0, 24); // purposes legitimate interest
        put(0, 1); // purpose one treatment
        put(5 * 64 + 4, 12); // publisher country: FR
        let max = vendors.iter().copied().max().unwrap_or(0);
        put(u64::from(max), 16);
        if ranges {
            put(1, 1);
            put(vendors.len() as u64, 12);
            for &v in vendors {
                put(0, 1);
                put(u64::from(v), 16);
            }
        } else {
            put(0, 1);
            for id in 1..=max {
                put(u64::from(vendors.contains(&id)), 1);
            }
        }
        put(0, 16); // vendor legitimate interests: none
        put(0, 1);
        put(0, 12); // publisher restrictions: none
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|c| (0..8).fold(0, |acc, i| acc << 1 | u8::from(c.get(i) == Some(&true))))
            .collect();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn a_consent_string_says_which_purposes_and_vendors_are_consented() {
        for ranges in [false, true] {
            let tc = TcString::parse(&tc_string(&[1, 3, 4], &[7, 755], ranges)).unwrap();
            assert!(tc.purpose(1) && tc.purpose(3) && tc.purpose(4), "{tc:?}");
            assert!(!tc.purpose(2) && !tc.purpose(24) && !tc.purpose(0) && !tc.purpose(25));
            assert!(tc.vendor(7) && tc.vendor(755));
            assert!(!tc.vendor(8) && !tc.vendor(0) && !tc.vendor(756));
        }
        // A publisher segment after the core is ignored; what is not a v2 core is unreadable.
        let with_segment = format!("{}.YAAAAAAAAAAA", tc_string(&[1], &[1], false));
        assert!(TcString::parse(&with_segment).is_some());
        assert_eq!(TcString::parse(""), None);
        assert_eq!(TcString::parse("not base64!"), None);
        assert_eq!(
            TcString::parse("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"),
            None,
            "TCF v1"
        );
        let cut = tc_string(&[1, 3, 4], &[755], false);
        assert_eq!(TcString::parse(&cut[..40]), None, "cut before its vendors");
    }

    #[test]
    fn the_end_to_end_tests_vector_is_what_the_format_gives() {
        // tests/privacy.rs sends this string: purposes 1, 3 and 4 and vendor 755 consented.
        let vector = "CO5rKAAO5rKAAAHABBENCWEAALAAAAAAAAogF5wAQF5gAAAA";
        assert_eq!(tc_string(&[1, 3, 4], &[755], true), vector);
        // A string from a CMP in the wild (CMP 31, everything refused) reads, and grants nothing.
        let real = TcString::parse("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA").unwrap();
        assert!((1..=24).all(|p| !real.purpose(p)) && !real.vendor(755));
    }

    #[test]
    fn personal_data_is_withheld_without_a_basis_for_it() {
        let with = |extra: &str, vendor: Option<u32>| {
            let json = format!(r#"{{"id": "r", "imp": [{{"id": "1"}}] {extra}}}"#);
            withheld(&decode(json.as_bytes()).unwrap(), vendor)
        };
        assert_eq!(with("", None), None);
        assert_eq!(
            with(r#", "regs": {"coppa": 1}"#, Some(7)),
            Some(Withheld::Coppa)
        );
        assert_eq!(
            with(r#", "device": {"lmt": 1}"#, Some(7)),
            Some(Withheld::LimitAdTracking)
        );
        assert_eq!(
            with(r#", "device": {"dnt": "1"}"#, Some(7)),
            Some(Withheld::DoNotTrack)
        );
        assert_eq!(
            with(r#", "regs": {"us_privacy": "1YYN"}"#, None),
            Some(Withheld::UsOptOut)
        );
        assert_eq!(
            with(r#", "regs": {"ext": {"us_privacy": "1YNN"}}"#, None),
            None
        );
        let gdpr = |consent: &str, vendor| {
            with(
                &format!(r#", "regs": {{"gdpr": 1}}, "user": {{"consent": "{consent}"}}"#),
                vendor,
            )
        };
        let granted = tc_string(&[1, 2, 3, 4], &[7], false);
        assert_eq!(gdpr(&granted, Some(7)), None);
        assert_eq!(
            gdpr(&granted, Some(8)),
            Some(Withheld::NoGdprConsent),
            "another vendor"
        );
        assert_eq!(
            gdpr(&granted, None),
            Some(Withheld::NoGdprConsent),
            "no vendor id"
        );
        let no_profile = tc_string(&[1, 4], &[7], true);
        assert_eq!(
            gdpr(&no_profile, Some(7)),
            Some(Withheld::NoGdprConsent),
            "purpose 3"
        );
        assert_eq!(gdpr("", Some(7)), Some(Withheld::NoGdprConsent));
        // 2.5's places, and gdpr = 0.
        let ext = format!(
            r#", "regs": {{"ext": {{"gdpr": "1"}}}}, "user": {{"ext": {{"consent": "{granted}"}}}}"#
        );
        assert_eq!(with(&ext, Some(7)), None);
        assert_eq!(with(r#", "regs": {"gdpr": 0}"#, None), None);
    }
}
