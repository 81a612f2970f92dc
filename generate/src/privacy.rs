//! The privacy signals of a request as exchanges send them for where its user is: `regs.gdpr` with
//! a TCF v2.2 consent string in `user.consent` in the countries of the GDPR, `regs.us_privacy` in
//! the US, `regs.coppa` for sites and apps directed at children. Which signals there are and how
//! often; never what a bidder must do with them.

use super::places::{Law, Market};
use super::rng::Rng;

/// TCF v2.2 consent strings (the core segment and the disclosed vendors, vendors 1-1300), as a
/// consent management platform writes them on 2026-01-15 (CMP 300, vendor list 95, policy 4).
/// Everything accepted: purposes 1-11 and both special features consented, legitimate interest
/// for purposes 2 and 7-11, every vendor consented and with legitimate interest.
pub const CONSENT_ALL: &str =
    "CQeF0pAQeF0pAEsACBENBfEsAP_gAEPgAAAAKKQAYAAgooCikAGAAIKKAAA.IKKQAYAAgooA";
/// Everything refused: no purpose, no special feature, no vendor.
pub const CONSENT_NONE: &str = "CQeF0pAQeF0pAEsACBENBfEgAAAAAAAAAAAAAAAAAAAA.IKKQAYAAgooA";
/// Storage and measurement only (purposes 1 and 7-10): no ads selected or personalised
/// (purposes 2-6); every vendor consented, none with legitimate interest.
pub const CONSENT_MEASUREMENT: &str =
    "CQeF0pAQeF0pAEsACBENBfEgAIPAAAAAAAAAKKQAYAAgooAAAAA.IKKQAYAAgooA";

/// What a GDPR request carries in `user.consent`: mostly a choice the user made, accepting as
/// most do; sometimes an empty string (no consent management platform on the page), sometimes
/// nothing.
const CONSENTS: &[(Option<&str>, u32)] = &[
    (Some(CONSENT_ALL), 70),
    (Some(CONSENT_NONE), 15),
    (Some(CONSENT_MEASUREMENT), 5),
    (Some(""), 5),
    (None, 5),
];

/// US privacy strings (version 1: notice given, opted out of sale, covered by the LSPA): most
/// users notified and not opted out, a few opted out, a few never shown the notice.
const US_PRIVACY: &[(&str, u32)] = &[("1YNN", 90), ("1YYN", 6), ("1NNN", 4)];

/// Share of requests from sites and apps directed at children.
const COPPA_SHARE: f64 = 0.01;

/// A request's privacy signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// `regs.coppa`.
    pub coppa: bool,
    /// `regs.gdpr`; `None` when the exchange does not know where the user is.
    pub gdpr: Option<bool>,
    /// `user.consent`: a TCF consent string (one of the `CONSENT_` ones, or empty).
    pub consent: Option<&'static str>,
    /// `regs.us_privacy`.
    pub us_privacy: Option<&'static str>,
}

impl Regs {
    /// The signals of a request from a user in `country` (ISO-3166 alpha-3), when known.
    pub fn draw(rng: &mut Rng, country: Option<&str>) -> Regs {
        let coppa = rng.chance(COPPA_SHARE);
        let law = country.and_then(Market::of).map(|m| m.law);
        let (consent, us_privacy) = match law {
            Some(Law::Gdpr) => (*rng.weighted(CONSENTS), None),
            Some(Law::UsPrivacy) => (None, Some(*rng.weighted(US_PRIVACY))),
            Some(Law::Other) | None => (None, None),
        };
        Regs {
            coppa,
            gdpr: law.map(|law| law == Law::Gdpr),
            consent,
            us_privacy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signals_follow_where_the_user_is() {
        let mut rng = Rng::new(2);
        let n = 10_000;
        let (mut coppa, mut consented, mut empty, mut opted_out) = (0, 0, 0, 0);
        for _ in 0..n {
            let eu = Regs::draw(&mut rng, Some("DEU"));
            assert_eq!((eu.gdpr, eu.us_privacy), (Some(true), None));
            consented += usize::from(eu.consent == Some(CONSENT_ALL));
            empty += usize::from(eu.consent.is_none_or(str::is_empty));
            let us = Regs::draw(&mut rng, Some("USA"));
            assert_eq!((us.gdpr, us.consent), (Some(false), None));
            opted_out += usize::from(us.us_privacy == Some("1YYN"));
            let elsewhere = Regs::draw(&mut rng, Some("JPN"));
            assert_eq!(
                (elsewhere.gdpr, elsewhere.consent, elsewhere.us_privacy),
                (Some(false), None, None)
            );
            let unknown = Regs::draw(&mut rng, None);
            assert_eq!((unknown.gdpr, unknown.consent), (None, None));
            coppa += usize::from(unknown.coppa);
        }
        let share = |k: usize| k as f64 / n as f64;
        assert!((0.67..0.73).contains(&share(consented)), "{consented}");
        assert!((0.08..0.12).contains(&share(empty)), "{empty}");
        assert!((0.04..0.08).contains(&share(opted_out)), "{opted_out}");
        assert!((0.005..0.015).contains(&share(coppa)), "{coppa}");
    }
}
