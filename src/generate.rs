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
    use precis_generate::{Crowd, MARKETS, Market};

    #[test]
    fn every_place_is_one_precis_reads() {
        for market in MARKETS {
            let country = Country::parse(market.country).expect(market.country);
            assert_eq!(country.as_str(), market.country);
            for city in market.cities {
                let region = Region::parse(city.region).expect(city.region);
                assert_eq!(region.country, Some(country), "{}", city.region);
                let bare = Region::parse(Market::request_region(city)).unwrap();
                assert!(region.contains(&bare, Some(country)));
                assert!(Point::new(city.lat, city.lon).is_some(), "{}", city.name);
                assert!(
                    city.timezone.parse::<chrono_tz::Tz>().is_ok(),
                    "{}",
                    city.timezone
                );
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
        for crowd in [Crowd::Strangers, Crowd::Returning { users: 1000 }] {
            for i in 0..500 {
                let visitor = generator.visitor_in(crowd, i);
                let body = visitor.bid_request(&format!("r{i}"));
                let request = crate::request::openrtb::decode(body.as_bytes())
                    .unwrap_or_else(|e| panic!("{crowd:?} visitor {i}: {e}: {body}"));
                assert_eq!(request.id.as_deref(), Some(format!("r{i}").as_str()));
                assert_eq!(request.imp.len(), 1, "{body}");
                assert_eq!(request.imp[0].bidfloor, visitor.bidfloor, "{body}");
                let user = request.user.as_ref().and_then(|u| u.id.as_deref());
                assert_eq!(user, visitor.person.user.as_deref(), "{body}");
                let device = request.device.as_ref().and_then(|d| d.devicetype);
                assert_eq!(device, Some(visitor.person.device_type), "{body}");
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
