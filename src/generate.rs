//! The generated world (the `precis-generate` crate) as the bidder reads it: generated campaign
//! files compiled with [`campaign::file::parse`] (for benchmarks and tests that need no files), the
//! generator's tag tree as the [`Taxonomy`] campaign tags are checked against, written as the
//! `taxonomy.toml` beside the files `precis gen-campaigns` writes.
//!
//! The crate makes text and values and knows nothing of precis; this module is where the two
//! meet, and its tests check that precis reads what the crate makes. Nothing here is on the bid
//! path.

use std::path::Path;

use precis_generate::{Generator, WriteError};

use crate::campaign::pricing::Rates;
use crate::campaign::taxonomy::{self, Taxonomy};
use crate::campaign::{self, Campaign};
use crate::diagnostic::FileError;

/// Campaigns `0..count` of `generator`, compiled with [`campaign::file::parse`] as if read from
/// `<id>.toml`.
pub fn compile(
    generator: &Generator,
    count: usize,
    rates: &Rates,
) -> Result<Vec<Campaign>, FileError> {
    let mut text = String::with_capacity(4096);
    (0..count)
        .map(|index| {
            text.clear();
            generator.write_campaign(index, &mut text);
            campaign::file::parse(&text, Path::new(&Generator::file_name(index)), rates)
        })
        .collect()
}

/// The generator's tree as campaign files check tags against it (what the sample
/// `campaigns/taxonomy.toml` holds).
pub fn taxonomy() -> Taxonomy {
    Taxonomy::from_tags(
        precis_generate::tree()
            .nodes()
            .iter()
            .map(|n| n.path.as_str()),
    )
}

/// Writes the generator's tree into `dir` as the taxonomy its campaign files' tags come from
/// (`taxonomy.toml`, beside what [`precis_generate::write_dir`] writes), so that the directory
/// checks as it is served.
pub fn write_taxonomy(dir: &Path) -> Result<(), WriteError> {
    let path = dir.join(taxonomy::FILE);
    std::fs::write(&path, taxonomy().to_toml()).map_err(|source| WriteError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::pricing::{Currency, Model};
    use crate::forms::{tag_form, within};
    use crate::request::facts::Facts;
    use crate::request::geo::{Country, Point, Region};
    use chrono::{Offset, TimeZone};
    use precis_generate::{AdSlot, Crowd, MARKETS, Market, ZERO_IFA};

    #[test]
    fn every_place_is_one_precis_reads() {
        let noons = [1, 7].map(|month| {
            chrono::NaiveDate::from_ymd_opt(2026, month, 1)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .unwrap()
        });
        for market in MARKETS {
            let country = Country::parse(market.country).expect(market.country);
            assert_eq!(country.as_str(), market.country);
            for city in market.cities {
                let region = Region::parse(city.region).expect(city.region);
                assert_eq!(region.country, Some(country), "{}", city.region);
                let bare = Region::parse(Market::request_region(city)).unwrap();
                assert!(region.contains(&bare, Some(country)));
                assert!(Point::new(city.lat, city.lon).is_some(), "{}", city.name);
                let zone: chrono_tz::Tz = city.timezone.parse().expect(city.timezone);
                // `device.geo.utcoffset` is the zone's offset in standard (winter) time: the
                // lower of January's and July's, whichever the hemisphere.
                let standard = noons
                    .iter()
                    .map(|noon| zone.offset_from_utc_datetime(noon).fix().local_minus_utc() / 60)
                    .min();
                assert_eq!(city.utc_offset(), standard, "{}", city.timezone);
            }
        }
    }

    #[test]
    fn every_tag_of_the_tree_is_in_the_form_precis_compares_and_within_its_parent() {
        let nodes = precis_generate::tree().nodes();
        for node in nodes {
            assert_eq!(
                tag_form(&node.path).as_deref(),
                Some(node.path.as_str()),
                "already in the compared form"
            );
            if let Some(parent) = node.parent {
                assert!(within(&node.path, &nodes[parent].path, '/'));
            }
        }
    }

    #[test]
    fn the_sample_taxonomy_file_is_the_generated_tree() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/taxonomy.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped = Taxonomy::parse(&text, &path).unwrap();
        assert_eq!(shipped, taxonomy());
        assert_eq!(
            text,
            taxonomy().to_toml(),
            "written as gen-campaigns writes it"
        );
    }

    #[test]
    fn every_generated_file_compiles() {
        for (seed, currencies) in [(1, &[][..]), (2, &["EUR", "GBP", "JPY"][..])] {
            let generator = Generator::new(seed).with_currencies(currencies);
            let rates = Rates::new(
                currencies
                    .iter()
                    .map(|c| (Currency::parse(c).unwrap(), 1.0)),
            );
            if let Err(e) = compile(&generator, 1000, &rates) {
                panic!("seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn the_mix_is_realistic() {
        let campaigns = compile(&Generator::new(3), 2000, &Rates::default()).unwrap();
        let share = |f: &dyn Fn(&Campaign) -> bool| {
            campaigns.iter().filter(|c| f(c)).count() as f64 / campaigns.len() as f64
        };
        let cpm = share(&|c| matches!(c.pricing.model, Model::Cpm { .. }));
        let cps = share(&|c| matches!(c.pricing.model, Model::Cps { .. }));
        assert!((0.55..0.75).contains(&cpm), "cpm {cpm}");
        assert!((0.07..0.2).contains(&cps), "cps {cps}");
        let paused = share(&|c| !c.active);
        assert!((0.02..0.1).contains(&paused), "paused {paused}");
        assert!(share(&|c| c.budget.is_some()) > 0.2);
        assert!(share(&|c| c.frequency.is_some()) > 0.1);
        let video = share(&|c| {
            c.creatives
                .iter()
                .any(|cr| matches!(cr.format, campaign::CreativeFormat::Video(_)))
        });
        let native = share(&|c| {
            c.creatives
                .iter()
                .any(|cr| cr.format == campaign::CreativeFormat::Native)
        });
        assert!(
            video > 0.1 && native > 0.05,
            "video {video} native {native}"
        );
        let untargeted = share(&|c| c.targeting.include.is_empty());
        assert!(untargeted < 0.01, "untargeted {untargeted}");
        assert!(
            campaigns
                .iter()
                .all(|c| c.pricing.currency == Currency::USD)
        );
    }

    #[test]
    fn every_visitor_stranger_or_returning_is_a_request_precis_reads_as_drawn() {
        let generator = Generator::new(7);
        let now = "2026-03-04T14:30:00Z".parse().unwrap();
        for crowd in [Crowd::Strangers, Crowd::Returning { users: 1000 }] {
            for i in 0..2000 {
                let visitor = generator.visitor_in(crowd, i);
                let person = &visitor.person;
                let body = visitor.bid_request(&format!("r{i}"));
                let request = crate::request::openrtb::decode(body.as_bytes())
                    .unwrap_or_else(|e| panic!("{crowd:?} visitor {i}: {e}: {body}"));
                assert_eq!(request.id.as_deref(), Some(format!("r{i}").as_str()));
                let detail = visitor.detail.as_ref();
                let first = (
                    &visitor.slot,
                    visitor.bidfloor,
                    detail.map(|d| &d.format[..]),
                );
                let second = detail
                    .and_then(|d| d.second.as_ref())
                    .map(|p| (&p.slot, p.bidfloor, Some(&p.format[..])));
                let slots: Vec<_> = std::iter::once(first).chain(second).collect();
                assert_eq!(request.imp.len(), slots.len(), "{body}");
                for (imp, (slot, bidfloor, format)) in request.imp.iter().zip(slots) {
                    assert_eq!(imp.bidfloor, bidfloor, "{body}");
                    if let AdSlot::Banner { w, h } = *slot {
                        let banner = imp.banner.as_ref().expect("a banner");
                        assert_eq!((banner.w, banner.h), (Some(w), Some(h)));
                        let sizes: Vec<_> = banner.format.iter().map(|f| (f.w, f.h)).collect();
                        let drawn = format.unwrap_or_default().iter();
                        let drawn: Vec<_> = drawn.map(|&(w, h)| (Some(w), Some(h))).collect();
                        assert_eq!(sizes, drawn, "{body}");
                    }
                }
                assert_eq!(request.tmax, Some(detail.map_or(150, |d| d.tmax)));
                let device = request.device.as_ref();
                assert_eq!(device.and_then(|d| d.devicetype), Some(person.device_type));
                assert_eq!(device.and_then(|d| d.ifa.as_deref()), person.ifa.as_deref());
                // Who precis takes the user to be: their id, else their device's advertising id
                // unless it is the all-zero one of a user limiting ad tracking; no one, and no
                // tags, when the request's privacy signals allow no personal data (decided in
                // `request::privacy`, tested there).
                let facts = Facts::from_request(&request, now);
                let limited = facts.withheld.is_some();
                assert!(!limited || facts.tags.is_empty() && facts.user.is_none());
                let ifa = person.ifa.as_deref().filter(|&ifa| ifa != ZERO_IFA);
                let user = person.user.as_deref().or(ifa);
                assert_eq!(facts.user.as_deref(), user.filter(|_| !limited), "{body}");
                // The same tags, as segments or as keywords.
                let mut tags = person.tags.clone();
                tags.sort_unstable();
                if limited {
                    tags.clear();
                }
                assert_eq!(facts.tags, tags, "{body}");
            }
        }
    }

    #[test]
    fn a_plausible_request_matches_a_few_dozen_of_ten_thousand_campaigns() {
        let generator = Generator::new(11);
        let campaigns = compile(&generator, 10_000, &Rates::default()).unwrap();
        let now = "2026-03-04T14:30:00Z".parse().unwrap();
        let mut counts: Vec<usize> = (0..500)
            .map(|i| {
                let body = generator.visitor(i).bid_request(&format!("r{i}"));
                let request = crate::request::openrtb::decode(body.as_bytes()).unwrap();
                let facts = Facts::from_request(&request, now);
                campaigns
                    .iter()
                    .filter(|c| c.in_flight(now) && c.targeting.matches(&facts))
                    .count()
            })
            .collect();
        counts.sort_unstable();
        let median = counts[counts.len() / 2];
        let none = counts.iter().filter(|&&n| n == 0).count();
        assert!((8..=80).contains(&median), "median {median}: {counts:?}");
        assert!(none > 0, "some requests match nothing: {counts:?}");
        assert!(counts[counts.len() - 1] < 500, "{counts:?}");
    }
}
