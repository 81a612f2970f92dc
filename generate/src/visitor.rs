//! The request side of generated data: a [`Visitor`] is one plausible bid request's worth of facts
//! (place, screen, interests, context, slot), drawn from the same places, tree and sizes as the
//! generated campaigns, so that traffic meets them at realistic rates. [`Visitor::bid_request`]
//! writes it as an OpenRTB 2.6 request; a load generator may write its own from the fields.

use serde_json::{Map, Value, json};

use super::places::{City, Market, draw_city, draw_market};
use super::rng::Rng;
use super::tree::{ROOTS, draw_root, tree};
use super::{ANY_SIZES, DESKTOP_SIZES, MOBILE_SIZES, PUBLISHERS, app_bundle, site_domain};

/// The ad slot of a request's one imp.
#[derive(Debug, Clone, PartialEq)]
pub enum AdSlot {
    Banner { w: u32, h: u32 },
    Video { w: u32, h: u32, maxduration: u32 },
    Native,
}

/// One request's facts.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// ISO-3166 alpha-3; `None` for a request without geo.
    pub country: Option<&'static str>,
    /// The city (and through it the region); `None` when the exchange knows only the country.
    pub city: Option<&'static City>,
    /// Device coordinates near the city, when the exchange passes them.
    pub point: Option<(f64, f64)>,
    /// OpenRTB `devicetype`.
    pub device_type: u32,
    /// `device.os` as exchanges spell it.
    pub os: &'static str,
    /// OpenRTB `connectiontype`.
    pub connection: u32,
    /// Taxonomy tags (segments of the user's data), often none.
    pub tags: Vec<String>,
    /// IAB categories of the site or app.
    pub categories: Vec<String>,
    /// Exactly one of these.
    pub site: Option<String>,
    pub app: Option<String>,
    pub yob: Option<u32>,
    pub gender: Option<&'static str>,
    pub user: Option<String>,
    pub slot: AdSlot,
    /// CPM floor in USD.
    pub bidfloor: f64,
}

/// Device types with their share of traffic: phone, desktop, tablet, CTV, mobile/tablet,
/// connected device, set-top box.
const DEVICES: &[(u32, u32)] = &[(4, 52), (2, 25), (5, 8), (3, 8), (1, 4), (6, 2), (7, 1)];

/// Ages are drawn against this year (a visitor's `yob` does not move with the calendar).
const YEAR: u32 = 2026;

impl Visitor {
    pub fn draw(rng: &mut Rng) -> Visitor {
        let market = draw_market(rng);
        let geo = rng.unit();
        let (country, city) = if geo < 0.04 {
            (None, None)
        } else if geo < 0.12 {
            (Some(market.country), None)
        } else {
            (Some(market.country), Some(draw_city(rng, market)))
        };
        let point = city.filter(|_| rng.chance(0.6)).map(|c| {
            (
                round4(c.lat + rng.range(-0.05, 0.05)),
                round4(c.lon + rng.range(-0.05, 0.05)),
            )
        });
        let device_type = *rng.weighted(DEVICES);
        let os = *match device_type {
            4 | 1 => rng.weighted(&[("iOS", 45), ("Android", 55)]),
            5 => rng.weighted(&[("iPadOS", 30), ("iOS", 30), ("Android", 40)]),
            2 => rng.weighted(&[("Windows", 70), ("macOS", 25), ("Linux", 5)]),
            3 | 7 => rng.weighted(&[("tvOS", 20), ("Roku", 35), ("Tizen", 25), ("webOS", 20)]),
            _ => rng.weighted(&[("Android", 1)]),
        };
        let connection = *match device_type {
            4 | 1 => rng.weighted(&[(2, 45), (6, 35), (7, 15), (5, 5)]),
            2 => rng.weighted(&[(1, 40), (2, 60)]),
            _ => rng.weighted(&[(2, 80), (1, 20)]),
        };

        // Interests: three users in ten come with no data at all.
        let roots = tree().roots();
        let mut interests: Vec<usize> = Vec::new();
        let mut tags = Vec::new();
        if rng.chance(0.7) {
            for _ in 0..rng.between(1, 3) {
                let r = draw_root(rng);
                if interests.contains(&r) {
                    continue;
                }
                interests.push(r);
                let subtree = tree().subtree(roots[r]);
                for _ in 0..rng.between(1, 4) {
                    let depth = if rng.chance(0.6) { 4 } else { 3 };
                    let at: Vec<_> = subtree.iter().filter(|n| n.depth == depth).collect();
                    let tag = &at[rng.below(at.len())].path;
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
            }
        }

        // Context: what the page or app is about, often what the user is into.
        let context = if !interests.is_empty() && rng.chance(0.65) {
            interests[rng.below(interests.len())]
        } else {
            draw_root(rng)
        };
        let spec = &ROOTS[context];
        let mut categories = Vec::new();
        if rng.chance(0.9) {
            categories.push(spec.iab.to_owned());
            if spec.iab_subcategories > 0 && rng.chance(0.5) {
                let n = rng.between(1, spec.iab_subcategories as usize);
                categories.push(format!("{}-{n}", spec.iab));
            }
        }
        let in_app = match device_type {
            2 => false,
            3 | 6 | 7 => true,
            _ => rng.chance(0.75),
        };
        let publisher = rng.below(PUBLISHERS);
        let (site, app) = if in_app {
            (None, Some(app_bundle(spec.name, publisher)))
        } else {
            (Some(site_domain(spec.name, publisher)), None)
        };

        let yob = rng.chance(0.55).then(|| YEAR - rng.between(18, 75) as u32);
        let gender = yob
            .filter(|_| rng.chance(0.8))
            .map(|_| *rng.weighted(&[("M", 49), ("F", 49), ("O", 2)]));
        let user = rng
            .chance(0.85)
            .then(|| format!("u-{:016x}", rng.next_u64()));

        let (slot, bidfloor) = match device_type {
            3 | 7 => (
                AdSlot::Video {
                    w: 1920,
                    h: 1080,
                    maxduration: *rng.pick(&[30, 60]),
                },
                rng.log_range(8.0, 20.0),
            ),
            _ => {
                let (sizes, native) = match device_type {
                    2 => (DESKTOP_SIZES, 0.05),
                    4 | 1 => (MOBILE_SIZES, 0.15),
                    _ => (ANY_SIZES, 0.10),
                };
                let roll = rng.unit();
                if roll < native {
                    (AdSlot::Native, rng.log_range(0.3, 3.0))
                } else if roll < native + 0.15 {
                    let (w, h) = *rng.pick(&[(640, 360), (1280, 720), (1920, 1080)]);
                    let maxduration = *rng.pick(&[15, 30, 30, 60]);
                    (AdSlot::Video { w, h, maxduration }, rng.log_range(1.0, 8.0))
                } else {
                    let (w, h) = *rng.weighted(sizes);
                    (AdSlot::Banner { w, h }, rng.log_range(0.05, 1.5))
                }
            }
        };
        Visitor {
            country,
            city,
            point,
            device_type,
            os,
            connection,
            tags,
            categories,
            site,
            app,
            yob,
            gender,
            user,
            slot,
            bidfloor: (bidfloor * 100.0).round() / 100.0,
        }
    }

    /// The visitor as a one-imp OpenRTB 2.6 bid request with this `id`: the tags as segments of
    /// one data provider, the geo on `device.geo` with the region code as exchanges send it.
    pub fn bid_request(&self, id: &str) -> Value {
        let imp = match self.slot {
            AdSlot::Banner { w, h } => json!({ "banner": { "w": w, "h": h } }),
            AdSlot::Video { w, h, maxduration } => json!({ "video": {
                "mimes": ["video/mp4", "video/webm"], "minduration": 5, "maxduration": maxduration,
                "protocols": [2, 3, 5, 6, 7, 8, 11, 12, 13, 14], "w": w, "h": h, "plcmt": 1
            } }),
            AdSlot::Native => json!({ "native": {
                "request": "{\"ver\":\"1.2\",\"assets\":[{\"id\":1,\"required\":1,\"title\":{\"len\":90}},{\"id\":2,\"required\":1,\"img\":{\"type\":3,\"wmin\":600,\"hmin\":314}}]}",
                "ver": "1.2"
            } }),
        };
        let mut imp = into_map(imp);
        imp.insert("id".into(), json!("1"));
        imp.insert("bidfloor".into(), json!(self.bidfloor));
        imp.insert("bidfloorcur".into(), json!("USD"));

        let mut geo = Map::new();
        if let Some(country) = self.country {
            geo.insert("country".into(), json!(country));
        }
        if let Some(city) = self.city {
            geo.insert("region".into(), json!(Market::request_region(city)));
            geo.insert("city".into(), json!(city.name));
        }
        if let Some((lat, lon)) = self.point {
            geo.insert("lat".into(), json!(lat));
            geo.insert("lon".into(), json!(lon));
            geo.insert("type".into(), json!(1));
        }
        let mut device = into_map(json!({
            "devicetype": self.device_type, "os": self.os, "connectiontype": self.connection,
        }));
        if !geo.is_empty() {
            device.insert("geo".into(), Value::Object(geo));
        }

        let mut user = Map::new();
        if let Some(id) = &self.user {
            user.insert("id".into(), json!(id));
        }
        if let Some(yob) = self.yob {
            user.insert("yob".into(), json!(yob));
        }
        if let Some(gender) = self.gender {
            user.insert("gender".into(), json!(gender));
        }
        if !self.tags.is_empty() {
            let segments: Vec<Value> = self.tags.iter().map(|t| json!({ "id": t })).collect();
            user.insert(
                "data".into(),
                json!([{ "id": "precis-taxonomy", "name": "precis interest taxonomy", "segment": segments }]),
            );
        }

        let mut request = into_map(json!({
            "id": id, "at": 1, "tmax": 150, "cur": ["USD"], "imp": [imp], "device": device,
        }));
        if let Some(domain) = &self.site {
            request.insert(
                "site".into(),
                json!({ "domain": domain, "page": format!("https://{domain}/"), "cat": self.categories }),
            );
        }
        if let Some(bundle) = &self.app {
            request.insert(
                "app".into(),
                json!({ "bundle": bundle, "cat": self.categories }),
            );
        }
        if !user.is_empty() {
            request.insert("user".into(), Value::Object(user));
        }
        Value::Object(request)
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
