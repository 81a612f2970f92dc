//! Real places for generated campaigns and requests: markets (ISO-3166 countries) weighted the way
//! programmatic spend is, roughly, and their big cities with ISO-3166-2 region codes, coordinates
//! and time zones.
//!
//! Region codes are the current ISO-3166-2 ones in the form campaign files use (`US-CA`, `GB-ENG`,
//! `DE-BY`, `CN-SH`, `JP-13`); requests carry them without the country prefix (`CA`), as exchanges do.
//! A table and the draws from it, nothing else: whether precis reads these places the same way is
//! checked on the bidder's side.

use super::rng::Rng;

/// A country and its share of the traffic and the demand.
#[derive(Debug)]
pub struct Market {
    /// ISO-3166 alpha-3.
    pub country: &'static str,
    /// Relative share of traffic and campaigns (the US is 300).
    pub weight: u32,
    /// ISO-4217: what local advertisers pay in, when precis knows a rate for it.
    pub currency: &'static str,
    /// The privacy law requests from here are flagged with.
    pub law: Law,
    /// The biggest cities first.
    pub cities: &'static [City],
}

/// Which privacy signal exchanges send for a user in a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// The EEA's GDPR, or the UK's or Switzerland's law that exchanges flag the same way:
    /// `regs.gdpr = 1`, with a TCF consent string.
    Gdpr,
    /// The US states' privacy laws: `regs.us_privacy`.
    UsPrivacy,
    /// Neither: `regs.gdpr = 0`.
    Other,
}

#[derive(Debug)]
pub struct City {
    /// As exchanges send it (English, ASCII).
    pub name: &'static str,
    /// ISO-3166-2 with the country prefix.
    pub region: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// IANA time zone.
    pub timezone: &'static str,
}

impl Market {
    /// The country's main time zone: that of its biggest city.
    pub fn timezone(&self) -> &'static str {
        self.cities[0].timezone
    }

    /// The market of an ISO-3166 alpha-3 `country`, if it is one.
    pub fn of(country: &str) -> Option<&'static Market> {
        MARKETS.iter().find(|m| m.country == country)
    }

    /// The region code as a request carries it: without the country prefix.
    pub fn request_region(city: &City) -> &'static str {
        city.region
            .split_once('-')
            .map_or(city.region, |(_, code)| code)
    }
}

impl City {
    /// Minutes from UTC of the city's time zone in standard (winter) time, as
    /// `device.geo.utcoffset`: a request carries no date to tell summer time by.
    pub fn utc_offset(&self) -> Option<i32> {
        ZONES
            .iter()
            .find(|(zone, _)| *zone == self.timezone)
            .map(|&(_, minutes)| minutes)
    }
}

/// The standard (winter) offset from UTC, in minutes, of each time zone of the cities below.
const ZONES: &[(&str, i32)] = &[
    (NEW_YORK, -300),
    (CHICAGO, -360),
    (LOS_ANGELES, -480),
    ("America/Denver", -420),
    ("America/Phoenix", -420),
    ("America/Edmonton", -420),
    ("America/Vancouver", -480),
    ("America/Toronto", -300),
    ("America/Mexico_City", -360),
    ("America/Monterrey", -360),
    ("America/Sao_Paulo", -180),
    ("America/Argentina/Buenos_Aires", -180),
    ("America/Argentina/Cordoba", -180),
    ("Europe/London", 0),
    ("Europe/Dublin", 0),
    ("Europe/Paris", 60),
    ("Europe/Berlin", 60),
    ("Europe/Madrid", 60),
    ("Europe/Rome", 60),
    ("Europe/Amsterdam", 60),
    ("Europe/Brussels", 60),
    ("Europe/Zurich", 60),
    ("Europe/Vienna", 60),
    ("Europe/Stockholm", 60),
    ("Europe/Oslo", 60),
    ("Europe/Copenhagen", 60),
    ("Europe/Warsaw", 60),
    ("Europe/Istanbul", 180),
    ("Africa/Johannesburg", 120),
    ("Asia/Riyadh", 180),
    ("Asia/Dubai", 240),
    ("Asia/Kolkata", 330),
    ("Asia/Bangkok", 420),
    ("Asia/Jakarta", 420),
    ("Asia/Ho_Chi_Minh", 420),
    ("Asia/Shanghai", 480),
    ("Asia/Singapore", 480),
    ("Australia/Perth", 480),
    ("Asia/Seoul", 540),
    ("Asia/Tokyo", 540),
    ("Australia/Adelaide", 570),
    ("Australia/Brisbane", 600),
    ("Australia/Melbourne", 600),
    ("Australia/Sydney", 600),
    ("Pacific/Auckland", 720),
];

const fn city(
    name: &'static str,
    region: &'static str,
    lat: f64,
    lon: f64,
    timezone: &'static str,
) -> City {
    City {
        name,
        region,
        lat,
        lon,
        timezone,
    }
}

const NEW_YORK: &str = "America/New_York";
const CHICAGO: &str = "America/Chicago";
const LOS_ANGELES: &str = "America/Los_Angeles";

/// The markets, biggest first.
pub const MARKETS: &[Market] = &[
    Market {
        country: "USA",
        weight: 300,
        currency: "USD",
        law: Law::UsPrivacy,
        cities: &[
            city("New York", "US-NY", 40.7128, -74.0060, NEW_YORK),
            city("Los Angeles", "US-CA", 34.0522, -118.2437, LOS_ANGELES),
            city("Chicago", "US-IL", 41.8781, -87.6298, CHICAGO),
            city("Houston", "US-TX", 29.7604, -95.3698, CHICAGO),
            city("Phoenix", "US-AZ", 33.4484, -112.0740, "America/Phoenix"),
            city("Philadelphia", "US-PA", 39.9526, -75.1652, NEW_YORK),
            city("San Antonio", "US-TX", 29.4241, -98.4936, CHICAGO),
            city("San Diego", "US-CA", 32.7157, -117.1611, LOS_ANGELES),
            city("Dallas", "US-TX", 32.7767, -96.7970, CHICAGO),
            city("San Francisco", "US-CA", 37.7749, -122.4194, LOS_ANGELES),
            city("Seattle", "US-WA", 47.6062, -122.3321, LOS_ANGELES),
            city("Miami", "US-FL", 25.7617, -80.1918, NEW_YORK),
            city("Atlanta", "US-GA", 33.7490, -84.3880, NEW_YORK),
            city("Boston", "US-MA", 42.3601, -71.0589, NEW_YORK),
            city("Denver", "US-CO", 39.7392, -104.9903, "America/Denver"),
            city("Washington", "US-DC", 38.9072, -77.0369, NEW_YORK),
        ],
    },
    Market {
        country: "GBR",
        weight: 70,
        currency: "GBP",
        law: Law::Gdpr,
        cities: &[
            city("London", "GB-ENG", 51.5072, -0.1276, "Europe/London"),
            city("Manchester", "GB-ENG", 53.4808, -2.2426, "Europe/London"),
            city("Birmingham", "GB-ENG", 52.4862, -1.8904, "Europe/London"),
            city("Glasgow", "GB-SCT", 55.8642, -4.2518, "Europe/London"),
            city("Leeds", "GB-ENG", 53.8008, -1.5491, "Europe/London"),
            city("Edinburgh", "GB-SCT", 55.9533, -3.1883, "Europe/London"),
            city("Cardiff", "GB-WLS", 51.4816, -3.1791, "Europe/London"),
            city("Belfast", "GB-NIR", 54.5973, -5.9301, "Europe/London"),
        ],
    },
    Market {
        country: "DEU",
        weight: 60,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Berlin", "DE-BE", 52.5200, 13.4050, "Europe/Berlin"),
            city("Hamburg", "DE-HH", 53.5511, 9.9937, "Europe/Berlin"),
            city("Munich", "DE-BY", 48.1351, 11.5820, "Europe/Berlin"),
            city("Cologne", "DE-NW", 50.9375, 6.9603, "Europe/Berlin"),
            city("Frankfurt", "DE-HE", 50.1109, 8.6821, "Europe/Berlin"),
            city("Stuttgart", "DE-BW", 48.7758, 9.1829, "Europe/Berlin"),
            city("Dusseldorf", "DE-NW", 51.2277, 6.7735, "Europe/Berlin"),
        ],
    },
    Market {
        country: "JPN",
        weight: 60,
        currency: "JPY",
        law: Law::Other,
        cities: &[
            city("Tokyo", "JP-13", 35.6762, 139.6503, "Asia/Tokyo"),
            city("Osaka", "JP-27", 34.6937, 135.5023, "Asia/Tokyo"),
            city("Yokohama", "JP-14", 35.4437, 139.6380, "Asia/Tokyo"),
            city("Nagoya", "JP-23", 35.1815, 136.9066, "Asia/Tokyo"),
            city("Sapporo", "JP-01", 43.0618, 141.3545, "Asia/Tokyo"),
            city("Fukuoka", "JP-40", 33.5904, 130.4017, "Asia/Tokyo"),
            city("Kyoto", "JP-26", 35.0116, 135.7681, "Asia/Tokyo"),
        ],
    },
    Market {
        country: "CHN",
        weight: 50,
        currency: "CNY",
        law: Law::Other,
        cities: &[
            city("Shanghai", "CN-SH", 31.2304, 121.4737, "Asia/Shanghai"),
            city("Beijing", "CN-BJ", 39.9042, 116.4074, "Asia/Shanghai"),
            city("Guangzhou", "CN-GD", 23.1291, 113.2644, "Asia/Shanghai"),
            city("Shenzhen", "CN-GD", 22.5431, 114.0579, "Asia/Shanghai"),
            city("Chengdu", "CN-SC", 30.5728, 104.0668, "Asia/Shanghai"),
            city("Hangzhou", "CN-ZJ", 30.2741, 120.1551, "Asia/Shanghai"),
            city("Wuhan", "CN-HB", 30.5928, 114.3055, "Asia/Shanghai"),
        ],
    },
    Market {
        country: "FRA",
        weight: 40,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Paris", "FR-IDF", 48.8566, 2.3522, "Europe/Paris"),
            city("Marseille", "FR-PAC", 43.2965, 5.3698, "Europe/Paris"),
            city("Lyon", "FR-ARA", 45.7640, 4.8357, "Europe/Paris"),
            city("Toulouse", "FR-OCC", 43.6047, 1.4442, "Europe/Paris"),
            city("Nice", "FR-PAC", 43.7102, 7.2620, "Europe/Paris"),
            city("Bordeaux", "FR-NAQ", 44.8378, -0.5792, "Europe/Paris"),
        ],
    },
    Market {
        country: "CAN",
        weight: 40,
        currency: "CAD",
        law: Law::Other,
        cities: &[
            city("Toronto", "CA-ON", 43.6532, -79.3832, "America/Toronto"),
            city("Montreal", "CA-QC", 45.5017, -73.5673, "America/Toronto"),
            city(
                "Vancouver",
                "CA-BC",
                49.2827,
                -123.1207,
                "America/Vancouver",
            ),
            city("Calgary", "CA-AB", 51.0447, -114.0719, "America/Edmonton"),
            city("Ottawa", "CA-ON", 45.4215, -75.6972, "America/Toronto"),
        ],
    },
    Market {
        country: "IND",
        weight: 40,
        currency: "INR",
        law: Law::Other,
        cities: &[
            city("Mumbai", "IN-MH", 19.0760, 72.8777, "Asia/Kolkata"),
            city("Delhi", "IN-DL", 28.7041, 77.1025, "Asia/Kolkata"),
            city("Bengaluru", "IN-KA", 12.9716, 77.5946, "Asia/Kolkata"),
            city("Chennai", "IN-TN", 13.0827, 80.2707, "Asia/Kolkata"),
            city("Kolkata", "IN-WB", 22.5726, 88.3639, "Asia/Kolkata"),
            city("Pune", "IN-MH", 18.5204, 73.8567, "Asia/Kolkata"),
        ],
    },
    Market {
        country: "BRA",
        weight: 30,
        currency: "BRL",
        law: Law::Other,
        cities: &[
            city(
                "Sao Paulo",
                "BR-SP",
                -23.5505,
                -46.6333,
                "America/Sao_Paulo",
            ),
            city(
                "Rio de Janeiro",
                "BR-RJ",
                -22.9068,
                -43.1729,
                "America/Sao_Paulo",
            ),
            city("Brasilia", "BR-DF", -15.7939, -47.8828, "America/Sao_Paulo"),
            city(
                "Belo Horizonte",
                "BR-MG",
                -19.9167,
                -43.9345,
                "America/Sao_Paulo",
            ),
            city(
                "Porto Alegre",
                "BR-RS",
                -30.0346,
                -51.2177,
                "America/Sao_Paulo",
            ),
        ],
    },
    Market {
        country: "AUS",
        weight: 30,
        currency: "AUD",
        law: Law::Other,
        cities: &[
            city("Sydney", "AU-NSW", -33.8688, 151.2093, "Australia/Sydney"),
            city(
                "Melbourne",
                "AU-VIC",
                -37.8136,
                144.9631,
                "Australia/Melbourne",
            ),
            city(
                "Brisbane",
                "AU-QLD",
                -27.4698,
                153.0251,
                "Australia/Brisbane",
            ),
            city("Perth", "AU-WA", -31.9505, 115.8605, "Australia/Perth"),
            city(
                "Adelaide",
                "AU-SA",
                -34.9285,
                138.6007,
                "Australia/Adelaide",
            ),
        ],
    },
    Market {
        country: "KOR",
        weight: 20,
        currency: "KRW",
        law: Law::Other,
        cities: &[
            city("Seoul", "KR-11", 37.5665, 126.9780, "Asia/Seoul"),
            city("Busan", "KR-26", 35.1796, 129.0756, "Asia/Seoul"),
            city("Incheon", "KR-28", 37.4563, 126.7052, "Asia/Seoul"),
        ],
    },
    Market {
        country: "ESP",
        weight: 20,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Madrid", "ES-MD", 40.4168, -3.7038, "Europe/Madrid"),
            city("Barcelona", "ES-CT", 41.3874, 2.1686, "Europe/Madrid"),
            city("Valencia", "ES-VC", 39.4699, -0.3763, "Europe/Madrid"),
            city("Seville", "ES-AN", 37.3891, -5.9845, "Europe/Madrid"),
        ],
    },
    Market {
        country: "ITA",
        weight: 20,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Rome", "IT-62", 41.9028, 12.4964, "Europe/Rome"),
            city("Milan", "IT-25", 45.4642, 9.1900, "Europe/Rome"),
            city("Naples", "IT-72", 40.8518, 14.2681, "Europe/Rome"),
            city("Turin", "IT-21", 45.0703, 7.6869, "Europe/Rome"),
        ],
    },
    Market {
        country: "MEX",
        weight: 20,
        currency: "MXN",
        law: Law::Other,
        cities: &[
            city(
                "Mexico City",
                "MX-CMX",
                19.4326,
                -99.1332,
                "America/Mexico_City",
            ),
            city(
                "Guadalajara",
                "MX-JAL",
                20.6597,
                -103.3496,
                "America/Mexico_City",
            ),
            city(
                "Monterrey",
                "MX-NLE",
                25.6866,
                -100.3161,
                "America/Monterrey",
            ),
        ],
    },
    Market {
        country: "NLD",
        weight: 15,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Amsterdam", "NL-NH", 52.3676, 4.9041, "Europe/Amsterdam"),
            city("Rotterdam", "NL-ZH", 51.9244, 4.4777, "Europe/Amsterdam"),
            city("Utrecht", "NL-UT", 52.0907, 5.1214, "Europe/Amsterdam"),
        ],
    },
    Market {
        country: "IDN",
        weight: 15,
        currency: "IDR",
        law: Law::Other,
        cities: &[
            city("Jakarta", "ID-JK", -6.2088, 106.8456, "Asia/Jakarta"),
            city("Surabaya", "ID-JI", -7.2575, 112.7521, "Asia/Jakarta"),
            city("Bandung", "ID-JB", -6.9175, 107.6191, "Asia/Jakarta"),
        ],
    },
    Market {
        country: "SWE",
        weight: 10,
        currency: "SEK",
        law: Law::Gdpr,
        cities: &[
            city("Stockholm", "SE-AB", 59.3293, 18.0686, "Europe/Stockholm"),
            city("Gothenburg", "SE-O", 57.7089, 11.9746, "Europe/Stockholm"),
            city("Malmo", "SE-M", 55.6050, 13.0038, "Europe/Stockholm"),
        ],
    },
    Market {
        country: "POL",
        weight: 10,
        currency: "PLN",
        law: Law::Gdpr,
        cities: &[
            city("Warsaw", "PL-14", 52.2297, 21.0122, "Europe/Warsaw"),
            city("Krakow", "PL-12", 50.0647, 19.9450, "Europe/Warsaw"),
            city("Wroclaw", "PL-02", 51.1079, 17.0385, "Europe/Warsaw"),
        ],
    },
    Market {
        country: "TUR",
        weight: 10,
        currency: "TRY",
        law: Law::Other,
        cities: &[
            city("Istanbul", "TR-34", 41.0082, 28.9784, "Europe/Istanbul"),
            city("Ankara", "TR-06", 39.9334, 32.8597, "Europe/Istanbul"),
            city("Izmir", "TR-35", 38.4237, 27.1428, "Europe/Istanbul"),
        ],
    },
    Market {
        country: "SGP",
        weight: 10,
        currency: "SGD",
        law: Law::Other,
        cities: &[city(
            "Singapore",
            "SG-01",
            1.3521,
            103.8198,
            "Asia/Singapore",
        )],
    },
    Market {
        country: "ARE",
        weight: 10,
        currency: "AED",
        law: Law::Other,
        cities: &[
            city("Dubai", "AE-DU", 25.2048, 55.2708, "Asia/Dubai"),
            city("Abu Dhabi", "AE-AZ", 24.4539, 54.3773, "Asia/Dubai"),
        ],
    },
    Market {
        country: "SAU",
        weight: 8,
        currency: "SAR",
        law: Law::Other,
        cities: &[
            city("Riyadh", "SA-01", 24.7136, 46.6753, "Asia/Riyadh"),
            city("Jeddah", "SA-02", 21.4858, 39.1925, "Asia/Riyadh"),
        ],
    },
    Market {
        country: "ZAF",
        weight: 8,
        currency: "ZAR",
        law: Law::Other,
        cities: &[
            city(
                "Johannesburg",
                "ZA-GP",
                -26.2041,
                28.0473,
                "Africa/Johannesburg",
            ),
            city(
                "Cape Town",
                "ZA-WC",
                -33.9249,
                18.4241,
                "Africa/Johannesburg",
            ),
            city(
                "Pretoria",
                "ZA-GP",
                -25.7479,
                28.2293,
                "Africa/Johannesburg",
            ),
        ],
    },
    Market {
        country: "THA",
        weight: 8,
        currency: "THB",
        law: Law::Other,
        cities: &[city("Bangkok", "TH-10", 13.7563, 100.5018, "Asia/Bangkok")],
    },
    Market {
        country: "CHE",
        weight: 8,
        currency: "CHF",
        law: Law::Gdpr,
        cities: &[
            city("Zurich", "CH-ZH", 47.3769, 8.5417, "Europe/Zurich"),
            city("Geneva", "CH-GE", 46.2044, 6.1432, "Europe/Zurich"),
        ],
    },
    Market {
        country: "ARG",
        weight: 8,
        currency: "ARS",
        law: Law::Other,
        cities: &[
            city(
                "Buenos Aires",
                "AR-C",
                -34.6037,
                -58.3816,
                "America/Argentina/Buenos_Aires",
            ),
            city(
                "Cordoba",
                "AR-X",
                -31.4201,
                -64.1888,
                "America/Argentina/Cordoba",
            ),
        ],
    },
    Market {
        country: "BEL",
        weight: 7,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Brussels", "BE-BRU", 50.8503, 4.3517, "Europe/Brussels"),
            city("Antwerp", "BE-VAN", 51.2194, 4.4025, "Europe/Brussels"),
        ],
    },
    Market {
        country: "AUT",
        weight: 6,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[city("Vienna", "AT-9", 48.2082, 16.3738, "Europe/Vienna")],
    },
    Market {
        country: "IRL",
        weight: 6,
        currency: "EUR",
        law: Law::Gdpr,
        cities: &[
            city("Dublin", "IE-D", 53.3498, -6.2603, "Europe/Dublin"),
            city("Cork", "IE-CO", 51.8985, -8.4756, "Europe/Dublin"),
        ],
    },
    Market {
        country: "VNM",
        weight: 6,
        currency: "VND",
        law: Law::Other,
        cities: &[
            city(
                "Ho Chi Minh City",
                "VN-SG",
                10.8231,
                106.6297,
                "Asia/Ho_Chi_Minh",
            ),
            city("Hanoi", "VN-HN", 21.0278, 105.8342, "Asia/Bangkok"),
        ],
    },
    Market {
        country: "NOR",
        weight: 5,
        currency: "NOK",
        law: Law::Gdpr,
        cities: &[city("Oslo", "NO-03", 59.9139, 10.7522, "Europe/Oslo")],
    },
    Market {
        country: "DNK",
        weight: 5,
        currency: "DKK",
        law: Law::Gdpr,
        cities: &[city(
            "Copenhagen",
            "DK-84",
            55.6761,
            12.5683,
            "Europe/Copenhagen",
        )],
    },
    Market {
        country: "NZL",
        weight: 5,
        currency: "NZD",
        law: Law::Other,
        cities: &[
            city("Auckland", "NZ-AUK", -36.8485, 174.7633, "Pacific/Auckland"),
            city(
                "Wellington",
                "NZ-WGN",
                -41.2866,
                174.7756,
                "Pacific/Auckland",
            ),
        ],
    },
];

/// A market, by its weight.
pub fn draw_market(rng: &mut Rng) -> &'static Market {
    rng.weighted_by(MARKETS, |m| m.weight)
        .unwrap_or(&MARKETS[0])
}

/// A city of `market`, by rank: the biggest drawn most (weights n, n-1, …, 1).
pub fn draw_city(rng: &mut Rng, market: &'static Market) -> &'static City {
    let n = market.cities.len();
    let indexes: Vec<usize> = (0..n).collect();
    let i = rng
        .weighted_by(&indexes, |&i| (n - i) as u32)
        .copied()
        .unwrap_or(0);
    &market.cities[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_city_knows_its_offset_from_utc_and_every_country_its_market() {
        for market in MARKETS {
            assert_eq!(
                Market::of(market.country).map(|m| m.country),
                Some(market.country)
            );
            for city in market.cities {
                assert!(city.utc_offset().is_some(), "{}", city.timezone);
            }
        }
        assert!(Market::of("ATA").is_none());
        let new_york = &MARKETS[0].cities[0];
        assert_eq!(new_york.utc_offset(), Some(-300));
    }
}
