//! Fuzz target `bid_request`: a request body through the whole bid path, as the server runs it.
//!
//! Owns: decode → Facts → the auction twice, once through the index and once over every campaign
//! (the index's oracle), each with its own pacing and frequency state fed the same history, so
//! budgets run out, pacing throttles and caps bite exactly alike in both; then the response
//! encoder, and every bid's event token opened again. It asserts the two auctions agree, the
//! response is JSON with one bid per claim, and each token says what the bid says. It must never
//! touch disk or the network after start-up (it reads `campaigns/` once).
//!
//! The campaigns are the examples in `campaigns/` plus two with tiny budgets and frequency caps
//! that outbid them, so spend limits and caps are reached within a few inputs. Simulated time moves
//! forward with every input (days roll, weekly caps reset); after 30 days the state starts over.
#![no_main]

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use precis::auction::{self, Env, NoBids, Urls};
use precis::audience::Library;
use precis::book::frequency::Exposures;
use precis::book::index::Index;
use precis::book::pacing::Pacer;
use precis::book::ranking::{self, Ranked};
use precis::campaign::pricing::{Currency, Rates};
use precis::campaign::{self, Campaign};
use precis::measure::recorder::spend_usd;
use precis::request::facts::Facts;
use precis::request::openrtb::decode;
use precis::token::{Claims, Keys, Purpose};
use precis_fuzz::clipped;

const START: &str = "2026-12-01T06:00:00Z";
const RESTART_AFTER_DAYS: i64 = 30;
const TOKEN_TTL_SECS: u32 = 86_400;

/// A campaign on every shape with a tiny budget and a frequency cap, priced to outbid the examples.
fn tight(currency: &str, cpm: f64, budget: &str, frequency: &str) -> String {
    format!(
        "adomain = [\"tight.example\"]\n[pricing]\nmodel = \"cpm\"\ncurrency = \"{currency}\"\n\
         cpm = {cpm}\n[budget]\n{budget}\n[frequency]\n{frequency}\n{CREATIVES}"
    )
}

/// Every shape, so any imp can go to the tight campaigns.
const CREATIVES: &str = r#"
[[creative]]
id = "mrec"
format = "banner"
w = 300
h = 250
adm = "<a href='${CLICK_URL}'><img src='${IMP_URL}'></a>"
landing = "https://tight.example/"
[[creative]]
id = "spot"
format = "video"
mime = "video/mp4"
duration = 15
vast = "4.0"
adm = "<VAST version='4.0'/>"
landing = "https://tight.example/"
[[creative]]
id = "card"
format = "native"
adm = "{}"
landing = "https://tight.example/"
"#;

/// One auction's state: its own pacer and frequency counts, and campaigns ranked with its accounts.
struct World {
    pacer: Pacer,
    exposures: Exposures,
    ranked: Vec<Ranked>,
}

impl World {
    fn new(campaigns: &[Arc<Campaign>], rates: &Rates) -> World {
        let pacer = Pacer::new(60, 10);
        let ranked = ranking::rank(campaigns.iter().cloned(), rates, |c| Ranked {
            account: pacer.account_for(&c),
            ..Ranked::from_file(c)
        });
        World {
            pacer,
            exposures: Exposures::new(10_000, 60),
            ranked,
        }
    }
}

struct Fixture {
    campaigns: Vec<Arc<Campaign>>,
    rates: Rates,
    keys: Keys,
    urls: Urls,
    index: Index,
    indexed: World,
    plain: World,
    now: DateTime<Utc>,
}

impl Fixture {
    fn new() -> Fixture {
        let rates = Rates::new(
            [("EUR", 0.86), ("GBP", 0.76), ("CNY", 7.1), ("JPY", 155.0)]
                .map(|(c, r)| (Currency::parse(c).expect("a currency code"), r)),
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns");
        let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("the campaigns/ folder")
            .map(|entry| {
                let path = entry.expect("a directory entry").path();
                let text = std::fs::read_to_string(&path).expect("a campaign file");
                (path.display().to_string(), text)
            })
            .collect();
        // Four impressions a day, two per user a day; and evenly paced, three per user a week.
        let asap = "daily = 0.2\npacing = \"asap\"";
        let asap = tight("USD", 50.0, asap, "impressions = 2\nper = \"day\"");
        let even = "daily = 1.0\ntotal = 20.0\npacing = \"even\"";
        let even = tight("EUR", 40.0, even, "impressions = 3\nper = \"week\"");
        sources.push(("fuzz-tight-asap.toml".into(), asap));
        sources.push(("fuzz-tight-even.toml".into(), even));
        let campaigns: Vec<Arc<Campaign>> = sources
            .iter()
            .map(|(path, text)| {
                let parsed = campaign::file::parse(text, Path::new(path), &rates);
                Arc::new(parsed.unwrap_or_else(|e| panic!("{e}")))
            })
            .collect();
        let indexed = World::new(&campaigns, &rates);
        let plain = World::new(&campaigns, &rates);
        Fixture {
            index: Index::build(&indexed.ranked),
            campaigns,
            keys: Keys::new(b"the fuzzing secret, 32 bytes....", None).expect("a long secret"),
            urls: Urls {
                public: "http://127.0.0.1:8080".into(),
            },
            rates,
            indexed,
            plain,
            now: START.parse().expect("a timestamp"),
        }
    }

    /// Moves simulated time on, and starts over (fresh budgets and caps) after a month.
    fn tick(&mut self, minutes: i64) {
        self.now += Duration::minutes(minutes);
        let start: DateTime<Utc> = START.parse().expect("a timestamp");
        if self.now - start > Duration::days(RESTART_AFTER_DAYS) {
            self.indexed = World::new(&self.campaigns, &self.rates);
            self.plain = World::new(&self.campaigns, &self.rates);
            self.now = start;
        }
        for world in [&self.indexed, &self.plain] {
            world.pacer.sweep(self.now);
            world.exposures.sweep(self.now);
        }
    }
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

/// What a bid is, without the bid id (each auction numbers its own bids).
type Outcome = Vec<(String, String, String, u64, Option<u32>, Option<u32>)>;

fuzz_target!(|data: &[u8]| {
    let mut fixture = FIXTURE.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = fixture.get_or_insert_with(Fixture::new);
    // The input's length sets the step, so seeds stay plain JSON bodies.
    fixture.tick((data.len() % 120) as i64);
    let Ok(request) = decode(data) else {
        return;
    };
    let facts = Facts::from_request(&request, fixture.now);
    // Even pacing draws at random: both auctions draw the same numbers.
    let seed = fastrand::u64(..);
    let run = |world: &World, index: Option<&Index>| -> Outcome {
        fastrand::seed(seed);
        let env = Env {
            rates: &fixture.rates,
            urls: &fixture.urls,
            keys: &fixture.keys,
            pacer: &world.pacer,
            exposures: &world.exposures,
            // Packages are checked on the index's survivors like any residual term; the oracle
            // test in src/auction.rs covers them with real packages.
            audiences: &Library::default(),
            no_bids: &NoBids::default(),
        };
        let Ok(auctioned) = auction::run(&world.ranked, index, &request, &facts, &env) else {
            return Vec::new();
        };
        check_response(&auctioned, fixture);
        settle(world, &auctioned.claims, fixture);
        let bids = &auctioned.response.seatbid[0].bid;
        bids.iter()
            .map(|b| {
                let (imp, cid, crid) = (b.impid.to_owned(), b.cid.to_owned(), b.crid.to_owned());
                (imp, cid, crid, b.price.to_bits(), b.w, b.h)
            })
            .collect()
    };
    let with_index = run(&fixture.indexed, Some(&fixture.index));
    let without = run(&fixture.plain, None);
    assert_eq!(
        with_index, without,
        "the index changed the auction's answer"
    );
});

/// The encoded response is JSON with a bid per claim, and each bid's token says what it bid.
fn check_response(auctioned: &auction::Auctioned, fixture: &Fixture) {
    let json: serde_json::Value =
        serde_json::from_slice(&auctioned.response.to_json()).expect("the response is JSON");
    let bids = &auctioned.response.seatbid[0].bid;
    assert_eq!(
        json["seatbid"][0]["bid"].as_array().map(Vec::len),
        Some(bids.len())
    );
    assert_eq!(bids.len(), auctioned.claims.len());
    let now = u32::try_from(fixture.now.timestamp()).expect("a 32-bit time");
    for (bid, claims) in bids.iter().zip(&auctioned.claims) {
        assert!(
            bid.price.is_finite() && bid.price > 0.0,
            "price {}",
            bid.price
        );
        for (url, purpose) in [(bid.nurl(), Purpose::Win), (bid.burl(), Purpose::Bill)] {
            let (_, query) = url.split_once('?').expect("an event URL has a query");
            let token = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "t")
                .expect("an event URL has a token")
                .1;
            let opened = fixture.keys.verify(&token, now, TOKEN_TTL_SECS, purpose);
            let expected = Claims {
                purpose,
                ..clipped(claims)
            };
            assert_eq!(opened, Ok(expected), "the token of {url}");
        }
    }
}

/// Every bid wins and is shown: spend and exposures count, as the win and impression events would.
fn settle(world: &World, claims: &[Claims], fixture: &Fixture) {
    for claim in claims {
        let Some(campaign) = fixture.campaigns.iter().find(|c| c.id == claim.campaign) else {
            continue;
        };
        let spend = spend_usd(claim.bid_price, &claim.cur, &fixture.rates);
        let now = fixture.now;
        world
            .pacer
            .settle(&claim.bid, &campaign.id, campaign.timezone, spend, now);
        if let Some(user) = claim.user {
            world.exposures.shown(user, campaign, now);
        }
    }
}
