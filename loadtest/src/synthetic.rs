//! Seeded synthetic OpenRTB 2.6 bid requests: a population of users with stable profiles (home
//! city, device, age, gender, interest tags) who come back at a realistic rate, seen on sites and
//! apps, asking for common IAB banner sizes and some video, with floors.
//!
//! Request `n` of seed `s` is always the same body, so runs are reproducible. Bodies are written
//! straight as JSON text (a few microseconds each) from tables whose strings need no escaping.

use std::fmt::Write;

use fastrand::Rng;

/// Users that come back: a request from one of them picks it with a skew (the cube of a uniform
/// draw), so a few users are seen very often, as on real exchanges.
const RETURNING_USERS: u64 = 100_000;

/// Share of requests from a returning user, from a user seen once, and (the rest) without a user.
const RETURNING_SHARE: f64 = 0.6;
const ONE_OFF_SHARE: f64 = 0.3;

/// A home city: ISO-3166 alpha-3 country, ISO-3166-2 region (US states without the prefix, as
/// OpenRTB says), city, position, UTC offset in minutes, and how many users live there.
struct City(&'static str, &'static str, &'static str, f64, f64, i32, u32);

const CITIES: &[City] = &[
    City("USA", "NY", "New York", 40.7128, -74.0060, -300, 10),
    City("USA", "CA", "Los Angeles", 34.0522, -118.2437, -480, 7),
    City("USA", "CA", "San Francisco", 37.7749, -122.4194, -480, 4),
    City("USA", "IL", "Chicago", 41.8781, -87.6298, -360, 5),
    City("USA", "TX", "Houston", 29.7604, -95.3698, -360, 4),
    City("USA", "WA", "Seattle", 47.6062, -122.3321, -480, 3),
    City("USA", "FL", "Miami", 25.7617, -80.1918, -300, 3),
    City("CAN", "CA-ON", "Toronto", 43.6532, -79.3832, -300, 4),
    City("CHN", "CN-SH", "Shanghai", 31.2304, 121.4737, 480, 10),
    City("CHN", "CN-BJ", "Beijing", 39.9042, 116.4074, 480, 7),
    City("CHN", "CN-GD", "Guangzhou", 23.1291, 113.2644, 480, 5),
    City("GBR", "GB-ENG", "London", 51.5072, -0.1276, 0, 8),
    City("FRA", "FR-IDF", "Paris", 48.8566, 2.3522, 60, 6),
    City("DEU", "DE-BE", "Berlin", 52.5200, 13.4050, 60, 4),
    City("DEU", "DE-BY", "Munich", 48.1351, 11.5820, 60, 2),
    City("JPN", "JP-13", "Tokyo", 35.6762, 139.6503, 540, 6),
    City("IND", "IN-MH", "Mumbai", 19.0760, 72.8777, 330, 6),
    City("BRA", "BR-SP", "Sao Paulo", -23.5505, -46.6333, -180, 6),
];

/// A device: OpenRTB `devicetype`, make, model, os, os version, user agent, and its weight.
struct Device(
    u8,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
);

const PHONE: u8 = 4;
const TABLET: u8 = 5;
const DESKTOP: u8 = 2;
const CTV: u8 = 3;

const DEVICES: &[Device] = &[
    Device(
        PHONE,
        "Apple",
        "iPhone",
        "iOS",
        "17.5",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        25,
    ),
    Device(
        PHONE,
        "Samsung",
        "SM-S918B",
        "Android",
        "14",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
        18,
    ),
    Device(
        PHONE,
        "Xiaomi",
        "2311DRK48C",
        "Android",
        "14",
        "Mozilla/5.0 (Linux; Android 14; 2311DRK48C) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        12,
    ),
    Device(
        TABLET,
        "Apple",
        "iPad",
        "iOS",
        "17.4",
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        6,
    ),
    Device(
        TABLET,
        "Samsung",
        "SM-X710",
        "Android",
        "13",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
        4,
    ),
    Device(
        DESKTOP,
        "",
        "",
        "Windows",
        "10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        18,
    ),
    Device(
        DESKTOP,
        "Apple",
        "Macintosh",
        "macOS",
        "14.4",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        8,
    ),
    Device(
        CTV,
        "Roku",
        "Roku Ultra",
        "Roku",
        "12.5",
        "Roku/DVP-12.5 (12.5.0.4178)",
        5,
    ),
    Device(
        CTV,
        "Apple",
        "Apple TV",
        "tvOS",
        "17.4",
        "AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X)",
        4,
    ),
];

/// Interest tags, `/` between levels, with how many users carry each.
const TAGS: &[(&str, u32)] = &[
    ("sports/outdoor/running", 6),
    ("sports/outdoor/running/trail", 2),
    ("sports/fitness", 6),
    ("sports/fitness/yoga", 3),
    ("sports/team/football", 4),
    ("home/kitchen", 5),
    ("home/garden", 3),
    ("home/furniture", 3),
    ("travel/flights/domestic", 4),
    ("travel/flights/international", 3),
    ("travel/hotels", 4),
    ("electronics/phones", 6),
    ("electronics/computers/laptops", 4),
    ("electronics/audio", 3),
    ("apparel/women", 5),
    ("apparel/men", 4),
    ("apparel/bags", 3),
    ("beauty/skincare", 4),
    ("beauty/makeup", 3),
    ("food/recipes", 5),
    ("food/delivery", 5),
    ("finance/credit-cards", 3),
    ("finance/investing", 3),
    ("games/mobile", 5),
    ("games/console", 3),
    ("education/languages", 2),
    ("maternity/baby", 2),
    ("transport/auto/suv", 2),
    ("news/business", 4),
    ("entertainment/movies", 5),
    ("local-services/restaurants", 4),
    ("real-estate/rent", 2),
    ("shopnest/cart-abandoned", 2),
    ("shopnest/purchased", 1),
    ("stride/purchased/cloudline", 1),
    ("maisonlune/customers/30d", 1),
];

/// Sites: domain and IAB content category.
const SITES: &[(&str, &str)] = &[
    ("news.example.com", "IAB12"),
    ("vogue.fr", "IAB18"),
    ("elle.de", "IAB18"),
    ("marieclaire.fr", "IAB18"),
    ("travelnotes.example", "IAB20"),
    ("wanderlust.example", "IAB20-18"),
    ("recipes.example", "IAB8"),
    ("techdaily.example", "IAB19"),
    ("sportsline.example", "IAB17"),
    ("runners.example", "IAB17-33"),
    ("financewire.example", "IAB13"),
    ("gamezone.example", "IAB9-30"),
    ("homeideas.example", "IAB10"),
    ("parenting.example", "IAB6"),
    ("autoreview.example", "IAB2"),
];

/// Phone and tablet apps: bundle and category.
const APPS: &[(&str, &str)] = &[
    ("com.slickdeals.android", "IAB22"),
    ("com.rakuten.android", "IAB22"),
    ("com.example.weather", "IAB15-10"),
    ("com.example.puzzle", "IAB9-30"),
    ("com.example.newsreader", "IAB12"),
    ("com.example.fitness", "IAB17"),
    ("com.example.recipes", "IAB8"),
    ("com.pocketchef.app", "IAB8"),
];

/// Connected-TV apps: bundle and category.
const TV_APPS: &[(&str, &str)] = &[
    ("com.example.tv.movies", "IAB1-5"),
    ("com.example.tv.sports", "IAB17"),
    ("tv.pbskids.video", "IAB1"),
];

/// Common IAB banner sizes per device type, with weights.
const PHONE_SIZES: &[(u32, u32, u32)] =
    &[(320, 50, 35), (300, 250, 35), (320, 480, 15), (300, 50, 15)];
const TABLET_SIZES: &[(u32, u32, u32)] = &[(300, 250, 40), (728, 90, 30), (320, 480, 30)];
const DESKTOP_SIZES: &[(u32, u32, u32)] = &[
    (300, 250, 35),
    (728, 90, 25),
    (300, 600, 15),
    (160, 600, 10),
    (970, 250, 10),
    (468, 60, 5),
];

/// Share of non-TV impressions that ask for video (TV impressions always do).
const VIDEO_SHARE: f64 = 0.12;
/// Share of impressions with a floor.
const FLOOR_SHARE: f64 = 0.7;

/// The generator: its seed decides every request.
#[derive(Clone, Copy, Debug)]
pub struct Synthetic {
    pub seed: u64,
}

/// Who a request is from.
#[derive(Debug, PartialEq, Eq, Hash)]
enum User {
    Returning(u64),
    OneOff(u64),
    Anonymous,
}

/// A user's stable traits, drawn from their own seed.
struct Profile {
    city: &'static City,
    device: &'static Device,
    yob: u32,
    gender: &'static str,
    tags: Vec<&'static str>,
    /// Tags sent as `user.keywords` (else as `user.data` segments).
    as_keywords: bool,
}

impl Synthetic {
    /// The body of request `seq`, with request id `id`.
    pub fn body(&self, seq: u64, id: &str) -> String {
        let mut rng = Rng::with_seed(mix(self.seed, seq));
        let user = self.user(seq, &mut rng);
        let profile = match user {
            User::Returning(n) => self.profile(&mut Rng::with_seed(mix(self.seed ^ 0x5eed, n))),
            User::OneOff(_) | User::Anonymous => self.profile(&mut rng),
        };
        let mut out = String::with_capacity(1536);
        write_request(&mut out, &mut rng, id, &user, &profile, self.seed);
        out
    }

    fn user(&self, seq: u64, rng: &mut Rng) -> User {
        let draw = rng.f64();
        if draw < RETURNING_SHARE {
            let u = rng.f64();
            User::Returning(((u * u * u) * RETURNING_USERS as f64) as u64)
        } else if draw < RETURNING_SHARE + ONE_OFF_SHARE {
            User::OneOff(seq)
        } else {
            User::Anonymous
        }
    }

    fn profile(&self, rng: &mut Rng) -> Profile {
        let city = pick(rng, CITIES, |c| c.6);
        let device = pick(rng, DEVICES, |d| d.6);
        let tag_count = rng.usize(0..=4);
        let mut tags: Vec<&str> = (0..tag_count).map(|_| pick(rng, TAGS, |t| t.1).0).collect();
        tags.sort_unstable();
        tags.dedup();
        Profile {
            city,
            device,
            yob: rng.u32(1955..=2008),
            gender: match rng.u8(0..100) {
                0..48 => "F",
                48..96 => "M",
                _ => "O",
            },
            tags,
            as_keywords: rng.bool(),
        }
    }
}

/// A seed for item `n` of stream `seed`: neighbouring items get unrelated seeds.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `v` to 4 decimals (11 m of latitude). Written with `{}`, it prints short and fast.
fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// One item of `items`, with probability proportional to `weight`.
fn pick<T>(rng: &mut Rng, items: &'static [T], weight: impl Fn(&T) -> u32) -> &'static T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut draw = rng.u32(0..total);
    for item in items {
        let w = weight(item);
        if draw < w {
            return item;
        }
        draw -= w;
    }
    &items[items.len() - 1]
}

fn write_request(
    out: &mut String,
    rng: &mut Rng,
    id: &str,
    user: &User,
    profile: &Profile,
    seed: u64,
) {
    // `write!` to a String cannot fail: its results are ignored below.
    let device = profile.device;
    let _ = write!(
        out,
        r#"{{"id":"{id}","at":1,"tmax":{},"cur":["USD"],"imp":["#,
        [100, 120, 150, 200][rng.usize(0..4)]
    );
    let imps = if rng.f64() < 0.1 { 2 } else { 1 };
    for n in 1..=imps {
        if n > 1 {
            out.push(',');
        }
        write_imp(out, rng, n, device.0);
    }
    out.push_str("],");
    let app_share = match device.0 {
        CTV => 1.0,
        DESKTOP => 0.0,
        _ => 0.6,
    };
    if rng.f64() < app_share {
        let apps = if device.0 == CTV { TV_APPS } else { APPS };
        let publisher = rng.usize(0..apps.len());
        let (bundle, cat) = apps[publisher];
        let _ = write!(
            out,
            r#""app":{{"id":"{bundle}","bundle":"{bundle}","cat":["{cat}"],"publisher":{{"id":"app-pub-{publisher}"}}}},"#
        );
    } else {
        let publisher = rng.usize(0..SITES.len());
        let (domain, cat) = SITES[publisher];
        let _ = write!(
            out,
            r#""site":{{"id":"{domain}","domain":"{domain}","page":"https://{domain}/article/{}","cat":["{cat}"],"publisher":{{"id":"site-pub-{publisher}"}}}},"#,
            rng.u32(1..100_000)
        );
    }
    write_device(out, rng, user, profile, seed);
    write_user(out, user, profile, seed);
    out.push_str(r#","regs":{"coppa":0}}"#);
}

fn write_imp(out: &mut String, rng: &mut Rng, n: u32, devicetype: u8) {
    let _ = write!(out, r#"{{"id":"{n}","#);
    if devicetype == CTV || rng.f64() < VIDEO_SHARE {
        let (w, h, max) = if devicetype == CTV {
            (1920, 1080, 60)
        } else {
            (640, 360, 30)
        };
        let _ = write!(
            out,
            r#""video":{{"mimes":["video/mp4"],"minduration":5,"maxduration":{max},"protocols":[2,3,5,6,7],"w":{w},"h":{h},"linearity":1,"plcmt":1,"startdelay":0}}"#
        );
    } else {
        let sizes = match devicetype {
            PHONE => PHONE_SIZES,
            TABLET => TABLET_SIZES,
            _ => DESKTOP_SIZES,
        };
        let &(w, h, _) = pick(rng, sizes, |s| s.2);
        let _ = write!(
            out,
            r#""banner":{{"w":{w},"h":{h},"format":[{{"w":{w},"h":{h}}}]}}"#
        );
    }
    if rng.f64() < FLOOR_SHARE {
        // 0.10 to 3.00 USD, most floors low.
        let floor = (10.0 * 30f64.powf(rng.f64() * rng.f64())).round() / 100.0;
        let _ = write!(out, r#","bidfloor":{floor},"bidfloorcur":"USD""#);
    }
    let _ = write!(out, r#","secure":{}}}"#, u8::from(rng.bool()));
}

fn write_device(out: &mut String, rng: &mut Rng, user: &User, profile: &Profile, seed: u64) {
    let Device(devicetype, make, model, os, osv, ua, _) = profile.device;
    let City(country, region, city, lat, lon, utcoffset, _) = profile.city;
    let connection = match *devicetype {
        DESKTOP | CTV => 1,
        _ => [2, 2, 6, 7][rng.usize(0..4)],
    };
    let _ = write!(
        out,
        r#""device":{{"ua":"{ua}","ip":"203.0.113.{}","devicetype":{devicetype},"make":"{make}","model":"{model}","os":"{os}","osv":"{osv}","connectiontype":{connection},"geo":{{"type":2,"country":"{country}","region":"{region}","city":"{city}","lat":{},"lon":{},"utcoffset":{utcoffset}}}"#,
        rng.u8(1..255),
        round4(lat + (rng.f64() - 0.5) * 0.1),
        round4(lon + (rng.f64() - 0.5) * 0.1),
    );
    if let User::Returning(n) | User::OneOff(n) = user
        && *devicetype != DESKTOP
    {
        let _ = write!(
            out,
            r#","ifa":"{:08x}-0000-4000-8000-{:012x}""#,
            seed as u32,
            n & 0xFFFF_FFFF_FFFF
        );
    }
    out.push('}');
}

fn write_user(out: &mut String, user: &User, profile: &Profile, seed: u64) {
    out.push_str(r#","user":{"#);
    match user {
        User::Returning(n) => {
            let _ = write!(out, r#""id":"u{seed:x}-{n}","#);
        }
        User::OneOff(n) => {
            let _ = write!(out, r#""id":"o{seed:x}-{n}","#);
        }
        User::Anonymous => {}
    }
    let _ = write!(
        out,
        r#""yob":{},"gender":"{}""#,
        profile.yob, profile.gender
    );
    if !profile.tags.is_empty() {
        if profile.as_keywords {
            let _ = write!(out, r#","keywords":"{}""#, profile.tags.join(","));
        } else {
            out.push_str(
                r#","data":[{"id":"precis-load","name":"synthetic interests","segment":["#,
            );
            for (i, tag) in profile.tags.iter().enumerate() {
                let comma = if i > 0 { "," } else { "" };
                let _ = write!(out, r#"{comma}{{"id":"{tag}"}}"#);
            }
            out.push_str("]}]");
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    fn request(synthetic: &Synthetic, seq: u64) -> Value {
        let body = synthetic.body(seq, &format!("r{seq}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    #[test]
    fn requests_are_valid_openrtb_with_the_fields_bidders_read() {
        let synthetic = Synthetic { seed: 42 };
        let (mut video, mut banner, mut apps, mut floors, mut tagged) = (0, 0, 0, 0, 0);
        for seq in 0..2000 {
            let r = request(&synthetic, seq);
            assert_eq!(r["id"], format!("r{seq}"));
            let imps = r["imp"].as_array().expect("imp array");
            assert!(!imps.is_empty());
            for (n, imp) in imps.iter().enumerate() {
                assert_eq!(
                    imp["id"],
                    (n + 1).to_string(),
                    "imp ids unique in a request"
                );
                match (&imp["banner"], &imp["video"]) {
                    (Value::Object(b), Value::Null) => {
                        assert!(b["w"].as_u64().is_some() && b["h"].as_u64().is_some());
                        banner += 1;
                    }
                    (Value::Null, Value::Object(v)) => {
                        assert!(v["mimes"].is_array());
                        video += 1;
                    }
                    other => panic!("an imp is a banner or a video: {other:?}"),
                }
                floors += usize::from(imp["bidfloor"].is_number());
            }
            // OpenRTB: a request is about a site or an app, never both.
            assert!(r["site"].is_object() != r["app"].is_object(), "{r}");
            apps += usize::from(r["app"].is_object());
            let geo = &r["device"]["geo"];
            assert_eq!(geo["country"].as_str().map(str::len), Some(3), "{geo}");
            assert!(geo["lat"].is_number() && geo["city"].is_string());
            assert!(r["device"]["devicetype"].is_u64());
            let user = &r["user"];
            tagged += usize::from(user["keywords"].is_string() || user["data"].is_array());
        }
        assert!(
            video > 100 && banner > 1000,
            "video {video}, banner {banner}"
        );
        assert!(apps > 400 && floors > 1000 && tagged > 1000);
    }

    #[test]
    fn the_seed_decides_every_request() {
        let a = Synthetic { seed: 1 };
        let b = Synthetic { seed: 2 };
        assert_eq!(a.body(7, "x"), a.body(7, "x"));
        assert_ne!(a.body(7, "x"), b.body(7, "x"));
        assert_ne!(a.body(7, "x"), a.body(8, "x"));
    }

    #[test]
    fn returning_users_keep_their_profile_and_come_back_often() {
        let synthetic = Synthetic { seed: 9 };
        let mut seen = HashSet::new();
        let busiest = format!("u{:x}-0", synthetic.seed);
        let mut busiest_seen = 0;
        let mut profiles = std::collections::HashMap::new();
        let (mut with_user, mut repeats) = (0, 0);
        let n = 50_000;
        for seq in 0..n {
            let r = request(&synthetic, seq);
            let Some(id) = r["user"]["id"].as_str().map(str::to_owned) else {
                continue;
            };
            with_user += 1;
            busiest_seen += usize::from(id == busiest);
            repeats += usize::from(!seen.insert(id.clone()));
            let traits = (
                r["device"]["geo"]["city"].clone(),
                r["device"]["os"].clone(),
                r["user"]["yob"].clone(),
            );
            assert_eq!(
                profiles.entry(id).or_insert_with(|| traits.clone()),
                &traits,
                "a user keeps their traits"
            );
        }
        let anonymous = n as f64 - with_user as f64;
        assert!(
            (0.08..0.12).contains(&(anonymous / n as f64)),
            "{anonymous}"
        );
        // 30,000 requests from 100,000 returning users, skewed: about a third of them are from
        // a user seen before, and the most active user (about 2% of them) is seen hundreds of
        // times.
        let repeat_rate = repeats as f64 / n as f64;
        assert!((0.15..0.25).contains(&repeat_rate), "{repeat_rate}");
        assert!(busiest_seen > 400, "{busiest_seen}");
    }
}
