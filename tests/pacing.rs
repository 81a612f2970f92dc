//! Budgets, pacing and frequency caps in a simulated market, end to end: the real bidder runs on a
//! simulated clock (`--simulate-from`) and the test plays the exchange (bid requests from simulated
//! users, auctions won or lost by a seeded coin, win and billing notices at a clearing price below
//! the bid), the browser and the advertiser. The clock moves only when the test moves it
//! (`POST /admin/clock`), so a whole day of traffic runs in seconds and nothing depends on how fast
//! the machine is: there are no sleeps and no timing assertions.
//!
//! What is asserted is what advertisers and operators rely on: a budget is never overspent by more
//! than one bid however many requests arrive at once, and the next campaign takes over when it is
//! spent; even pacing gives each running hour of the day its share and none to the hours the
//! campaign does not run; spend and caps survive a restart; a cap holds per user and per local day.
//! Each test prints its measured figures (`cargo test --test pacing -- --nocapture`). Every random
//! draw comes from one seed ([`seed`]): the exchange's coin and the bidder's pacing draws
//! (`--pacing-seed`); failures name it, and `PACING_SEED=N` runs the simulations with another.

#[allow(dead_code)]
mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::task::Poll;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use common::{
    Campaign, Server, Setup, advance, at, bids, local, markup_link, price_of, rfc3339, str_of,
};
use hyper::StatusCode;
use serde_json::{Value, json};

/// The macro an exchange replaces with the clearing price.
const AUCTION_PRICE: &str = "${AUCTION_PRICE}";

/// Signs event tokens, so that notices of bids made before a restart are still accepted after it.
const SECRET: &str = "pacing-simulation-secret-0123456789";

/// The share of the bid price the exchange clears wins at.
const CLEARING: f64 = 0.8;

/// The seed of a simulation when `PACING_SEED` does not give one.
const SEED: u64 = 25;

/// The seed of every random draw of a simulation: `PACING_SEED`, else [`SEED`].
fn seed() -> u64 {
    match std::env::var("PACING_SEED") {
        Ok(seed) => seed
            .parse()
            .unwrap_or_else(|_| panic!("PACING_SEED={seed} is not a whole number")),
        Err(_) => SEED,
    }
}

/// A bidder on a simulated clock standing at `start`, with a fixed events secret (so notices of
/// bids made before a restart are accepted after it) and its pacing draws seeded by [`seed`].
fn simulated(start: DateTime<Utc>) -> Setup {
    Server::setup()
        .env("PRECIS_SECRET", SECRET)
        .arg("--simulate-from")
        .arg(&rfc3339(start))
        .arg("--pacing-seed")
        .arg(&seed().to_string())
}

/// A campaign file with a `[budget]` table of these lines.
fn with_budget(campaign: Campaign, lines: &str) -> String {
    format!("{}\n[budget]\n{lines}\n", campaign.toml())
}

/// A simulated bidder serving `capped` (with `[frequency]` `lines`) as file `name`, and as file
/// `fallback` an uncapped 1.00 CPM campaign that takes the imps `capped` steps aside from.
fn beside_a_fallback(
    start: DateTime<Utc>,
    name: &str,
    capped: Campaign,
    lines: &str,
    fallback: &str,
) -> Server {
    simulated(start)
        .campaign(name, with_frequency(capped, lines))
        .campaign(fallback, Campaign::cpm(1.0).banner(300, 250))
        .start()
}

/// A campaign file with a `[frequency]` table of these lines.
fn with_frequency(campaign: Campaign, lines: &str) -> String {
    format!("{}\n[frequency]\n{lines}\n", campaign.toml())
}

/// A bid request for one 300x250 banner, from `user` when there is one.
fn bid_request(id: &str, user: Option<&str>) -> Value {
    let mut request = json!({ "id": id, "imp": [{ "id": "1", "banner": { "w": 300, "h": 250 } }] });
    if let Some(user) = user {
        request["user"] = json!({ "id": user });
    }
    request
}

/// A campaign's `budget` in `/status`.
async fn budget(server: &Server, id: &str) -> Value {
    let status = server.status().await;
    let campaign = status["campaigns"]
        .as_array()
        .and_then(|campaigns| campaigns.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("campaign {id} is not live: {status}"));
    campaign["budget"].clone()
}

/// A figure of a campaign's `budget` in `/status`, e.g. `spent_today`.
async fn budget_figure(server: &Server, id: &str, figure: &str) -> f64 {
    let budget = budget(server, id).await;
    budget[figure]
        .as_f64()
        .unwrap_or_else(|| panic!("no `{figure}` in the budget of {id}: {budget}"))
}

/// `precis_candidates_stepped_aside_total{reason="..."}`.
async fn stepped_aside(server: &Server, reason: &str) -> f64 {
    server
        .metric(&format!(
            "precis_candidates_stepped_aside_total{{reason=\"{reason}\"}}"
        ))
        .await
}

/// Runs `job(0)` … `job(count - 1)`, `width` of them in flight at once, in this task (so jobs may
/// borrow the server and the books).
async fn in_flight<F, Fut>(width: usize, count: usize, job: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let next = Cell::new(0);
    let worker = || async {
        loop {
            let i = next.get();
            if i >= count {
                break;
            }
            next.set(i + 1);
            job(i).await;
        }
    };
    let mut workers: Vec<_> = (0..width).map(|_| Box::pin(worker())).collect();
    std::future::poll_fn(|cx| {
        workers.retain_mut(|worker| worker.as_mut().poll(cx).is_pending());
        if workers.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// One bid as the exchange got it.
#[derive(Debug, Clone)]
struct Bid {
    cid: String,
    price: f64,
    /// `nurl` and `burl`, with the price macro still in them.
    nurl: String,
    burl: String,
    adm: String,
}

/// The simulated exchange: numbers its requests and decides its auctions with a coin seeded by
/// [`seed`].
struct Exchange {
    rng: RefCell<fastrand::Rng>,
    requests: Cell<u64>,
}

impl Exchange {
    fn new() -> Exchange {
        Exchange {
            rng: RefCell::new(fastrand::Rng::with_seed(seed())),
            requests: Cell::new(0),
        }
    }

    /// Sends a bid request from `user` (a distinct request id each): the bid, if any.
    async fn offer(&self, server: &Server, user: Option<&str>) -> Option<Bid> {
        let n = self.requests.get();
        self.requests.set(n + 1);
        let response = server.bid(&bid_request(&format!("req-{n}"), user)).await?;
        let bids = bids(&response);
        assert_eq!(bids.len(), 1, "one imp, one bid: {response}");
        let bid = &bids[0];
        Some(Bid {
            cid: str_of(bid, "cid").to_owned(),
            price: price_of(bid),
            nurl: str_of(bid, "nurl").to_owned(),
            burl: str_of(bid, "burl").to_owned(),
            adm: str_of(bid, "adm").to_owned(),
        })
    }

    /// Whether a bid wins its auction, with probability `p`.
    fn wins(&self, p: f64) -> bool {
        self.rng.borrow_mut().f64() < p
    }

    /// Fires the bid's win notice at [`CLEARING`] of its price (in micro-units, never above the
    /// bid) and checks it is accepted: the clearing CPM the bidder accepted.
    async fn win(&self, server: &Server, bid: &Bid) -> f64 {
        let price = format!("{:.6}", (bid.price * CLEARING * 1e6).floor() / 1e6);
        let (status, _, body) = server
            .get(&local(&bid.nurl.replace(AUCTION_PRICE, &price)))
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "win at {price} of {bid:?}: {}",
            String::from_utf8_lossy(&body)
        );
        price.parse().expect("a number")
    }

    /// Fires the bid's billing notice (the impression) at `price` and checks the pixel comes back.
    async fn show(&self, server: &Server, bid: &Bid, price: f64) {
        let url = bid.burl.replace(AUCTION_PRICE, &format!("{price:.6}"));
        let (status, headers, body) = server.get(&local(&url)).await;
        assert_eq!(status, StatusCode::OK, "imp of {bid:?}: {body:?}");
        assert_eq!(headers["content-type"], "image/gif");
    }

    /// Wins the bid and shows it: the clearing CPM.
    async fn win_and_show(&self, server: &Server, bid: &Bid) -> f64 {
        let price = self.win(server, bid).await;
        self.show(server, bid, price).await;
        price
    }

    /// Sends requests one at a time, winning each bid at once, until one gets no bid: how many
    /// bids were made.
    async fn win_until_no_bid(&self, server: &Server) -> u64 {
        for made in 0..100 {
            let Some(bid) = self.offer(server, None).await else {
                return made;
            };
            self.win(server, &bid).await;
        }
        panic!("still bidding after 100 bids won: the budget never ran out");
    }
}

/// What one campaign got from the exchange.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    bids: u64,
    wins: u64,
    /// The accepted clearing prices / 1000: what the campaign spent, USD.
    spend: f64,
}

/// The exchange's books: per campaign, and the requests that got no bid.
#[derive(Debug, Default, Clone)]
struct Books {
    campaigns: BTreeMap<String, Tally>,
    no_bids: u64,
}

impl Books {
    fn of(&self, cid: &str) -> Tally {
        self.campaigns.get(cid).copied().unwrap_or_default()
    }
}

/// `precis report --by campaign`: each campaign's spend, from the event log.
fn logged_spend(server: &Server) -> BTreeMap<String, f64> {
    server
        .report("campaign")
        .iter()
        .map(|row| {
            (
                str_of(row, "campaign").to_owned(),
                row["media_cost"].as_f64().expect("a media cost"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_budget_is_never_overspent_under_load_and_the_next_campaign_takes_over() {
    const TOTAL: f64 = 2.0;
    /// A's bid, the most one bid can spend: 3.00 CPM.
    const MAX_BID: f64 = 3.0 / 1000.0;
    const ROUNDS: i64 = 20;
    const PER_ROUND: usize = 1_000;
    const WIDTH: usize = 12;
    let start = at("2026-11-23T09:00:00Z");
    let mut server = simulated(start)
        .config("[pacing]\nhold_secs = 5\n")
        .campaign(
            "a.toml",
            with_budget(
                Campaign::cpm(3.0).banner(300, 250),
                "total = 2.0\npacing = \"asap\"",
            ),
        )
        .campaign("b.toml", Campaign::cpm(1.0).banner(300, 250))
        .start();
    let exchange = Exchange::new();
    let books = RefCell::new(Books::default());
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        // Rounds 10 s apart: the reservations of the last round's lost bids (5 s) are released.
        advance(&server, start + Duration::seconds(10 * round)).await;
        let before = books.borrow().clone();
        in_flight(WIDTH, PER_ROUND, |n| {
            let (exchange, server, books) = (&exchange, &server, &books);
            async move {
                let user = format!("user-{}", n % 700);
                let Some(bid) = exchange.offer(server, Some(&user)).await else {
                    books.borrow_mut().no_bids += 1;
                    return;
                };
                books
                    .borrow_mut()
                    .campaigns
                    .entry(bid.cid.clone())
                    .or_default()
                    .bids += 1;
                if exchange.wins(0.5) {
                    let price = exchange.win(server, &bid).await;
                    let mut books = books.borrow_mut();
                    let tally = books.campaigns.get_mut(&bid.cid).expect("its bid counted");
                    tally.wins += 1;
                    tally.spend += price / 1000.0;
                }
            }
        })
        .await;
        let after = books.borrow().clone();
        let (a, b) = (after.of("a"), after.of("b"));
        let (a0, b0) = (before.of("a"), before.of("b"));
        println!(
            "round {round:2}: A {:4} bids {:4} wins, spent {:.4} of {TOTAL}; B {:4} bids; no bid {}",
            a.bids - a0.bids,
            a.wins - a0.wins,
            a.spend,
            b.bids - b0.bids,
            after.no_bids - before.no_bids,
        );
        rounds.push((a.bids - a0.bids, b.bids - b0.bids));
    }
    // Past the last holds: everything A reserved is either spent or released.
    advance(&server, start + Duration::seconds(10 * ROUNDS)).await;

    let books = books.into_inner();
    let (a, b) = (books.of("a"), books.of("b"));
    let status = budget(&server, "a").await;
    let spent_total = status["spent_total"].as_f64().expect("spent_total");
    let out_of_budget = stepped_aside(&server, "out_of_budget").await;
    let holds = server.metric("precis_budget_holds").await;
    println!(
        "{} requests, {WIDTH} in flight: A {} bids, {} wins, spent {:.6} (tally) / {spent_total:.6} \
         (/status) of {TOTAL}; B {} bids, {} wins, spent {:.4}; no bid {}; out_of_budget {out_of_budget}",
        ROUNDS as usize * PER_ROUND,
        a.bids,
        a.wins,
        a.spend,
        b.bids,
        b.wins,
        b.spend,
        books.no_bids,
    );
    let seed = seed();
    assert!(
        a.spend <= TOTAL + MAX_BID,
        "A spent {} of {TOTAL} (seed {seed})",
        a.spend
    );
    assert!(
        spent_total <= TOTAL + MAX_BID,
        "/status says A spent {spent_total} of {TOTAL}"
    );
    assert!(
        (spent_total - a.spend).abs() < 1e-6,
        "/status says A spent {spent_total}, the exchange charged {}",
        a.spend
    );
    assert!(
        a.spend >= 0.9 * TOTAL,
        "A spent only {} of {TOTAL} (seed {seed})",
        a.spend
    );
    assert_eq!(status["held"].as_f64(), Some(0.0), "{status}");
    assert_eq!(holds, 0.0, "reservations left after every hold expired");
    // B has no budget: every request got a bid, A's while it could, B's after.
    assert_eq!(books.no_bids, 0, "requests without a bid");
    let (last_a, last_b) = *rounds.last().expect("rounds");
    assert_eq!(
        (last_a, last_b),
        (0, PER_ROUND as u64),
        "the last round, A being out of budget, goes to B (seed {seed}): {rounds:?}"
    );
    assert!(out_of_budget > 0.0, "out_of_budget {out_of_budget}");

    // The event log says the same.
    server.stop().await;
    let logged = logged_spend(&server);
    println!("logged spend: {logged:?}");
    for (cid, tally) in [("a", a), ("b", b)] {
        let spend = logged.get(cid).copied().unwrap_or_default();
        assert!(
            (spend - tally.spend).abs() < 1e-6,
            "the log says {cid} spent {spend}, the exchange charged {}",
            tally.spend
        );
    }
}

#[tokio::test]
async fn even_pacing_spreads_the_daily_budget_over_a_simulated_day_and_a_restart_keeps_spend() {
    const DAILY: f64 = 7.0;
    /// The bid: 2.00 CPM.
    const MAX_BID: f64 = 2.0 / 1000.0;
    /// Requests a simulated minute: all of them could spend 20 × 0.5 × 0.0016 = 0.016 a minute,
    /// 21.12 over the 22 running hours, three times the budget.
    const PER_MINUTE: usize = 20;
    const WIDTH: usize = 4;
    /// Off from 06:00 to 08:00 local time.
    const OFF: std::ops::Range<usize> = 6..8;
    const RUNNING_HOURS: f64 = 22.0;
    // Midnight in Tokyo (UTC+9 all year): the campaign's day, and the simulation's.
    let midnight = at("2026-11-22T15:00:00Z");
    let campaign = Campaign::cpm(2.0)
        .top("timezone = \"Asia/Tokyo\"")
        .target("hours = [[0, 6], [8, 24]]")
        .banner(300, 250);
    let mut server = simulated(midnight)
        .config("[pacing]\nhold_secs = 30\nstep_secs = 60\n")
        .campaign(
            "paced.toml",
            with_budget(campaign, "daily = 7.0\npacing = \"even\""),
        )
        .start();
    let exchange = Exchange::new();
    // Per local hour: bids, and the spend of the wins the bidder accepted.
    let hourly = RefCell::new([Tally::default(); 24]);
    for minute in 0..24 * 60 {
        let now = midnight + Duration::minutes(minute as i64);
        advance(&server, now).await;
        if minute == 12 * 60 {
            // Noon: a graceful stop, and a start on the same event log at the same time.
            let tallied: f64 = hourly.borrow().iter().map(|h| h.spend).sum();
            let before = budget_figure(&server, "paced", "spent_today").await;
            server
                .restart_with_flag("--simulate-from", &rfc3339(now))
                .await;
            advance(&server, now).await;
            let after = budget_figure(&server, "paced", "spent_today").await;
            println!(
                "restart at 12:00: spent_today {before:.6} before, {after:.6} after; the exchange charged {tallied:.6}"
            );
            assert!(
                (before - tallied).abs() < 1e-6,
                "/status says {before} spent today, the exchange charged {tallied}"
            );
            assert!(
                (after - before).abs() < 1e-6,
                "spent_today {before} before the restart, {after} after"
            );
        }
        if minute == 18 * 60 {
            // /status shows the line: by 18:00, 16 of the 22 running hours have passed.
            let line = budget_figure(&server, "paced", "pacing_line").await;
            let straight = DAILY * 16.0 / RUNNING_HOURS;
            assert!(
                (line - straight).abs() < 0.25 * straight,
                "the line at 18:00 is {line}, a straight one {straight}"
            );
        }
        let hour = minute / 60;
        in_flight(WIDTH, PER_MINUTE, |n| {
            let (exchange, server, hourly) = (&exchange, &server, &hourly);
            async move {
                let user = format!("user-{}", (minute * PER_MINUTE + n) % 5_000);
                let Some(bid) = exchange.offer(server, Some(&user)).await else {
                    return;
                };
                assert_eq!(bid.cid, "paced");
                hourly.borrow_mut()[hour].bids += 1;
                if exchange.wins(0.5) {
                    let price = exchange.win(server, &bid).await;
                    let mut hourly = hourly.borrow_mut();
                    hourly[hour].wins += 1;
                    hourly[hour].spend += price / 1000.0;
                }
            }
        })
        .await;
    }
    let spent_today = budget_figure(&server, "paced", "spent_today").await;
    let throttled = stepped_aside(&server, "throttled").await;
    let hourly = hourly.into_inner();
    let day: f64 = hourly.iter().map(|h| h.spend).sum();
    let share = DAILY / RUNNING_HOURS;
    println!(
        "{} requests over the day; daily {DAILY}, share of a running hour {share:.4}",
        24 * 60 * PER_MINUTE
    );
    println!("hour  bids  wins   spend  vs share");
    for (hour, h) in hourly.iter().enumerate() {
        let versus = if OFF.contains(&hour) {
            "off".to_owned()
        } else {
            format!("{:+.1}%", (h.spend / share - 1.0) * 100.0)
        };
        println!(
            "{hour:02}   {:4}  {:4}  {:.4}  {versus:>7}",
            h.bids, h.wins, h.spend
        );
    }
    println!(
        "day: spent {day:.6} (tally) / {spent_today:.6} (/status) of {DAILY}; throttled {throttled}"
    );
    let seed = seed();
    for (hour, h) in hourly.iter().enumerate() {
        if OFF.contains(&hour) {
            assert_eq!(*h, Tally::default(), "hour {hour} is off: {hourly:?}");
        } else {
            assert!(
                (h.spend - share).abs() <= 0.1 * share,
                "hour {hour} spent {:.4}, its share is {share:.4} (seed {seed}): {hourly:?}",
                h.spend
            );
        }
    }
    assert!(
        day <= DAILY + MAX_BID,
        "the day spent {day} of {DAILY} (seed {seed})"
    );
    assert!(
        (spent_today - day).abs() < 1e-6,
        "/status says {spent_today} spent today, the exchange charged {day}"
    );
    assert!(throttled > 0.0, "throttled {throttled} (seed {seed})");

    // The event log, summed per UTC hour by `precis report`, says the same hour by hour.
    server.stop().await;
    let mut logged = [0.0; 24];
    for row in server.report("hour") {
        let hour = NaiveDateTime::parse_from_str(
            &format!("{}:00", str_of(&row, "hour")),
            "%Y-%m-%dT%H:%M",
        )
        .unwrap_or_else(|e| panic!("an hour ({e}): {row}"))
        .and_utc();
        let local = (hour - midnight).num_hours();
        assert!((0..24).contains(&local), "a row outside the day: {row}");
        logged[local as usize] += row["media_cost"].as_f64().expect("a media cost");
    }
    for (hour, (logged, h)) in logged.iter().zip(&hourly).enumerate() {
        assert!(
            (logged - h.spend).abs() < 1e-6,
            "local hour {hour}: the log says {logged}, the exchange charged {}",
            h.spend
        );
    }
    println!("precis report --by hour agrees with the exchange's books for all 24 hours");
}

#[tokio::test]
async fn a_frequency_cap_holds_per_user_and_across_a_restart() {
    const USERS: usize = 50;
    const REQUESTS: usize = 10;
    const CAP: u64 = 3;
    // 09:00 in New York (UTC-5 in November): its day ends at 05:00 UTC.
    let start = at("2026-11-23T14:00:00Z");
    let capped = Campaign::cpm(2.0)
        .top("timezone = \"America/New_York\"")
        .banner(300, 250);
    let mut server = beside_a_fallback(
        start,
        "c.toml",
        capped,
        "impressions = 3\nper = \"day\"",
        "d.toml",
    );
    let exchange = Exchange::new();
    let user = |u: usize| format!("user-{u:02}");
    // Per user: the campaigns of the bids they got, each won and shown.
    let seen = RefCell::new(BTreeMap::<String, Vec<String>>::new());
    let round_of = async |users: &[String]| {
        in_flight(10, users.len(), |u| {
            let (exchange, server, seen) = (&exchange, &server, &seen);
            async move {
                let bid = exchange
                    .offer(server, Some(&users[u]))
                    .await
                    .unwrap_or_else(|| panic!("no bid for {}", users[u]));
                exchange.win_and_show(server, &bid).await;
                seen.borrow_mut()
                    .entry(users[u].clone())
                    .or_default()
                    .push(bid.cid);
            }
        })
        .await;
    };
    let everyone: Vec<String> = (0..USERS).map(user).collect();
    // Ten rounds a simulated minute apart: every user once a round.
    for round in 0..REQUESTS {
        advance(&server, start + Duration::minutes(round as i64)).await;
        round_of(&everyone).await;
    }
    let seen = seen.into_inner();
    assert_eq!(seen.len(), USERS, "{seen:?}");
    let count = |cids: &[String], cid: &str| cids.iter().filter(|c| *c == cid).count() as u64;
    for (user, cids) in &seen {
        assert_eq!(
            (count(cids, "c"), count(cids, "d")),
            (CAP, REQUESTS as u64 - CAP),
            "{user} got {cids:?}"
        );
    }
    let shown_c: u64 = seen.values().map(|cids| count(cids, "c")).sum();
    let capped_count = stepped_aside(&server, "frequency_capped").await;
    println!(
        "{USERS} users × {REQUESTS} requests: {shown_c} impressions of C (at most {CAP} a user), {} of D; frequency_capped {capped_count}",
        USERS as u64 * REQUESTS as u64 - shown_c
    );
    assert_eq!(
        capped_count,
        (USERS as u64 * (REQUESTS as u64 - CAP)) as f64,
        "C stepped aside for every request past a user's cap"
    );

    // A burst for one new user, ten requests at once: bids waiting for their impression count.
    let burst = RefCell::new(Vec::new());
    in_flight(10, 10, |_| {
        let (exchange, server, burst) = (&exchange, &server, &burst);
        async move {
            let bid = exchange.offer(server, Some("burst")).await.expect("a bid");
            burst.borrow_mut().push(bid);
        }
    })
    .await;
    let burst = burst.into_inner();
    let burst_c = burst.iter().filter(|b| b.cid == "c").count();
    println!("a burst of 10 requests at once for one user: {burst_c} bids of C");
    assert_eq!(burst_c, CAP as usize, "{burst:?}");
    for bid in &burst {
        exchange.win_and_show(&server, bid).await;
    }

    // No user key: nothing to cap by.
    let anonymous = server.metric("precis_frequency_anonymous_total").await;
    for _ in 0..5 {
        let bid = exchange.offer(&server, None).await.expect("a bid");
        assert_eq!(bid.cid, "c", "a request without a user is not capped");
    }
    let grown = server.metric("precis_frequency_anonymous_total").await - anonymous;
    println!("5 requests without a user: all C; precis_frequency_anonymous_total +{grown}");
    assert_eq!(grown, 5.0);

    // A restart replays the impressions: the same users still get no C today.
    let mut capped_users: Vec<String> = everyone.clone();
    capped_users.push("burst".to_owned());
    let now = start + Duration::minutes(REQUESTS as i64);
    advance(&server, now).await;
    server
        .restart_with_flag("--simulate-from", &rfc3339(now))
        .await;
    let seen = RefCell::new(BTreeMap::<String, Vec<String>>::new());
    let one_request_each = async |users: &[String]| {
        seen.borrow_mut().clear();
        in_flight(10, users.len(), |u| {
            let (exchange, server, seen) = (&exchange, &server, &seen);
            async move {
                let bid = exchange
                    .offer(server, Some(&users[u]))
                    .await
                    .unwrap_or_else(|| panic!("no bid for {}", users[u]));
                seen.borrow_mut()
                    .entry(users[u].clone())
                    .or_default()
                    .push(bid.cid);
            }
        })
        .await;
        let seen = seen.borrow();
        users
            .iter()
            .flat_map(|u| seen[u].clone())
            .collect::<Vec<_>>()
    };
    let cids = one_request_each(&capped_users).await;
    println!(
        "after the restart: {} of {} users get C",
        count(&cids, "c"),
        capped_users.len()
    );
    assert!(cids.iter().all(|c| c == "d"), "after the restart: {cids:?}");
    // 23:59 in New York is already the next day in UTC: still the same local day.
    advance(&server, at("2026-11-24T04:59:00Z")).await;
    let cids = one_request_each(&capped_users).await;
    println!(
        "at 23:59 local (04:59 UTC the next day): {} get C",
        count(&cids, "c")
    );
    assert!(cids.iter().all(|c| c == "d"), "at 23:59 local: {cids:?}");
    // Local midnight: a new day, a new window.
    advance(&server, at("2026-11-24T05:00:00Z")).await;
    let cids = one_request_each(&capped_users).await;
    println!(
        "at 00:00 local the next day: {} of {} get C",
        count(&cids, "c"),
        capped_users.len()
    );
    assert!(cids.iter().all(|c| c == "c"), "the next day: {cids:?}");
}

#[tokio::test]
async fn a_user_who_converted_is_not_shown_the_campaign_again() {
    let start = at("2026-11-23T10:00:00Z");
    let shoes = Campaign::cpm(2.0).banner_to(300, 250, "https://shoes.example/buy");
    let mut server = beside_a_fallback(
        start,
        "shoes.toml",
        shoes,
        "stop_after_conversion = true",
        "other.toml",
    );
    let exchange = Exchange::new();
    // U sees the ad, clicks and buys.
    let bid = exchange.offer(&server, Some("U")).await.expect("a bid");
    assert_eq!(bid.cid, "shoes");
    exchange.win_and_show(&server, &bid).await;
    let click = markup_link(&bid.adm);
    let (status, headers, _) = server.get(&local(click)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("ascii");
    let pclid = location
        .strip_prefix("https://shoes.example/buy?pclid=")
        .unwrap_or_else(|| panic!("landed on {location}"));
    let (status, _, body) = server
        .get(&format!("/conv?pclid={pclid}&order=o-1&value=80"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");

    let winners = async |server: &Server| {
        let mut winners = Vec::new();
        for user in ["U", "V"] {
            let bid = exchange.offer(server, Some(user)).await.expect("a bid");
            winners.push(bid.cid);
        }
        winners
    };
    let after_order = winners(&server).await;
    println!(
        "after U's order: U gets {}, V gets {}",
        after_order[0], after_order[1]
    );
    assert_eq!(after_order, ["other", "shoes"], "U converted, V did not");
    // Across a restart (the conversion is replayed from the log), and weeks later.
    let later = start + Duration::days(30);
    advance(&server, later).await;
    server
        .restart_with_flag("--simulate-from", &rfc3339(later))
        .await;
    let after_restart = winners(&server).await;
    println!(
        "after a restart, 30 days later: U gets {}, V gets {}",
        after_restart[0], after_restart[1]
    );
    assert_eq!(after_restart, ["other", "shoes"]);
}

/// Micro-dollars (USD / 1,000,000): what the budget tests count in, exactly.
const MICROS: f64 = 1e6;

/// The 2.00 CPM bid of the budget tests and what its win spends at [`CLEARING`], in micro-dollars.
const BID_MICROS: u64 = 2_000;
const WIN_MICROS: u64 = 1_600;

/// A 2.00 CPM campaign with these `top` lines and a `[budget]` of `lines`: the only campaign of a
/// simulated bidder standing at `start`, so a request it does not bid on gets no bid.
fn alone_with_budget(start: DateTime<Utc>, top: &str, lines: &str) -> Server {
    let campaign = Campaign::cpm(2.0).top(top).banner(300, 250);
    simulated(start)
        .campaign("m.toml", with_budget(campaign, lines))
        .start()
}

/// `spent_today`, `spent_total` and `held` of campaign `m` in `/status`, in micro-dollars.
async fn money(server: &Server) -> [f64; 3] {
    let mut figures = [0.0; 3];
    for (figure, name) in figures
        .iter_mut()
        .zip(["spent_today", "spent_total", "held"])
    {
        *figure = (budget_figure(server, "m", name).await * MICROS).round();
    }
    figures
}

#[tokio::test]
async fn a_daily_budget_starts_afresh_at_the_campaigns_midnight_not_at_utcs() {
    const DAILY_MICROS: u64 = 10_000;
    // A bid is made while the day's spend plus the bid fit in the daily budget.
    let per_day = (DAILY_MICROS - BID_MICROS) / WIN_MICROS + 1;
    let day_spend = (per_day * WIN_MICROS) as f64;
    // 05:00 on 23 November in Tokyo (UTC+9 all year).
    let start = at("2026-11-22T20:00:00Z");
    let server = alone_with_budget(
        start,
        "timezone = \"Asia/Tokyo\"",
        "daily = 0.01\npacing = \"asap\"",
    );
    let exchange = Exchange::new();
    let made = exchange.win_until_no_bid(&server).await;
    println!("the 23rd in Tokyo: {made} bids won, then none");
    assert_eq!(made, per_day, "bids on the 23rd");
    assert_eq!(money(&server).await, [day_spend, day_spend, 0.0]);
    // Midnight UTC is 09:00 in Tokyo, and 14:59:59 UTC is 23:59:59: still the 23rd there.
    for still in ["2026-11-23T00:00:00Z", "2026-11-23T14:59:59Z"] {
        advance(&server, at(still)).await;
        let bid = exchange.offer(&server, None).await;
        assert!(bid.is_none(), "at {still}, the day's budget spent: {bid:?}");
        assert_eq!(
            money(&server).await,
            [day_spend, day_spend, 0.0],
            "at {still}"
        );
    }
    // Midnight in Tokyo: the 24th, with the whole of its budget.
    advance(&server, at("2026-11-23T15:00:00Z")).await;
    assert_eq!(
        money(&server).await,
        [0.0, day_spend, 0.0],
        "before the 24th's first bid"
    );
    let made = exchange.win_until_no_bid(&server).await;
    println!("the 24th from Tokyo midnight: {made} bids won, then none");
    assert_eq!(made, per_day, "bids on the 24th");
    assert_eq!(money(&server).await, [day_spend, 2.0 * day_spend, 0.0]);
}

#[tokio::test]
async fn reservations_outlive_a_restart_and_still_stop_overspend() {
    const TOTAL_MICROS: u64 = 10_000;
    let start = at("2026-11-23T09:00:00Z");
    let mut server = alone_with_budget(start, "", "total = 0.01\npacing = \"asap\"");
    let exchange = Exchange::new();
    // Bids whose wins have not arrived yet: their reservations fill the budget.
    let mut waiting = Vec::new();
    while let Some(bid) = exchange.offer(&server, None).await {
        waiting.push(bid);
        assert!(waiting.len() <= 100, "still bidding with 100 bids reserved");
    }
    let reserved = TOTAL_MICROS / BID_MICROS;
    assert_eq!(waiting.len() as u64, reserved, "bids reserving the budget");
    let held = (reserved * BID_MICROS) as f64;
    assert_eq!(money(&server).await, [0.0, 0.0, held]);

    // A graceful restart on the same directories, before the wins arrive.
    server
        .restart_with_flag("--simulate-from", &rfc3339(start))
        .await;
    assert_eq!(money(&server).await, [0.0, 0.0, held], "after the restart");
    let bid = exchange.offer(&server, None).await;
    assert!(bid.is_none(), "a bid while the budget is reserved: {bid:?}");
    assert_eq!(server.metric("precis_budget_holds").await, reserved as f64);

    // The wins of the bids made before it: each settles its reservation, leaving room for more.
    for bid in &waiting {
        exchange.win(&server, bid).await;
    }
    let spent = reserved * WIN_MICROS;
    let more = (TOTAL_MICROS - spent - BID_MICROS) / WIN_MICROS + 1;
    let made = exchange.win_until_no_bid(&server).await;
    let spent = (spent + made * WIN_MICROS) as f64;
    println!(
        "{reserved} bids reserved the budget before a restart, none after it until their wins; then {made} more"
    );
    assert_eq!(made, more, "bids once the wins settled");
    assert_eq!(money(&server).await, [spent, spent, 0.0]);
    assert!(
        spent <= TOTAL_MICROS as f64,
        "spent {spent} of {TOTAL_MICROS}"
    );
}
