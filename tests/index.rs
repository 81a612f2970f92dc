//! The index only narrows: over randomised campaigns (every indexed dimension, exclusions,
//! circles across the antimeridian and near the pole, audience packages on campaigns and creatives)
//! and requests, every campaign whose targeting holds is among the index's candidates, and the
//! auction with the index bids exactly as the plain evaluation of every campaign does.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use precis::auction::{self, Env, Urls};
use precis::book::frequency::Exposures;
use precis::book::index::Index;
use precis::book::pacing::Pacer;
use precis::book::ranking::Ranked;
use precis::campaign::pricing::Rates;
use precis::request::facts::Facts;
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
    let text = format!(
        "adomain = [\"a{n}.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = {}\n\
         [targeting]\n{}\n[targeting.exclude]\n{}\n{for_package}\
         [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = {w}\nh = {h}\nadm = \"ad\"\n\
         landing = \"https://a.example/\"",
        rng.u32(1..500) as f64 / 100.0,
        include.join("\n"),
        exclude.join("\n"),
    );
    let path = format!("c{n}.toml");
    Arc::new(
        precis::campaign::file::parse(&text, Path::new(&path), &Rates::new([]))
            .unwrap_or_else(|e| panic!("{e}\n{text}")),
    )
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
    let (w, h) = SIZES[rng.usize(..SIZES.len())];
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
    let campaigns: Vec<_> = (0..400).map(|n| campaign(&mut rng, n)).collect();
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
    for _ in 0..2_000 {
        let body = request(&mut rng);
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
            }
        }
        narrowed += candidates.len();
        // The whole auction, with and without the index: the same bids.
        let winners = |index: Option<&Index>| {
            let env = Env {
                rates: &rates,
                urls: &urls,
                keys: &keys,
                pacer: &Pacer::new(60, 10),
                exposures: &Exposures::new(10, 60),
                audiences: &audiences,
            };
            auction::run(&ranked, index, &request, &facts, &env).map(|a| {
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
        matched > 0 && narrowed < 400 * 2_000 / 4,
        "{matched} matched, {narrowed} candidates"
    );
    // Packages decided some auctions, at the campaign and at the creative level.
    assert!(
        by_package > 0 && package_creatives > 0,
        "{by_package} won by package campaigns, {package_creatives} package creatives"
    );
}
