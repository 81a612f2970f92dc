//! The bid path against 1,000 campaigns, minus HTTP: how long one bid request takes to decode
//! (`decode`), to normalise into targeting facts (`facts`), to auction (`auction`), and all of it
//! end to end including the JSON answer (`full`), each per request body.
//!
//! The campaigns are TOML files generated from a fixed seed and compiled with the real
//! `campaign::parse`, with a realistic mix of targeting, pricing models and creative formats; the
//! clock is fixed, so every run sees the same winners. Run with `cargo bench --bench bid_path`
//! (add `-- auction` to run one group, `-- --warm-up-time 1 --measurement-time 3` for a quick pass).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use precis::auction::{self, Env, Ranked, Urls};
use precis::campaign::{self, Campaign};
use precis::frequency::Exposures;
use precis::index::Index;
use precis::openrtb::response::BidResponse;
use precis::openrtb::{self, BidRequest};
use precis::pacing::Pacer;
use precis::pricing::{Currency, Rates};
use precis::targeting::{Facts, Term};
use precis::token::Keys;

const CAMPAIGNS: usize = 1_000;
const SEED: u64 = 0x5eed_b1d5_0f0f_2026;
/// A Wednesday, 09:30 in New York, 15:30 in Berlin and 23:30 in Tokyo: of the dayparted campaigns
/// (which run in those zones) some are on and some are off.
const NOW: &str = "2026-03-04T14:30:00Z";

// ---------------------------------------------------------------------------------------------
// A tiny deterministic PRNG (xorshift64*), so the bench needs no extra crates.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Skewed toward the front of `items`, as demand is toward the big markets and common sizes.
    fn pick_popular<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len()).min(self.below(items.len()))]
    }

    /// Between 1 and `max` distinct items.
    fn some<T: Copy + PartialEq>(&mut self, items: &[T], max: usize, popular: bool) -> Vec<T> {
        let mut chosen = Vec::new();
        for _ in 0..=self.below(max) {
            let item = if popular {
                self.pick_popular(items)
            } else {
                self.pick(items)
            };
            if !chosen.contains(&item) {
                chosen.push(item);
            }
        }
        chosen
    }
}

// ---------------------------------------------------------------------------------------------
// Campaign files.

/// The top markets first (`pick_popular` favours them).
const COUNTRIES: &[&str] = &[
    "USA", "GBR", "DEU", "FRA", "CAN", "JPN", "AUS", "BRA", "IND", "ESP", "ITA", "NLD", "MEX",
    "KOR", "SWE", "POL", "CHN", "SGP", "ZAF", "NZL",
];
const TIMEZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Asia/Tokyo",
];
const HOURS: &[&str] = &[
    "[[6, 10], [17, 22]]",
    "[[9, 18]]",
    "[[18, 24]]",
    "[[0, 7]]",
    "[[12, 16]]",
];
const DAYS: &[&str] = &[
    r#"["mon", "tue", "wed", "thu", "fri"]"#,
    r#"["sat", "sun"]"#,
    r#"["wed", "thu", "fri", "sat"]"#,
];
const DEVICE_TYPES: &[&str] = &[
    r#"["phone", "tablet"]"#,
    r#"["mobile"]"#,
    r#"["phone"]"#,
    r#"["desktop"]"#,
    r#"["ctv"]"#,
];
const OS: &[&str] = &["ios", "android", "windows", "macos"];
const TAGS: &[&str] = &[
    "sports",
    "sports/outdoor",
    "sports/outdoor/running",
    "sports/outdoor/cycling",
    "sports/indoor/fitness",
    "travel",
    "travel/europe",
    "travel/asia/japan",
    "finance",
    "finance/investing",
    "finance/crypto",
    "auto",
    "auto/suv",
    "auto/electric",
    "food/cooking",
    "food/restaurants",
    "tech/gadgets",
    "tech/gaming",
    "beauty",
    "fashion/shoes",
    "parenting",
    "pets/dogs",
];
/// Centres for `near`: New York, San Francisco, London, Berlin, Tokyo.
const CITIES: &[(f64, f64)] = &[
    (40.7128, -74.0060),
    (37.7749, -122.4194),
    (51.5072, -0.1276),
    (52.5200, 13.4050),
    (35.6762, 139.6503),
];
const BANNER_SIZES: &[(u32, u32)] = &[(300, 250), (728, 90), (320, 50), (300, 600)];

/// A TOML array of strings (`Debug` of plain ASCII strings is valid TOML).
fn toml_list(items: &[String]) -> String {
    format!("{items:?}")
}

/// An IAB category, a sub-category one time in three.
fn category(rng: &mut Rng) -> String {
    let top = 1 + rng.below(26);
    if rng.chance(1.0 / 3.0) {
        format!("IAB{top}-{}", 1 + rng.below(8))
    } else {
        format!("IAB{top}")
    }
}

fn categories(rng: &mut Rng, max: usize) -> String {
    let list: Vec<String> = (0..=rng.below(max)).map(|_| category(rng)).collect();
    toml_list(&list)
}

fn strings(rng: &mut Rng, items: &[&str], max: usize, popular: bool) -> String {
    let list: Vec<String> = rng
        .some(items, max, popular)
        .into_iter()
        .map(str::to_owned)
        .collect();
    toml_list(&list)
}

fn header(rng: &mut Rng, advertiser: usize) -> String {
    let mut text = format!(
        "name = \"Generated campaign for advertiser {advertiser}\"\n\
         advertiser = \"Advertiser {advertiser}\"\n\
         adomain = [\"adv{advertiser}.example\"]\n\
         cat = {}\n\
         timezone = \"{}\"\n",
        categories(rng, 2),
        rng.pick(TIMEZONES),
    );
    if rng.chance(0.08) {
        // A flight window; half of them are already over.
        let end = rng.pick(&["2026-02-28", "2026-03-31"]);
        text += &format!("start = 2026-02-01\nend = {end}\n");
    }
    text
}

/// eCPMs log-uniform between 0.1 and 10, reached through each pricing model; `max_cpm` caps
/// some of them (and keeps rounding from pushing any above 10).
fn pricing(rng: &mut Rng) -> String {
    let ecpm = 0.1 * 100f64.powf(rng.unit());
    let max_cpm = (ecpm * rng.range(0.8, 1.5)).min(10.0);
    let currency = if rng.chance(0.1) { "EUR" } else { "USD" };
    let model = match rng.below(3) {
        0 => format!("model = \"cpm\"\ncpm = {ecpm:.4}"),
        1 => {
            let ctr = rng.range(0.002, 0.02);
            format!(
                "model = \"cpc\"\ncpc = {:.4}\nctr = {ctr:.4}\nmax_cpm = {max_cpm:.4}",
                ecpm / (ctr * 1000.0),
            )
        }
        _ => {
            let (commission, cvr, ctr) = (
                rng.range(0.05, 0.2),
                rng.range(0.01, 0.05),
                rng.range(0.005, 0.02),
            );
            format!(
                "model = \"cps\"\ncommission = {commission:.4}\norder_value = {:.2}\n\
                 cvr = {cvr:.4}\nctr = {ctr:.4}\nmax_cpm = {max_cpm:.4}",
                ecpm / (commission * cvr * ctr * 1000.0),
            )
        }
    };
    format!("[pricing]\ncurrency = \"{currency}\"\n{model}\n")
}

/// The `key = value` lines of `[targeting]`; each key is set with the odds a real book might have.
fn targeting_keys(rng: &mut Rng) -> Vec<String> {
    let mut keys = Vec::new();
    if rng.chance(0.75) {
        keys.push(format!("countries = {}", strings(rng, COUNTRIES, 4, true)));
    }
    if rng.chance(0.4) {
        keys.push(format!("device_types = {}", rng.pick(DEVICE_TYPES)));
    }
    if rng.chance(0.25) {
        keys.push(format!("os = {}", strings(rng, OS, 2, false)));
    }
    if rng.chance(0.05) {
        keys.push(format!(
            "connection = [\"{}\"]",
            rng.pick(&["wifi", "cellular"])
        ));
    }
    if rng.chance(0.3) {
        keys.push(format!("hours = {}", rng.pick(HOURS)));
        if rng.chance(0.5) {
            keys.push(format!("days = {}", rng.pick(DAYS)));
        }
    }
    if rng.chance(0.35) {
        keys.push(format!("tags_any = {}", strings(rng, TAGS, 3, false)));
    }
    if rng.chance(0.3) {
        keys.push(format!("categories = {}", categories(rng, 3)));
    }
    if rng.chance(0.06) {
        keys.push(format!(
            "age = {}",
            rng.pick(&["[18, 34]", "[25, 54]", "[35, 64]"])
        ));
    }
    if rng.chance(0.04) {
        let circles: Vec<String> = (0..=rng.below(2))
            .map(|_| {
                let (lat, lon) = rng.pick(CITIES);
                let km = rng.pick(&[10.0, 25.0, 50.0]);
                format!("{{ lat = {lat}, lon = {lon}, km = {km:.1} }}")
            })
            .collect();
        keys.push(format!("near = [{}]", circles.join(", ")));
    }
    keys
}

fn targeting(rng: &mut Rng) -> String {
    let mut text = format!("[targeting]\n{}\n", targeting_keys(rng).join("\n"));
    if rng.chance(0.1) {
        let exclude = match rng.below(3) {
            0 => "categories = [\"IAB25\", \"IAB26\"]",
            1 => "os = [\"android\"]",
            _ => "countries = [\"CHN\", \"RUS\"]",
        };
        text += &format!("[targeting.exclude]\n{exclude}\n");
    }
    text
}

/// The keys of one creative other than `id` and `landing`: three in four are banners, then video
/// and native. `tag` names its assets on the advertiser's CDN at `domain`.
fn creative_body(rng: &mut Rng, tag: &str, domain: &str) -> String {
    let roll = rng.unit();
    if roll < 0.75 {
        banner(rng, tag, domain)
    } else if roll < 0.9 {
        video(rng, tag, domain)
    } else {
        native(tag, domain)
    }
}

fn banner(rng: &mut Rng, tag: &str, domain: &str) -> String {
    let (w, h) = rng.pick_popular(BANNER_SIZES);
    format!(
        "format = \"banner\"\nw = {w}\nh = {h}\n\
         adm = '<a href=\"${{CLICK_URL}}\" target=\"_blank\"><img src=\"https://cdn.{domain}/{tag}.png\" \
         width=\"{w}\" height=\"{h}\" alt=\"\"></a>'\n"
    )
}

fn video(rng: &mut Rng, tag: &str, domain: &str) -> String {
    let mime = rng.pick_popular(&["video/mp4", "video/webm"]);
    let seconds = rng.pick(&[6, 15, 30, 60]);
    let vast = rng.pick_popular(&["4.0", "3.0", "2.0", "4.2"]);
    let size = if rng.chance(0.5) {
        let (w, h) = rng.pick(&[(640, 360), (1920, 1080)]);
        format!("w = {w}\nh = {h}\n")
    } else {
        String::new()
    };
    format!(
        "format = \"video\"\n{size}mime = \"{mime}\"\nduration = {seconds}\nvast = \"{vast}\"\n\
         adm = '<VAST version=\"{vast}\"><Ad id=\"{tag}\"><InLine><AdSystem>precis-bench</AdSystem>\
         <AdTitle>{tag}</AdTitle><Creatives><Creative><Linear><Duration>00:{:02}:{:02}</Duration>\
         <VideoClicks><ClickThrough>${{CLICK_URL}}</ClickThrough></VideoClicks><MediaFiles>\
         <MediaFile delivery=\"progressive\" type=\"{mime}\" width=\"640\" height=\"360\">\
         https://cdn.{domain}/{tag}.mp4</MediaFile></MediaFiles></Linear></Creative></Creatives>\
         </InLine></Ad></VAST>'\n",
        seconds / 60,
        seconds % 60,
    )
}

fn native(tag: &str, domain: &str) -> String {
    format!(
        "format = \"native\"\n\
         adm = '{{\"native\":{{\"ver\":\"1.2\",\"link\":{{\"url\":\"${{CLICK_URL}}\"}},\"assets\":[\
         {{\"id\":1,\"title\":{{\"text\":\"Offer {tag}\"}}}},\
         {{\"id\":2,\"img\":{{\"url\":\"https://cdn.{domain}/{tag}.jpg\",\"w\":1200,\"h\":627}}}}]}}}}'\n"
    )
}

fn creatives(rng: &mut Rng, id: &str, advertiser: usize) -> String {
    let domain = format!("adv{advertiser}.example");
    (1..=1 + rng.below(3))
        .map(|n| {
            let tag = format!("{id}-c{n}");
            format!(
                "[[creative]]\nid = \"c{n}\"\n{}landing = \"https://{domain}/offer?c={id}\"\n",
                creative_body(rng, &tag, &domain)
            )
        })
        .collect()
}

fn campaign_file(rng: &mut Rng, id: &str) -> String {
    let advertiser = rng.below(300);
    [
        header(rng, advertiser),
        pricing(rng),
        targeting(rng),
        creatives(rng, id, advertiser),
    ]
    .join("")
}

fn campaigns(rates: &Rates) -> Vec<Arc<Campaign>> {
    let mut rng = Rng(SEED);
    (0..CAMPAIGNS)
        .map(|n| {
            let id = format!("gen-{n}");
            let text = campaign_file(&mut rng, &id);
            let path = format!("{id}.toml");
            campaign::parse(&text, Path::new(&path), rates)
                .map(Arc::new)
                .unwrap_or_else(|e| panic!("generated campaign does not compile:\n{e}\n{text}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bid requests.

const APP_BANNER: &str = r#"{
  "id": "app-banner-1", "at": 1, "tmax": 120, "cur": ["USD"],
  "imp": [{"id": "1", "tagid": "home-bottom", "instl": 0, "secure": 1, "bidfloor": 0.35, "bidfloorcur": "USD",
           "banner": {"w": 320, "h": 50, "pos": 3, "api": [3, 5], "btype": [4]}}],
  "app": {"id": "app-77", "name": "Trail Tracker", "bundle": "com.example.trailtracker",
          "storeurl": "https://apps.apple.com/app/id123456789", "cat": ["IAB17", "IAB17-39"],
          "publisher": {"id": "pub-9", "name": "Example Apps"}},
  "device": {"ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
             "ip": "203.0.113.7", "devicetype": 4, "make": "Apple", "model": "iPhone15,2", "os": "iOS", "osv": "17.4",
             "connectiontype": 6, "ifa": "6d92078a-8246-4ba4-ae5b-76104861e7dc", "lmt": 0,
             "geo": {"type": 2, "country": "US", "region": "NY", "city": "New York", "lat": 40.73, "lon": -73.99}},
  "user": {"id": "u-5f3e", "yob": 1991, "gender": "F", "keywords": "travel,finance/investing",
           "data": [{"id": "dmp-1", "name": "Example DMP",
                     "segment": [{"id": "sports/outdoor/running"}, {"id": "auto/electric"}, {"name": "Pets/Dogs"}]}]},
  "regs": {"coppa": 0, "ext": {"gdpr": 0}}
}"#;

const DESKTOP_SITE: &str = r#"{
  "id": "site-multi-1", "at": 1, "tmax": 200, "cur": ["USD", "EUR"],
  "bcat": ["IAB25", "IAB26", "IAB7-39"], "badv": ["adv1.example", "adv2.example"],
  "imp": [{"id": "1", "tagid": "top", "bidfloor": 0.8, "banner": {"format": [{"w": 300, "h": 250}, {"w": 728, "h": 90}], "pos": 1}},
          {"id": "2", "tagid": "rail", "bidfloor": 0.5, "banner": {"w": 300, "h": 600, "pos": 3}}],
  "site": {"id": "site-12", "domain": "news.example.co.uk", "page": "https://news.example.co.uk/sport/running/marathon-guide",
           "cat": ["IAB17", "IAB12"], "sectioncat": ["IAB17-39"], "pagecat": ["IAB17-39"],
           "content": {"cat": ["IAB17"], "language": "en"}, "publisher": {"id": "pub-3"}},
  "device": {"ua": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
             "ip": "198.51.100.23", "devicetype": 2, "os": "Windows", "osv": "10", "connectiontype": 1, "language": "en",
             "geo": {"country": "GBR", "region": "ENG", "city": "London"}},
  "user": {"id": "u-81aa", "kwarray": ["sports", "travel/europe"]}
}"#;

const APP_VIDEO: &str = r#"{
  "id": "app-video-1", "at": 1, "tmax": 300, "cur": ["EUR", "USD"],
  "imp": [{"id": "1", "bidfloor": 1.5, "bidfloorcur": "EUR",
           "video": {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30, "protocols": [2, 3, 7],
                     "w": 640, "h": 360, "startdelay": 0, "placement": 1, "linearity": 1, "skip": 1}}],
  "app": {"bundle": "com.example.streamer", "cat": ["IAB1", "IAB1-6"], "content": {"cat": ["IAB1-5"]}},
  "device": {"devicetype": 4, "make": "Samsung", "model": "SM-S918B", "os": "Android", "osv": "14", "connectiontype": 2,
             "geo": {"country": "DE", "city": "Berlin", "lat": 52.52, "lon": 13.40}},
  "user": {"yob": 1984, "gender": "M", "keywords": "auto/suv, tech/gaming"}
}"#;

/// No campaign names Iceland and no creative is 123x45: the whole ranked list is scanned, nobody bids.
const NO_MATCH: &str = r#"{
  "id": "no-match-1", "at": 1,
  "imp": [{"id": "1", "bidfloor": 0.1, "banner": {"w": 123, "h": 45}}],
  "site": {"domain": "frettir.example.is", "cat": ["IAB12"]},
  "device": {"devicetype": 2, "os": "Linux", "geo": {"country": "ISL", "city": "Reykjavik"}}
}"#;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/openrtb-corpus/");
const CORPUS_FILES: &[&str] = &[
    "iab26__spec-6.2.1-simple-banner.json",
    "pbsgo__kargo-video.json",
];

/// One request body and what the stages before each benchmarked stage make of it.
struct Case {
    name: String,
    body: Vec<u8>,
    request: BidRequest,
    facts: Facts,
}

impl Case {
    fn new(name: &str, body: Vec<u8>, now: DateTime<Utc>) -> Case {
        let request = openrtb::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let facts = Facts::from_request(&request, now);
        Case {
            name: name.to_owned(),
            body,
            request,
            facts,
        }
    }
}

/// The requests above, then the corpus files that are present.
fn cases(now: DateTime<Utc>) -> Vec<Case> {
    let own = [
        ("app-banner-320x50", APP_BANNER),
        ("site-multi-format", DESKTOP_SITE),
        ("app-video", APP_VIDEO),
        ("no-match", NO_MATCH),
    ]
    .map(|(name, body)| Case::new(name, body.as_bytes().to_vec(), now));
    let corpus = CORPUS_FILES.iter().filter_map(|file| {
        let body = std::fs::read(format!("{CORPUS}{file}")).ok()?;
        Some(Case::new(file.trim_end_matches(".json"), body, now))
    });
    own.into_iter().chain(corpus).collect()
}

// ---------------------------------------------------------------------------------------------
// The bidder and the benchmarks.

/// What the server holds between requests: a ranked snapshot, the rates, its URLs and (here) a clock.
struct Bidder {
    ranked: Vec<Ranked>,
    rates: Rates,
    urls: Urls,
    keys: Keys,
    index: Index,
    pacer: Pacer,
    exposures: Exposures,
    now: DateTime<Utc>,
}

impl Bidder {
    fn new() -> Bidder {
        let rates = Rates::new([
            (Currency::parse("EUR").expect("EUR"), 0.92),
            (Currency::parse("GBP").expect("GBP"), 0.79),
        ]);
        // The files' priors: nothing has been learned in a bench.
        let ranked = auction::rank(campaigns(&rates), &rates, Ranked::from_file);
        Bidder {
            index: Index::build(&ranked),
            ranked,
            rates,
            urls: Urls {
                public: "http://127.0.0.1:8080".to_owned(),
            },
            keys: Keys::new(b"a bench secret of 32 bytes......", None).expect("a long secret"),
            pacer: Pacer::new(60, 10),
            exposures: Exposures::new(1_000_000, 60),
            now: NOW.parse().expect("NOW is a timestamp"),
        }
    }

    /// The auction, including signing each bid's event token.
    fn auction<'a>(&'a self, request: &'a BidRequest, facts: &Facts) -> Option<BidResponse<'a>> {
        let env = Env {
            rates: &self.rates,
            urls: &self.urls,
            keys: &self.keys,
            pacer: &self.pacer,
            exposures: &self.exposures,
        };
        auction::run(&self.ranked, Some(&self.index), request, facts, &env).map(|a| a.response)
    }

    /// The whole bid path as the server runs it: the answer body, or `None` for a 204.
    fn answer(&self, body: &[u8]) -> Option<Vec<u8>> {
        let request = openrtb::decode(body).ok()?;
        let facts = Facts::from_request(&request, self.now);
        self.auction(&request, &facts).map(|r| r.to_json())
    }

    /// Prints what each request gets, so a reader can see the bench does real work.
    fn report(&self, cases: &[Case]) {
        let dayparts: Vec<bool> = self
            .ranked
            .iter()
            .flat_map(|r| &r.campaign.targeting.include)
            .filter_map(|term| match term {
                Term::Schedule { week, tz } => Some(week.contains(self.now, *tz)),
                _ => None,
            })
            .collect();
        eprintln!(
            "bid_path: {} campaigns ranked; now = {NOW}, when {} of the {} dayparted ones run",
            self.ranked.len(),
            dayparts.iter().filter(|on| **on).count(),
            dayparts.len(),
        );
        let mut total = 0;
        let mut answered = 0;
        for case in cases {
            let matching = self
                .ranked
                .iter()
                .map(|r| &r.campaign)
                .filter(|c| c.in_flight(self.now) && c.targeting.matches(&case.facts))
                .count();
            let bids = self
                .auction(&case.request, &case.facts)
                .map_or_else(Vec::new, |r| {
                    r.seatbid[0]
                        .bid
                        .iter()
                        .map(|b| {
                            format!(
                                "imp {} -> {}/{} at {:.2} {}",
                                b.impid, b.cid, b.crid, b.price, r.cur
                            )
                        })
                        .collect()
                });
            total += bids.len();
            answered += usize::from(!bids.is_empty());
            eprintln!(
                "  {:<40} targeting matches {matching:>4}; {} bid(s) {}",
                case.name,
                bids.len(),
                bids.join(", ")
            );
        }
        eprintln!(
            "  {answered} of {} requests got a bid; {total} bids in all",
            cases.len()
        );
    }
}

/// One criterion group timing `routine` on every case, counted per request.
fn group<T>(c: &mut Criterion, name: &str, cases: &[Case], routine: impl Fn(&Case) -> T) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for case in cases {
        group.bench_function(&case.name, |b| b.iter(|| routine(black_box(case))));
    }
    group.finish();
}

fn bid_path(c: &mut Criterion) {
    let bidder = Bidder::new();
    let cases = cases(bidder.now);
    bidder.report(&cases);

    group(c, "decode", &cases, |case| openrtb::decode(&case.body));
    group(c, "facts", &cases, |case| {
        Facts::from_request(&case.request, bidder.now)
    });
    // The response borrows the request, so it is dropped (as the server drops it) inside the timing.
    group(c, "auction", &cases, |case| {
        bidder.auction(&case.request, &case.facts).is_some()
    });
    group(c, "full", &cases, |case| bidder.answer(&case.body));
}

criterion_group!(benches, bid_path);
criterion_main!(benches);
