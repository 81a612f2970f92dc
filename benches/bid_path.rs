//! The bid path, minus HTTP. Against 1,000 campaigns: how long one bid request takes to decode
//! (`decode`), to normalise into targeting facts (`facts`), to auction (`auction`), and all of it
//! end to end including the JSON answer (`full`), each per request body. At 1,000, 10,000 and
//! 100,000 campaigns (`scale`): finding the campaigns a request matches through the index
//! (`match/N`), the full path (`full/N`), both per request over a mix of generated visitors, and
//! building the index (`index-build/N`); the heap bytes each campaign holds (counted through the
//! allocator, the server's mimalloc) are printed. The slow paths fixed before (`hostile`): the full
//! path of an ordinary request and of the same request made hostile (a tag of 120,000 levels,
//! categories of 50,000 levels, a `badv` of 20,000 entries that blocks half the campaigns), each
//! body within the default body limit; what each costs as a multiple of the ordinary request is
//! printed. Reading the privacy signals (`privacy`): decoding and the facts of an app request, and
//! of the same under GDPR with a TCF v2 consent string that grants precis' vendor (parsed on every
//! request), with and without that vendor configured.
//!
//! The campaigns are the files `precis gen-campaigns` writes for a fixed seed (`precis_generate`'s
//! `Generator`, in memory), compiled with the real `campaign::file::parse` (`generate::compile`): real
//! places, taxonomy tags, every pricing model and creative format. The requests are hand-written,
//! from the corpus, and two generated visitors (`precis_generate::Visitor`); the clock is fixed,
//! so every run sees the same winners. Run with `cargo bench --bench bid_path`
//! (add `-- auction` to run one group, `-- --warm-up-time 1 --measurement-time 3` for a quick pass).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use precis::auction::response::BidResponse;
use precis::auction::{self, Env, NoBids, Urls};
use precis::audience::Library;
use precis::book::frequency::Exposures;
use precis::book::index::Index;
use precis::book::pacing::Pacer;
use precis::book::ranking::{self, Ranked};
use precis::campaign::Campaign;
use precis::campaign::pricing::{Currency, Rates};
use precis::campaign::targeting::Term;
use precis::generate;
use precis::request::facts::Facts;
use precis::request::openrtb::{self, BidRequest};
use precis::token::Keys;
use precis_generate::Generator;

/// The server's allocator, so that times are the server's, counting the bytes it holds.
#[global_allocator]
static ALLOCATOR: Counted = Counted(AtomicUsize::new(0));

/// mimalloc, and the bytes allocated through it that are not yet freed: what the bidder holds,
/// whatever the allocator keeps around it (resident memory would count pages mimalloc keeps
/// from the build's temporary allocations).
struct Counted(AtomicUsize);

// SAFETY: every call is passed on to mimalloc unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.0.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.0.fetch_add(new_size, Ordering::Relaxed);
        self.0.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Bytes the process holds on the heap now.
fn held() -> usize {
    ALLOCATOR.0.load(Ordering::Relaxed)
}

const CAMPAIGNS: usize = 1_000;
/// Campaign counts of the `scale` groups.
const SCALES: &[usize] = &[1_000, 10_000, 100_000];
/// Generated visitors each `scale` iteration answers, one after the other.
const MIX: usize = 32;
const SEED: u64 = 0x5eed_b1d5_0f0f_2026;
/// A Wednesday, 09:30 in New York, 15:30 in Berlin and 23:30 in Tokyo: of the dayparted campaigns
/// (which run in their markets' time zones) some are on and some are off.
const NOW: &str = "2026-03-04T14:30:00Z";

// ---------------------------------------------------------------------------------------------
// Campaign files: the library's generator (`precis gen-campaigns`), compiled in memory.

/// Campaigns `0..count` of the seed, some priced in EUR and GBP (the bench knows their rates).
fn campaigns(count: usize, rates: &Rates) -> Vec<Arc<Campaign>> {
    let generator = Generator::new(SEED).with_currencies(&["EUR", "GBP"]);
    generate::compile(&generator, count, rates)
        .unwrap_or_else(|e| panic!("a generated campaign does not compile:\n{e}"))
        .into_iter()
        .map(Arc::new)
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
  "user": {"id": "u-5f3e", "yob": 1991, "gender": "F", "keywords": "travel,finance/investing/stocks",
           "data": [{"id": "dmp-1", "name": "Example DMP",
                     "segment": [{"id": "sports/running/marathons"}, {"id": "automotive/electric-vehicles/charging"}, {"name": "Pets/Dogs"}]}]},
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
  "user": {"id": "u-81aa", "kwarray": ["sports", "travel/destinations/europe"]}
}"#;

const APP_VIDEO: &str = r#"{
  "id": "app-video-1", "at": 1, "tmax": 300, "cur": ["EUR", "USD"],
  "imp": [{"id": "1", "bidfloor": 1.5, "bidfloorcur": "EUR",
           "video": {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30, "protocols": [2, 3, 7],
                     "w": 640, "h": 360, "startdelay": 0, "placement": 1, "linearity": 1, "skip": 1}}],
  "app": {"bundle": "com.example.streamer", "cat": ["IAB1", "IAB1-6"], "content": {"cat": ["IAB1-5"]}},
  "device": {"devicetype": 4, "make": "Samsung", "model": "SM-S918B", "os": "Android", "osv": "14", "connectiontype": 2,
             "geo": {"country": "DE", "city": "Berlin", "lat": 52.52, "lon": 13.40}},
  "user": {"yob": 1984, "gender": "M", "keywords": "automotive/suv, gaming/console"}
}"#;

/// No campaign names Iceland and no creative is 123x45: the whole ranked list is scanned, nobody bids.
const NO_MATCH: &str = r#"{
  "id": "no-match-1", "at": 1,
  "imp": [{"id": "1", "bidfloor": 0.1, "banner": {"w": 123, "h": 45}}],
  "site": {"domain": "frettir.example.is", "cat": ["IAB12"]},
  "device": {"devicetype": 2, "os": "Linux", "geo": {"country": "ISL", "city": "Reykjavik"}}
}"#;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openrtb-corpus/"
);
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

/// Generated visitors (the request side of the generator) that the bench also times: with this
/// seed, one gets a bid and one matches a dozen campaigns of which none fits its slot.
const VISITORS: &[usize] = &[9, 14];

/// The requests above, then the corpus files that are present, then generated visitors.
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
    let generator = Generator::new(SEED);
    let visitors = VISITORS.iter().map(|&n| {
        let body = generator.visitor(n).bid_request(&format!("visitor-{n}"));
        Case::new(&format!("visitor-{n}"), body.into_bytes(), now)
    });
    own.into_iter().chain(corpus).chain(visitors).collect()
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
    audiences: Library,
    no_bids: NoBids,
    now: DateTime<Utc>,
}

fn rates() -> Rates {
    Rates::new([
        (Currency::parse("EUR").expect("EUR"), 0.92),
        (Currency::parse("GBP").expect("GBP"), 0.79),
    ])
}

impl Bidder {
    /// A bidder serving the first `count` generated campaigns.
    fn new(count: usize) -> Bidder {
        let rates = rates();
        // The files' priors: nothing has been learned in a bench.
        let ranked = ranking::rank(campaigns(count, &rates), &rates, Ranked::from_file);
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
            audiences: Library::default(),
            no_bids: NoBids::default(),
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
            audiences: &self.audiences,
            no_bids: &self.no_bids,
        };
        auction::run(&self.ranked, Some(&self.index), request, facts, &env)
            .ok()
            .map(|a| a.response)
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
    let bidder = Bidder::new(CAMPAIGNS);
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

/// The same request mix against 1k, 10k and 100k campaigns: what the index makes of scale.
fn scale(c: &mut Criterion) {
    let generator = Generator::new(SEED);
    let now: DateTime<Utc> = NOW.parse().expect("NOW is a timestamp");
    let mix: Vec<Case> = (0..MIX)
        .map(|n| {
            let body = generator.visitor(n).bid_request(&format!("visitor-{n}"));
            Case::new(&format!("visitor-{n}"), body.into_bytes(), now)
        })
        .collect();
    for &count in SCALES {
        let before = held();
        let bidder = Bidder::new(count);
        let bytes = held().saturating_sub(before);
        let markup: usize = bidder
            .ranked
            .iter()
            .flat_map(|r| &r.campaign.creatives)
            .map(|k| k.adm.len() + k.landing.len())
            .sum();
        let (candidates, matched): (usize, usize) = mix
            .iter()
            .map(|case| {
                let query = bidder.index.query(&case.facts);
                let matched = (query.candidates())
                    .filter(|&i| bidder.ranked[i].campaign.targeting.matches(&case.facts))
                    .count();
                (query.candidates().count(), matched)
            })
            .fold((0, 0), |(c, m), (c1, m1)| (c + c1, m + m1));
        let answered = mix
            .iter()
            .filter(|c| bidder.answer(&c.body).is_some())
            .count();
        eprintln!(
            "scale {count}: {} live; {:.0} B held per campaign beyond its markup (index {:.0} B \
             of it); a request of the mix has {:.1} candidates and matches {:.1} campaigns; \
             {answered} of {MIX} bid",
            bidder.ranked.len(),
            bytes.saturating_sub(markup) as f64 / count as f64,
            bidder.index.bytes() as f64 / count as f64,
            candidates as f64 / MIX as f64,
            matched as f64 / MIX as f64,
        );
        let mut group = c.benchmark_group("scale");
        group.throughput(Throughput::Elements(MIX as u64));
        group.bench_function(format!("match/{count}"), |b| {
            b.iter(|| {
                mix.iter()
                    .map(|case| {
                        (bidder.index.query(&case.facts).candidates())
                            .filter(|&i| {
                                let campaign = &bidder.ranked[i].campaign;
                                campaign.in_flight(now) && campaign.targeting.matches(&case.facts)
                            })
                            .count()
                    })
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("full/{count}"), |b| {
            b.iter(|| {
                mix.iter()
                    .filter(|case| bidder.answer(black_box(&case.body)).is_some())
                    .count()
            })
        });
        group.sample_size(10);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("index-build/{count}"), |b| {
            b.iter(|| Index::build(black_box(&bidder.ranked)))
        });
        group.finish();
    }
}

/// The default `[limits] max_body_bytes`: a hostile body the server would refuse is not one to time.
const MAX_BODY: usize = 256 * 1024;

/// The ordinary request ([`APP_BANNER`]) and the same request made hostile in one field each, as
/// the slow paths fixed before were found: a user tag of 120,000 levels (each ancestor was looked
/// up in the index: minutes per request), app categories of 50,000 levels (the most levels that fit
/// the body limit), a `badv` of 20,000 entries naming the advertisers of half the campaigns (each
/// blocked campaign walked the whole list: 0.4 s per request).
fn hostile_cases(bidder: &Bidder) -> Vec<Case> {
    let ordinary: serde_json::Value = serde_json::from_str(APP_BANNER).expect("APP_BANNER is JSON");
    let with = |pointer: &str, value: serde_json::Value| {
        let mut request = ordinary.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let parent = request.pointer_mut(parent).and_then(|p| p.as_object_mut());
        parent
            .expect("APP_BANNER has the parent")
            .insert(key.to_owned(), value);
        request
    };
    let blocked = (bidder.ranked.iter().step_by(2)).flat_map(|r| r.campaign.adomain.clone());
    let badv: Vec<String> = (0..20_000)
        .map(|i| format!("{i}.ex"))
        .chain(blocked)
        .collect();
    let cases = [
        ("ordinary", ordinary.clone()),
        (
            "tag-120000-levels",
            with("/user/keywords", vec!["a"; 120_000].join("/").into()),
        ),
        (
            "categories-50000-levels",
            with(
                "/app/cat",
                serde_json::json!([vec!["IAB1"; 50_000].join("-")]),
            ),
        ),
        ("badv-20000", with("/badv", badv.into())),
    ];
    cases
        .into_iter()
        .map(|(name, request)| {
            let body = request.to_string().into_bytes();
            assert!(body.len() <= MAX_BODY, "{name}: {} bytes", body.len());
            Case::new(name, body, bidder.now)
        })
        .collect()
}

/// The median time of the whole bid path on `body`, over rounds of about 20 ms each.
fn median_time(bidder: &Bidder, body: &[u8]) -> Duration {
    let once = Instant::now();
    black_box(bidder.answer(black_box(body)));
    let per_round =
        (Duration::from_millis(20).as_nanos() / once.elapsed().as_nanos().max(1)).max(1);
    let mut rounds: Vec<Duration> = (0..11)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(bidder.answer(black_box(body)));
            }
            start.elapsed() / per_round as u32
        })
        .collect();
    rounds.sort_unstable();
    rounds[rounds.len() / 2]
}

/// The full path of the ordinary request and of its hostile versions; each one's cost is printed as
/// a multiple of the ordinary request's, timed in the same run.
fn hostile(c: &mut Criterion) {
    let bidder = Bidder::new(CAMPAIGNS);
    let cases = hostile_cases(&bidder);
    let times: Vec<Duration> = (cases.iter())
        .map(|case| median_time(&bidder, &case.body))
        .collect();
    for (case, time) in cases.iter().zip(&times) {
        eprintln!(
            "hostile/{:<24} {:>7} B, {:>5} bid(s); {time:>10.1?}: {:.1}x the ordinary request",
            case.name,
            case.body.len(),
            bidder
                .auction(&case.request, &case.facts)
                .map_or(0, |r| r.seatbid[0].bid.len()),
            time.as_secs_f64() / times[0].as_secs_f64(),
        );
    }
    group(c, "hostile", &cases, |case| bidder.answer(&case.body));
}

/// A TCF v2 core segment consenting purposes 1, 3 and 4 and vendor 755 (`tests/privacy.rs`).
const CONSENT: &str = "CO5rKAAO5rKAAAHABBENCWEAALAAAAAAAAogF5wAQF5gAAAA";

/// Decoding and the facts of [`APP_BANNER`] as it is, and under GDPR with [`CONSENT`]: with
/// precis' vendor 755 (personal data allowed), and with another (withheld).
fn privacy(c: &mut Criterion) {
    let now: DateTime<Utc> = NOW.parse().expect("NOW is a timestamp");
    let plain: serde_json::Value = serde_json::from_str(APP_BANNER).expect("APP_BANNER is JSON");
    let mut gdpr = plain.clone();
    gdpr["regs"] = serde_json::json!({ "gdpr": 1 });
    gdpr["user"]["consent"] = CONSENT.into();
    let mut group = c.benchmark_group("privacy");
    for (name, request, vendor) in [
        ("plain", &plain, Some(755)),
        ("gdpr-consented", &gdpr, Some(755)),
        ("gdpr-withheld", &gdpr, Some(7)),
    ] {
        let body = request.to_string().into_bytes();
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = openrtb::decode(black_box(&body)).expect("a bid request");
                black_box(Facts::from_request_as(&request, now, vendor))
            })
        });
    }
}

criterion_group!(benches, bid_path, scale, hostile, privacy);
criterion_main!(benches);
