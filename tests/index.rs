//! The index only narrows: over randomised campaigns (every indexed dimension, exclusions,
//! circles, audience packages on campaigns and creatives) and requests, every campaign whose
//! targeting holds is among the index's candidates, and the auction with the index bids exactly as
//! the plain evaluation of every campaign does. Circles across the antimeridian and near the poles
//! are placed on purpose, with requests just inside and just outside their edge all around them
//! (on both sides of ±180°): the random sample alone puts too few requests in those slivers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use precis::auction::{self, Env, NoBids, Urls};
use precis::book::frequency::Exposures;
use precis::book::index::Index;
use precis::book::pacing::Pacer;
use precis::book::ranking::Ranked;
use precis::campaign::pricing::Rates;
use precis::campaign::targeting::Term;
use precis::request::facts::Facts;
use precis::request::geo::Point;
use precis::request::openrtb::decode;
use precis::token::Keys;

const COUNTRIES: &[&str] = &["USA", "GBR", "DEU", "FRA", "JPN"];
const DEVICES: &[(&str, u32)] = &[("phone", 4), ("tablet", 5), ("desktop", 2), ("ctv", 3)];
const OS: &[&str] = &["ios", "android", "windows"];
const TAGS: &[&str] = &[
    "sports",
    "sports/football",
    "sports/football/premier-league",
    "sports/tennis",
    "travel",
    "travel/flights",
    "auto/suv",
];
const CATEGORIES: &[&str] = &["IAB17", "IAB17-3", "IAB20", "IAB2-1", "IAB19"];
const SIZES: &[(u32, u32)] = &[(300, 250), (728, 90), (320, 50)];
const REGIONS: &[&str] = &["US-CA", "GB-ENG", "CA", "FR-IDF"];
const CITIES: &[&str] = &["London", "Paris", "Tokyo"];
/// Audience packages: `p0` holds users u0..u9, `p1` u5..u14, `p2` u12..u19 (as SHA-256).
const PACKAGES: &[&str] = &["p0", "p1", "p2"];

fn packages() -> precis::audience::Library {
    let dir = tempfile::tempdir().unwrap();
    let users =
        |range: std::ops::Range<u32>| -> String { range.map(|n| format!("u{n}\n")).collect() };
    std::fs::write(dir.path().join("p0.txt"), users(0..10)).unwrap();
    std::fs::write(dir.path().join("p1.csv"), format!("user\n{}", users(5..15))).unwrap();
    let hashed: String = (12..20)
        .map(|n| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("u{n}").as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}\n")
        })
        .collect();
    std::fs::write(
        dir.path().join("p2.txt"),
        format!("# keys: sha256\n{hashed}"),
    )
    .unwrap();
    let library = precis::audience::Library::load(dir.path(), &Default::default());
    assert!(library.refused.is_empty(), "{:?}", library.refused);
    library
}
/// London, near Paris, the Bering Strait (the antimeridian), Svalbard (the far north).
const POINTS: &[(f64, f64)] = &[(51.5, -0.12), (48.9, 2.35), (65.8, 179.9), (78.2, 15.6)];

/// The centre of a campaign's first circle.
fn center(campaign: &precis::campaign::Campaign) -> Option<Point> {
    campaign
        .targeting
        .include
        .iter()
        .find_map(|term| match term {
            Term::Near(circles) => circles.first().map(|c| c.center),
            _ => None,
        })
}

/// The centre of a campaign's circle when it is one the index puts in map cells: of 50 km at most,
/// away from the poles and the antimeridian (others are checked in full).
fn small_circle(campaign: &precis::campaign::Campaign) -> Option<Point> {
    let center = center(campaign)?;
    let small = campaign.targeting.include.iter().all(|term| match term {
        Term::Near(circles) => circles.iter().all(|c| c.km <= 50.0),
        _ => true,
    });
    (small && center.lat.abs() < 80.0 && center.lon.abs() < 170.0).then_some(center)
}

fn some<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> Vec<&'a str> {
    let mut chosen: Vec<&str> = (0..rng.usize(1..=2))
        .map(|_| items[rng.usize(..items.len())])
        .collect();
    chosen.dedup();
    chosen
}

fn quoted(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// A campaign that constrains a random subset of dimensions, sometimes by exclusion too.
fn campaign(rng: &mut fastrand::Rng, n: usize) -> Arc<precis::campaign::Campaign> {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    let mut key = |rng: &mut fastrand::Rng, name: &str, items: &[&str]| match rng.u8(..10) {
        0..=3 => include.push(format!("{name} = {}", quoted(&some(rng, items)))),
        4 => exclude.push(format!("{name} = {}", quoted(&some(rng, items)))),
        _ => {}
    };
    key(rng, "countries", COUNTRIES);
    let devices: Vec<&str> = DEVICES.iter().map(|d| d.0).collect();
    key(rng, "device_types", &devices);
    key(rng, "os", OS);
    key(rng, "tags_any", TAGS);
    key(rng, "categories", CATEGORIES);
    key(rng, "regions", REGIONS);
    key(rng, "cities", CITIES);
    key(rng, "audiences_any", PACKAGES);
    if rng.u8(..6) == 0 {
        let (lat, lon) = POINTS[rng.usize(..POINTS.len())];
        let km = [5.0, 50.0, 400.0, 3000.0][rng.usize(..4)];
        include.push(format!(
            "near = [{{ lat = {lat}, lon = {lon}, km = {km} }}]"
        ));
    }
    if rng.u8(..8) == 0 {
        include.push("hours = [[0, 12]]".into());
    }
    let (w, h) = SIZES[rng.usize(..SIZES.len())];
    // Sometimes a first creative for one package's users only, before one for everyone.
    let for_package = match rng.u8(..3) {
        0 => format!(
            "[[creative]]\nid = \"only\"\naudiences_any = {}\nformat = \"banner\"\n\
             w = {w}\nh = {h}\nadm = \"ad\"\nlanding = \"https://a.example/\"\n",
            quoted(&some(rng, PACKAGES))
        ),
        _ => String::new(),
    };
    let cpm = rng.u32(1..500) as f64 / 100.0;
    compile(n, cpm, &include, &exclude, &for_package, (w, h))
}

/// Campaign `n`: its targeting's `include` and `exclude` lines, `creatives` before one banner for
/// everyone of size `w`×`h`.
fn compile(
    n: usize,
    cpm: f64,
    include: &[String],
    exclude: &[String],
    creatives: &str,
    (w, h): (u32, u32),
) -> Arc<precis::campaign::Campaign> {
    let text = format!(
        "adomain = [\"a{n}.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = {cpm}\n\
         [targeting]\n{}\n[targeting.exclude]\n{}\n{creatives}\
         [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = {w}\nh = {h}\nadm = \"ad\"\n\
         landing = \"https://a.example/\"",
        include.join("\n"),
        exclude.join("\n"),
    );
    let path = format!("c{n}.toml");
    Arc::new(
        precis::campaign::file::parse(&text, Path::new(&path), &Rates::new([]))
            .unwrap_or_else(|e| panic!("{e}\n{text}")),
    )
}

/// Circles placed on purpose where map cells are tricky: across the antimeridian (centres on both
/// sides of it, near the equator and far north) and near the poles (around one, one with the pole
/// inside); then plain ones (Tokyo, Sydney, Reykjavik) that the index must keep to their place.
/// Each at every radius of [`RADII`].
const PLACED: &[(f64, f64)] = &[
    (65.8, 179.9),
    (65.8, -179.9),
    (-17.7, 179.6),
    (0.0, -179.8),
    (52.0, 178.0),
    (86.0, -179.0),
    (80.0, 100.0),
    (84.0, -30.0),
    (84.0, 0.25),
    (-84.0, 0.25),
    (-89.5, -60.0),
    (89.9, 15.6),
    (35.7, 139.7),
    (-33.9, 151.2),
    (64.1, -21.9),
];
const RADII: &[f64] = &[5.0, 50.0, 300.0];

/// A campaign for each placed circle: that circle is all it targets.
fn placed_campaigns(first: usize) -> Vec<Arc<precis::campaign::Campaign>> {
    let circles = PLACED
        .iter()
        .flat_map(|&c| RADII.iter().map(move |&km| (c, km)));
    circles
        .enumerate()
        .map(|(i, ((lat, lon), km))| {
            let near = format!("near = [{{ lat = {lat}, lon = {lon}, km = {km} }}]");
            compile(
                first + i,
                1.0 + i as f64 / 100.0,
                &[near],
                &[],
                "",
                SIZES[0],
            )
        })
        .collect()
}

/// Kilometres per radian on the sphere the product measures distances on.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The point `km` from (`lat`, `lon`) on the bearing `degrees` (clockwise from north), its
/// longitude within ±180°.
fn destination((lat, lon): (f64, f64), km: f64, degrees: f64) -> (f64, f64) {
    let (lat, lon, bearing) = (lat.to_radians(), lon.to_radians(), degrees.to_radians());
    let angle = km / EARTH_RADIUS_KM;
    let to_lat = (lat.sin() * angle.cos() + lat.cos() * angle.sin() * bearing.cos()).asin();
    let to_lon = lon
        + (bearing.sin() * angle.sin() * lat.cos()).atan2(angle.cos() - lat.sin() * to_lat.sin());
    let to_lon = (to_lon.to_degrees() + 180.0).rem_euclid(360.0) - 180.0;
    (to_lat.to_degrees(), to_lon)
}

/// Requests around each placed circle: every 10° of bearing, well inside, just inside and just
/// outside its edge; on the ones across the antimeridian, half of them on the other side of it.
fn placed_requests() -> Vec<String> {
    let circles = PLACED
        .iter()
        .flat_map(|&c| RADII.iter().map(move |&km| (c, km)));
    circles
        .flat_map(|(center, km)| {
            (0..36).flat_map(move |step| {
                [0.5, 0.999, 1.001].map(|part| destination(center, part * km, step as f64 * 10.0))
            })
        })
        .map(|(lat, lon)| {
            body(
                &[format!("\"geo\": {{\"lat\": {lat}, \"lon\": {lon}}}")],
                "",
                "",
                "[]",
                SIZES[0],
            )
        })
        .collect()
}

fn request(rng: &mut fastrand::Rng) -> String {
    let mut device = Vec::new();
    if rng.bool() {
        device.push(format!(
            "\"devicetype\": {}",
            DEVICES[rng.usize(..DEVICES.len())].1
        ));
    }
    if rng.bool() {
        device.push(format!("\"os\": \"{}\"", OS[rng.usize(..OS.len())]));
    }
    let mut geo = Vec::new();
    if rng.bool() {
        let country = COUNTRIES[rng.usize(..COUNTRIES.len())];
        geo.push(format!("\"country\": \"{country}\""));
    }
    if rng.bool() {
        let region = REGIONS[rng.usize(..REGIONS.len())];
        let code = region.rsplit('-').next().unwrap_or(region);
        geo.push(format!("\"region\": \"{code}\""));
    }
    if rng.bool() {
        geo.push(format!(
            "\"city\": \"{}\"",
            CITIES[rng.usize(..CITIES.len())]
        ));
    }
    if rng.bool() {
        // Around the points campaigns circle, up to a few hundred km off.
        let (lat, lon) = POINTS[rng.usize(..POINTS.len())];
        let (dlat, dlon) = (rng.f64() * 8.0 - 4.0, rng.f64() * 8.0 - 4.0);
        let lon = (lon + dlon + 180.0).rem_euclid(360.0) - 180.0;
        geo.push(format!(
            "\"lat\": {}, \"lon\": {lon}",
            (lat + dlat).min(89.9)
        ));
    }
    device.push(format!("\"geo\": {{{}}}", geo.join(", ")));
    let keywords = some(rng, TAGS).join(",");
    let user = match rng.u8(..4) {
        0 => String::new(),
        _ => format!("\"id\": \"u{}\", ", rng.u8(..22)),
    };
    let cat = quoted(&some(rng, CATEGORIES));
    body(
        &device,
        &user,
        &keywords,
        &cat,
        SIZES[rng.usize(..SIZES.len())],
    )
}

/// A request for one `w`×`h` banner: its `device` fields, `user` fields before its `keywords`,
/// its site's categories `cat` (a JSON list).
fn body(device: &[String], user: &str, keywords: &str, cat: &str, (w, h): (u32, u32)) -> String {
    format!(
        r#"{{"id": "r", "imp": [{{"id": "1", "banner": {{"w": {w}, "h": {h}}}}}],
            "site": {{"cat": {cat}}}, "device": {{{}}}, "user": {{{user}"keywords": "{keywords}"}}}}"#,
        device.join(", ")
    )
}

#[test]
fn the_index_finds_every_campaign_the_plain_evaluation_does_and_the_same_winners() {
    let mut rng = fastrand::Rng::with_seed(2026);
    let rates = Rates::new([]);
    let mut campaigns: Vec<_> = (0..400).map(|n| campaign(&mut rng, n)).collect();
    campaigns.extend(placed_campaigns(campaigns.len()));
    let count = campaigns.len();
    let ranked = precis::book::ranking::rank(campaigns, &rates, Ranked::from_file);
    let index = Index::build(&ranked);
    let keys = Keys::new(b"a test secret of 32 bytes.......", None).unwrap();
    let urls = Urls {
        public: "http://127.0.0.1:8080".into(),
    };
    let now = "2026-11-23T09:00:00Z".parse().unwrap();
    let audiences = packages();
    let (mut by_package, mut package_creatives) = (0, 0);
    let (mut matched, mut narrowed) = (0, 0);
    // Matches of a circle by a request across the antimeridian from its centre, and near a pole.
    let (mut across, mut polar) = (0, 0);
    let mut small = 0;
    let bodies: Vec<String> = (0..2_000).map(|_| request(&mut rng)).collect();
    let bodies = [bodies, placed_requests()].concat();
    for body in &bodies {
        let request = decode(body.as_bytes()).unwrap();
        let facts = Facts::from_request(&request, now);
        let candidates: HashSet<usize> = index.query(&facts).candidates().collect();
        for (i, entry) in ranked.iter().enumerate() {
            if entry.campaign.targeting.matches(&facts) {
                assert!(
                    candidates.contains(&i),
                    "{} missed for {body}",
                    entry.campaign.id
                );
                matched += 1;
                if let (Some(center), Some(point)) = (center(&entry.campaign), facts.point) {
                    across += usize::from(center.lon * point.lon < -90.0 * 90.0);
                    polar += usize::from(center.lat.abs() > 80.0);
                }
            }
        }
        narrowed += candidates.len();
        for &i in &candidates {
            let campaign = &ranked[i].campaign;
            // The index narrows by place: a small circle is a candidate only near its centre ...
            if let Some(center) = small_circle(campaign) {
                let near = facts.point.is_some_and(|p| center.km_to(&p) < 500.0);
                assert!(near, "{} is a candidate for {body}", campaign.id);
                small += 1;
            }
            // ... and by every other dimension it indexes: a candidate's terms on them hold (a
            // region by its code: the country is checked in full).
            for term in &campaign.targeting.include {
                let holds = match term {
                    Term::Regions(list) => (facts.region.as_ref())
                        .is_some_and(|r| list.iter().any(|want| want.code == r.code)),
                    Term::Countries(_)
                    | Term::Cities(_)
                    | Term::DeviceTypes(_)
                    | Term::Os(_)
                    | Term::TagsAny(_)
                    | Term::Categories(_) => term.holds(&facts),
                    _ => true,
                };
                assert!(holds, "{} is a candidate for {body}: {term:?}", campaign.id);
            }
        }
        // The whole auction, with and without the index: the same bids.
        let winners = |index: Option<&Index>| {
            let env = Env {
                rates: &rates,
                urls: &urls,
                keys: &keys,
                pacer: &Pacer::new(60, 10),
                exposures: &Exposures::new(10, 60),
                audiences: &audiences,
                no_bids: &NoBids::default(),
            };
            auction::run(&ranked, index, &request, &facts, &env)
                .ok()
                .map(|a| {
                    let bids = &a.response.seatbid[0].bid;
                    bids.iter()
                        .map(|b| (b.cid.to_owned(), b.crid.to_owned(), b.price))
                        .collect::<Vec<_>>()
                })
        };
        let indexed = winners(Some(&index));
        assert_eq!(indexed, winners(None), "{body}");
        for (cid, crid, _) in indexed.iter().flatten() {
            let campaign = ranked.iter().find(|r| &r.campaign.id == cid).unwrap();
            by_package += usize::from(!campaign.campaign.audiences.any.is_empty());
            package_creatives += usize::from(crid == "only");
        }
    }
    // The index did narrow: far fewer candidates than campaigns × requests.
    assert!(
        matched > 0 && narrowed < count * bodies.len() / 4,
        "{matched} matched, {narrowed} candidates"
    );
    // ... and small circles were candidates of requests near them (and of no others).
    assert!(small > 300, "{small} candidates with a small circle");
    // The placed circles were met from across the antimeridian and near the poles.
    assert!(
        across > 500 && polar > 700,
        "{across} across, {polar} polar"
    );
    // Packages decided some auctions, at the campaign and at the creative level.
    assert!(
        by_package > 0 && package_creatives > 0,
        "{by_package} won by package campaigns, {package_creatives} package creatives"
    );
}

/// A circle whose box spans more map cells than the index puts one in (400) is checked in full
/// instead: the index then holds no more for it than for a campaign without a circle.
#[test]
fn a_circle_over_400_map_cells_is_checked_in_full_not_put_in_cells() {
    let rates = Rates::new([]);
    let bytes = |include: &[String]| {
        let campaign = compile(0, 1.0, include, &[], "", SIZES[0]);
        let ranked = precis::book::ranking::rank([campaign], &rates, Ranked::from_file);
        Index::build(&ranked).bytes()
    };
    let london = |km: f64| [format!("near = [{{ lat = 51.5, lon = -0.12, km = {km} }}]")];
    // 380 km around London: a box of 16 × 26 = 416 half-degree cells; 300 km: 12 × 20 = 240.
    assert_eq!(bytes(&london(380.0)), bytes(&[]));
    assert!(bytes(&london(300.0)) > bytes(&[]));
}
