//! Geography: one canonical form for countries and regions, and distances on the globe.
//!
//! Exchanges write countries as ISO alpha-3 (`USA`), alpha-2 (`US`), names (`Russia`) or empty strings,
//! and regions with or without a country prefix (`US-MA`, `MA`, `ca`). Campaign files may use any of the
//! same forms. Everything is normalised here, once, so the rest of the bidder compares plain values.
//! Pure functions only: no allocation-heavy work and nothing that can fail loudly on request data.

use std::fmt;

/// An ISO-3166 country as its alpha-3 code (`USA`, `CHN`): `Copy`, three bytes, cheap to compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 3]);

impl Country {
    /// Reads any form exchanges and people write: alpha-3, alpha-2, numeric, English name or alias
    /// (`Russia`, `United Kingdom`, `UK`), in any case. `None` for anything else, including "".
    pub fn parse(text: &str) -> Option<Country> {
        let text = text.trim();
        if text.is_empty() || text.len() > 64 {
            return None;
        }
        // Fast path for the forms exchanges send nearly always.
        let found = match text.len() {
            2 if text.eq_ignore_ascii_case("uk") => celes::Country::from_alpha2("GB").ok(),
            2 => celes::Country::from_alpha2(text).ok(),
            3 => celes::Country::from_alpha3(text).ok(),
            _ => None,
        };
        let found = found.or_else(|| {
            let squashed: String = text
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            squashed.parse::<celes::Country>().ok()
        })?;
        let code = found.alpha3.as_bytes();
        Some(Country([code[0], code[1], code[2]]))
    }

    pub fn as_str(&self) -> &str {
        // Built only from celes' ASCII alpha-3 codes.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A first-level subdivision: `CN-SH`, or `CA` when written without its country.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The country named by an ISO-3166-2 prefix, if the text had one.
    pub country: Option<Country>,
    /// The subdivision code, upper case, without the prefix.
    pub code: String,
}

impl Region {
    /// Splits `CN-SH` into (China, `SH`); `ca` becomes (none, `CA`). `None` for empty text.
    pub fn parse(text: &str) -> Option<Region> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (country, code) = match text.split_once('-') {
            Some((prefix, code)) if prefix.len() == 2 && !code.is_empty() => {
                (Country::parse(prefix), code)
            }
            _ => (None, text),
        };
        Some(Region {
            country,
            code: code.to_ascii_uppercase(),
        })
    }

    /// Does a request in `request_country` with region `request` lie in this (campaign) region?
    /// The codes must be equal, and where both sides know the country, it must be the same.
    pub fn contains(&self, request: &Region, request_country: Option<Country>) -> bool {
        if self.code != request.code {
            return false;
        }
        match (self.country, request.country.or(request_country)) {
            (Some(want), Some(have)) => want == have,
            // A campaign region with a country prefix needs the request to say it is in that country.
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// A point on the globe in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

impl Point {
    /// A point only if both coordinates are finite and within range (exchanges send 0/0 and junk).
    pub fn new(lat: f64, lon: f64) -> Option<Point> {
        let valid = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon);
        valid.then_some(Point { lat, lon })
    }

    /// Great-circle distance in kilometres (haversine; error well under 0.5% for ad targeting radii).
    pub fn km_to(&self, other: &Point) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0088;
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_in_every_form_exchanges_send_normalise_to_alpha3() {
        let usa = Country::parse("USA").unwrap();
        assert_eq!(usa.as_str(), "USA");
        for form in [
            "US",
            "us",
            "usa",
            " USA ",
            "840",
            "United States of America",
        ] {
            assert_eq!(Country::parse(form), Some(usa), "{form}");
        }
        assert_eq!(Country::parse("Russia").unwrap().as_str(), "RUS");
        assert_eq!(Country::parse("UK").unwrap().as_str(), "GBR");
        assert_eq!(Country::parse("CN").unwrap().as_str(), "CHN");
        assert_eq!(Country::parse(""), None);
        assert_eq!(Country::parse("Atlantis"), None);
        assert_eq!(Country::parse("XX"), None);
    }

    #[test]
    fn region_prefix_is_optional_but_must_agree_when_present() {
        let shanghai = Region::parse("CN-SH").unwrap();
        let chn = Country::parse("CHN");
        assert!(shanghai.contains(&Region::parse("SH").unwrap(), chn));
        assert!(shanghai.contains(&Region::parse("cn-sh").unwrap(), None));
        assert!(!shanghai.contains(&Region::parse("SH").unwrap(), Country::parse("DEU")));
        assert!(!shanghai.contains(&Region::parse("SH").unwrap(), None));

        let california = Region::parse("CA").unwrap();
        assert!(california.contains(&Region::parse("ca").unwrap(), Country::parse("USA")));
        assert!(california.contains(&Region::parse("US-CA").unwrap(), None));
        assert!(!california.contains(&Region::parse("TX").unwrap(), None));
    }

    #[test]
    fn distance_matches_known_city_pairs() {
        let shanghai = Point::new(31.2304, 121.4737).unwrap();
        let beijing = Point::new(39.9042, 116.4074).unwrap();
        let km = shanghai.km_to(&beijing);
        assert!((km - 1067.0).abs() < 10.0, "{km}");
        assert_eq!(shanghai.km_to(&shanghai), 0.0);
        assert_eq!(Point::new(91.0, 0.0), None);
        assert_eq!(Point::new(f64::NAN, 0.0), None);
    }
}
