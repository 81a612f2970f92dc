//! Campaign targeting: the compiled predicates a campaign holds against a request's [`Facts`].
//!
//! Each campaign's targeting is a short list of [`Term`]s, one per key its file sets, so an unset
//! key costs nothing. Semantics (the campaign-file contract): values in one key are alternatives,
//! all included keys must hold, and any excluded key that holds vetoes. A fact the request does
//! not carry never satisfies an included key and never vetoes. Nothing here allocates per
//! campaign or can fail on request data.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use crate::forms::{on_domain, within};
use crate::request::facts::{Facts, Gender};
use crate::request::geo::{Country, Point, Region};

/// Campaign connection names and the OpenRTB `connectiontype` codes each covers.
pub const CONNECTIONS: &[(&str, &[u32])] = &[
    ("ethernet", &[1]),
    ("wifi", &[2]),
    ("cellular", &[3, 4, 5, 6, 7]),
    ("2g", &[4]),
    ("3g", &[5]),
    ("4g", &[6]),
    ("5g", &[7]),
];

/// A set of small OpenRTB enum codes as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codes(u32);

impl Codes {
    /// The union of the codes the given names cover in `table`; `Err(name)` for a name not in it.
    pub fn from_names<'a>(
        table: &[(&str, &[u32])],
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Codes, String> {
        let mut bits = 0;
        for name in names {
            let key = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
            let (_, codes) = table
                .iter()
                .find(|(n, _)| *n == key)
                .ok_or_else(|| name.to_owned())?;
            bits |= codes.iter().fold(0, |acc, c| acc | (1 << c));
        }
        Ok(Codes(bits))
    }

    pub fn contains(&self, code: u32) -> bool {
        code < 32 && self.0 & (1 << code) != 0
    }

    /// The codes it holds, smallest first.
    pub fn codes(&self) -> impl Iterator<Item = u32> + '_ {
        (0..32).filter(|&c| self.contains(c))
    }
}

/// Hours of the week a campaign runs, in its own time zone: bit `day * 24 + hour`, Monday = day 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week([u64; 3]);

impl Week {
    /// `days` as Monday-based indexes and `hours` as local `[from, to)` ranges; empty means all.
    pub fn new(days: &[u32], hours: &[(u32, u32)]) -> Week {
        let all_days: Vec<u32> = (0..7).collect();
        let days = if days.is_empty() { &all_days[..] } else { days };
        let hours = if hours.is_empty() {
            &[(0, 24)][..]
        } else {
            hours
        };
        let mut bits = [0u64; 3];
        for &day in days {
            for &(from, to) in hours {
                for hour in from..to.min(24) {
                    let bit = (day * 24 + hour) as usize;
                    bits[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        Week(bits)
    }

    pub fn contains(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        let local = now.with_timezone(&tz);
        let bit = (local.weekday().num_days_from_monday() * 24 + local.hour()) as usize;
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// A circle on the map: "within `km` of this point".
#[derive(Debug, Clone, PartialEq)]
pub struct Circle {
    pub center: Point,
    pub km: f64,
}

/// One targeting key of a campaign, compiled. Lists hold values already in their compared form.
#[derive(Debug, Clone)]
pub enum Term {
    Countries(Vec<Country>),
    Regions(Vec<Region>),
    /// Lower case.
    Cities(Vec<String>),
    Near(Vec<Circle>),
    Schedule {
        week: Week,
        tz: Tz,
    },
    DeviceTypes(Codes),
    /// Normalised with [`normalize_os`](crate::forms::normalize_os).
    Os(Vec<String>),
    Connection(Codes),
    /// In [`tag_form`](crate::forms::tag_form); a tag matches itself and every descendant.
    TagsAny(Vec<String>),
    TagsAll(Vec<String>),
    /// In [`category_form`](crate::forms::category_form); `IAB17` matches `IAB17-*`.
    Categories(Vec<String>),
    /// Inclusive.
    Age {
        min: u32,
        max: u32,
    },
    Gender(Vec<Gender>),
    /// Host names; subdomains match.
    Sites(Vec<String>),
    /// Bundle ids, lower case.
    Apps(Vec<String>),
}

impl Term {
    /// Does the request carry this fact, with a value this term names?
    pub fn holds(&self, facts: &Facts) -> bool {
        let has_tag = |want: &String| facts.tags.iter().any(|t| within(t, want, '/'));
        match self {
            Term::Countries(list) => facts.country.is_some_and(|c| list.contains(&c)),
            Term::Regions(list) => facts
                .region
                .as_ref()
                .is_some_and(|r| list.iter().any(|want| want.contains(r, facts.country))),
            Term::Cities(list) => facts.city.as_ref().is_some_and(|c| list.contains(c)),
            Term::Near(circles) => facts
                .point
                .is_some_and(|p| circles.iter().any(|c| c.center.km_to(&p) <= c.km)),
            Term::Schedule { week, tz } => week.contains(facts.now, *tz),
            Term::DeviceTypes(codes) => facts.device_type.is_some_and(|d| codes.contains(d)),
            Term::Os(list) => facts.os.as_ref().is_some_and(|os| list.contains(os)),
            Term::Connection(codes) => facts.connection.is_some_and(|c| codes.contains(c)),
            Term::TagsAny(list) => list.iter().any(has_tag),
            Term::TagsAll(list) => list.iter().all(has_tag),
            Term::Categories(list) => facts
                .categories
                .iter()
                .any(|c| list.iter().any(|want| within(c, want, '-'))),
            Term::Age { min, max } => facts.age.is_some_and(|a| (*min..=*max).contains(&a)),
            Term::Gender(list) => facts.gender.is_some_and(|g| list.contains(&g)),
            Term::Sites(list) => facts
                .site
                .as_ref()
                .is_some_and(|s| list.iter().any(|d| on_domain(s, d))),
            Term::Apps(list) => facts.app.as_ref().is_some_and(|a| list.contains(a)),
        }
    }
}

/// A campaign's targeting: every included term must hold, no excluded term may.
#[derive(Debug, Clone, Default)]
pub struct Targeting {
    pub include: Vec<Term>,
    pub exclude: Vec<Term>,
}

impl Targeting {
    pub fn matches(&self, facts: &Facts) -> bool {
        self.include.iter().all(|t| t.holds(facts)) && !self.exclude.iter().any(|t| t.holds(facts))
    }

    /// Whether its dayparting lets the campaign run at `now`, every other term aside: the hours
    /// pacing shares a budget over.
    pub fn scheduled(&self, now: DateTime<Utc>) -> bool {
        let on = |term: &Term| match term {
            Term::Schedule { week, tz } => Some(week.contains(now, *tz)),
            _ => None,
        };
        self.include.iter().filter_map(on).all(|on| on)
            && !self.exclude.iter().filter_map(on).any(|on| on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::normalize_os;
    use crate::request::openrtb::DEVICE_TYPES;
    use crate::request::openrtb::decode;

    fn facts(json: &str) -> Facts {
        // 2026-03-04 is a Wednesday; 10:30 UTC is 18:30 in Shanghai.
        let now = "2026-03-04T10:30:00Z".parse().unwrap();
        Facts::from_request(&decode(json.as_bytes()).unwrap(), now)
    }

    fn request(extra: &str) -> String {
        format!(r#"{{"id": "r", "imp": [{{"id": "1"}}] {extra}}}"#)
    }

    #[test]
    fn geo_terms_read_device_geo_and_fall_back_to_user_geo() {
        let f = facts(&request(
            r#", "device": {"geo": {"country": "CN", "region": "SH", "city": " Shanghai "}}"#,
        ));
        assert!(Term::Countries(vec![Country::parse("CHN").unwrap()]).holds(&f));
        assert!(!Term::Countries(vec![Country::parse("USA").unwrap()]).holds(&f));
        assert!(Term::Regions(vec![Region::parse("CN-SH").unwrap()]).holds(&f));
        assert!(Term::Cities(vec!["shanghai".into()]).holds(&f));

        let f = facts(&request(
            r#", "device": {"geo": {"country": ""}}, "user": {"geo": {"country": "DEU", "lat": 48.14, "lon": 11.58}}"#,
        ));
        assert_eq!(f.country, Country::parse("DEU"));
        let munich = Circle {
            center: Point::new(48.137, 11.575).unwrap(),
            km: 5.0,
        };
        let berlin = Circle {
            center: Point::new(52.52, 13.40).unwrap(),
            km: 50.0,
        };
        assert!(Term::Near(vec![berlin.clone(), munich]).holds(&f));
        assert!(!Term::Near(vec![berlin]).holds(&f));
    }

    #[test]
    fn schedule_is_evaluated_in_the_campaign_time_zone() {
        let f = facts(&request(""));
        let evenings = Week::new(&[2], &[(18, 24)]);
        assert!(
            Term::Schedule {
                week: evenings.clone(),
                tz: chrono_tz::Asia::Shanghai
            }
            .holds(&f)
        );
        assert!(
            !Term::Schedule {
                week: evenings,
                tz: chrono_tz::UTC
            }
            .holds(&f)
        );
        let weekends = Week::new(&[5, 6], &[]);
        assert!(
            !Term::Schedule {
                week: weekends,
                tz: chrono_tz::Asia::Shanghai
            }
            .holds(&f)
        );
        let office = Week::new(&[], &[(8, 12)]);
        assert!(
            Term::Schedule {
                week: office,
                tz: chrono_tz::UTC
            }
            .holds(&f)
        );
    }

    #[test]
    fn device_os_and_connection_map_openrtb_codes_and_spellings() {
        let f = facts(&request(
            r#", "device": {"devicetype": 1, "os": "iPhone OS", "connectiontype": 6}"#,
        ));
        let types =
            |names: &[&str]| Codes::from_names(DEVICE_TYPES, names.iter().copied()).unwrap();
        assert!(Term::DeviceTypes(types(&["phone"])).holds(&f));
        assert!(Term::DeviceTypes(types(&["tablet"])).holds(&f));
        assert!(!Term::DeviceTypes(types(&["desktop", "ctv"])).holds(&f));
        assert!(Term::Os(vec![normalize_os("ios")]).holds(&f));
        assert!(!Term::Os(vec![normalize_os("Android")]).holds(&f));
        let nets = |names: &[&str]| Codes::from_names(CONNECTIONS, names.iter().copied()).unwrap();
        assert!(Term::Connection(nets(&["cellular"])).holds(&f));
        assert!(Term::Connection(nets(&["4g"])).holds(&f));
        assert!(!Term::Connection(nets(&["wifi"])).holds(&f));
        assert_eq!(
            Codes::from_names(DEVICE_TYPES, ["toaster"]),
            Err("toaster".to_owned())
        );
        assert_eq!(normalize_os("OS X"), "macos");
        let screen = facts(&request(r#", "dooh": {"id": "screen-7"}"#));
        assert!(Term::DeviceTypes(types(&["dooh"])).holds(&screen));
        assert!(!Term::DeviceTypes(types(&["desktop"])).holds(&screen));
    }

    #[test]
    fn tags_come_from_segments_keywords_and_kwarray_and_match_descendants() {
        let f = facts(&request(
            r#", "user": {"keywords": "Sports/Outdoor/Running/Trail, cooking", "kwarray": ["travel"],
                "data": [{"segment": [{"id": "auto/suv"}, {"name": "Beauty"}]}]}"#,
        ));
        for tag in [
            "sports",
            "sports/outdoor/running",
            "cooking",
            "travel",
            "auto",
            "beauty",
        ] {
            assert!(Term::TagsAny(vec![tag.into()]).holds(&f), "{tag}");
        }
        assert!(!Term::TagsAny(vec!["sports/indoor".into(), "sport".into()]).holds(&f));
        assert!(Term::TagsAll(vec!["sports".into(), "travel".into()]).holds(&f));
        assert!(!Term::TagsAll(vec!["sports".into(), "finance".into()]).holds(&f));
    }

    #[test]
    fn categories_sites_and_apps_match_their_hierarchies() {
        let f = facts(&request(
            r#", "site": {"page": "https://www.News.example/a?b", "cat": ["IAB17-3"], "content": {"cat": ["iab2"]}}"#,
        ));
        assert_eq!(f.site.as_deref(), Some("www.news.example"));
        assert!(Term::Categories(vec!["IAB17".into()]).holds(&f));
        assert!(Term::Categories(vec!["IAB2".into()]).holds(&f));
        assert!(!Term::Categories(vec!["IAB1".into()]).holds(&f));
        assert!(Term::Sites(vec!["news.example".into()]).holds(&f));
        assert!(!Term::Sites(vec!["ews.example".into()]).holds(&f));
        let f = facts(&request(r#", "app": {"bundle": "com.Example.Reader"}"#));
        assert!(Term::Apps(vec!["com.example.reader".into()]).holds(&f));
    }

    #[test]
    fn age_and_gender_come_from_the_user() {
        let f = facts(&request(r#", "user": {"yob": 1996, "gender": "F"}"#));
        assert_eq!(f.age, Some(30));
        assert!(Term::Age { min: 25, max: 30 }.holds(&f));
        assert!(!Term::Age { min: 31, max: 40 }.holds(&f));
        assert!(Term::Gender(vec![Gender::Female]).holds(&f));
        assert!(!Term::Gender(vec![Gender::Male]).holds(&f));
        assert_eq!(facts(&request(r#", "user": {"yob": 3000}"#)).age, None);
    }

    #[test]
    fn the_user_is_the_exchange_id_else_the_buyer_id_else_the_device_ifa() {
        let user = |extra: &str| facts(&request(extra)).user;
        assert_eq!(
            user(r#", "user": {"id": "u1", "buyeruid": "b1"}, "device": {"ifa": "i1"}"#).as_deref(),
            Some("u1")
        );
        assert_eq!(
            user(r#", "user": {"buyeruid": "b1"}, "device": {"ifa": "i1"}"#).as_deref(),
            Some("b1")
        );
        assert_eq!(user(r#", "device": {"ifa": "i1"}"#).as_deref(), Some("i1"));
        assert_eq!(
            user(r#", "device": {"ifa": "00000000-0000-0000-0000-000000000000"}"#),
            None
        );
        assert_eq!(user(""), None);
    }

    #[test]
    fn unknown_facts_neither_satisfy_an_include_nor_veto_through_an_exclude() {
        let f = facts(&request(""));
        let country = Term::Countries(vec![Country::parse("USA").unwrap()]);
        let included = Targeting {
            include: vec![country.clone()],
            exclude: vec![],
        };
        let excluded = Targeting {
            include: vec![],
            exclude: vec![country],
        };
        assert!(!included.matches(&f));
        assert!(excluded.matches(&f));
        let f = facts(&request(r#", "device": {"geo": {"country": "USA"}}"#));
        assert!(included.matches(&f));
        assert!(!excluded.matches(&f));
    }
}
