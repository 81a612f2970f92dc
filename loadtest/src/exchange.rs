//! The simulated exchange: what happens after a bid. For each bid of a 200 answer, with
//! probability `win_rate` the win notice (`nurl`, `${AUCTION_PRICE}` = clearing × bid price) is
//! fired, then the billing notice (`burl`); then with probability `ctr` the click URL found in
//! the `adm` is followed (its redirect read for the `pclid`), and with probability `cvr` a
//! conversion `GET /conv?pclid=…&order=…&value=…` is sent to the same host.
//!
//! These follow-ups run on their own connections (hyper-util's pooled client: they go wherever
//! the bid's URLs point), at most `capacity` bids' worth at once; a win that finds them all busy
//! is skipped and counted. They are not in the bid latency histogram.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastrand::Rng;
use http_body_util::{BodyExt, Empty};
use hyper::header::LOCATION;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The click-through rate that `--ctr-scale 1` means: 0.2%, a typical display CTR.
pub const BASE_CTR: f64 = 0.002;

const PRICE_MACRO: &str = "${AUCTION_PRICE}";

/// How the exchange behaves.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Behaviour {
    pub win_rate: f64,
    /// Clearing price as a share of the bid price (first-price exchanges clear below the bid).
    pub clearing: f64,
    /// Clicks per won impression.
    pub ctr: f64,
    /// Conversions per click.
    pub cvr: f64,
}

/// What the exchange did, over the whole run (warmup included).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// 200 answers read, and the bids in them.
    pub bid_responses: u64,
    pub bids: u64,
    /// 200 answers that were not a bid response.
    pub unreadable_responses: u64,
    /// Wins not simulated because every follow-up connection was busy.
    pub skipped_busy: u64,
    /// Clicks not simulated because the `adm` held no click URL.
    pub clicks_without_url: u64,
    pub win: Notices,
    pub imp: Notices,
    pub click: Notices,
    pub conv: Notices,
}

/// One kind of follow-up request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Notices {
    pub sent: u64,
    /// Answers by HTTP status.
    pub status: BTreeMap<u16, u64>,
    /// No answer: timeout or connection error.
    pub failed: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Win,
    Imp,
    Click,
    Conv,
}

/// The parts of a bid response the exchange reads.
#[derive(Deserialize)]
struct BidResponse {
    #[serde(default)]
    seatbid: Vec<SeatBid>,
}

#[derive(Deserialize)]
struct SeatBid {
    #[serde(default)]
    bid: Vec<Bid>,
}

#[derive(Deserialize)]
struct Bid {
    price: f64,
    nurl: Option<String>,
    burl: Option<String>,
    adm: Option<String>,
}

/// What happens to one bid, decided when it arrives.
struct Fate {
    click: bool,
    convert: bool,
    order: String,
    value: f64,
}

pub struct Exchange {
    behaviour: Behaviour,
    seed: u64,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    capacity: u32,
    counts: Mutex<Counts>,
}

impl Exchange {
    /// An exchange with at most `capacity` bids' follow-ups in flight, each request given
    /// `timeout`.
    pub fn new(behaviour: Behaviour, seed: u64, capacity: u32, timeout: Duration) -> Exchange {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let capacity = capacity.max(1);
        Exchange {
            behaviour,
            seed,
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(capacity as usize)
                .build(connector),
            timeout,
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Plays the auction's aftermath for the 200 answer `body` to request `seq`.
    pub fn on_bid_response(self: &Arc<Self>, seq: u64, body: &[u8]) {
        let Ok(response) = serde_json::from_slice::<BidResponse>(body) else {
            self.count(|c| c.unreadable_responses += 1);
            return;
        };
        let bids: Vec<Bid> = response.seatbid.into_iter().flat_map(|s| s.bid).collect();
        self.count(|c| {
            c.bid_responses += 1;
            c.bids += bids.len() as u64;
        });
        let mut rng = Rng::with_seed(self.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for (n, bid) in bids.into_iter().enumerate() {
            if rng.f64() >= self.behaviour.win_rate {
                continue;
            }
            let fate = Fate {
                click: rng.f64() < self.behaviour.ctr,
                convert: rng.f64() < self.behaviour.cvr,
                order: format!("load-{seq}-{n}"),
                value: (rng.f64() * 280.0 + 20.0).round(),
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.count(|c| c.skipped_busy += 1);
                continue;
            };
            let exchange = self.clone();
            tokio::spawn(async move {
                exchange.follow(bid, fate).await;
                drop(permit);
            });
        }
    }

    /// Waits up to `limit` for the follow-ups in flight, then returns the counts.
    pub async fn finish(&self, limit: Duration) -> Counts {
        let _ = tokio::time::timeout(limit, self.permits.acquire_many(self.capacity)).await;
        self.lock().clone()
    }

    async fn follow(&self, bid: Bid, fate: Fate) {
        let price = (bid.price * self.behaviour.clearing).to_string();
        if let Some(nurl) = &bid.nurl {
            self.get(Kind::Win, &nurl.replace(PRICE_MACRO, &price))
                .await;
        }
        if let Some(burl) = &bid.burl {
            self.get(Kind::Imp, &burl.replace(PRICE_MACRO, &price))
                .await;
        }
        if !fate.click {
            return;
        }
        let Some(click) = bid.adm.as_deref().and_then(click_url) else {
            self.count(|c| c.clicks_without_url += 1);
            return;
        };
        let pclid = self.get(Kind::Click, click).await.and_then(|l| pclid(&l));
        if let (true, Some(pclid), Some(origin)) = (fate.convert, pclid, origin(click)) {
            let conv = format!(
                "{origin}/conv?pclid={pclid}&order={}&value={}",
                fate.order, fate.value
            );
            self.get(Kind::Conv, &conv).await;
        }
    }

    /// GETs `url`, counting the answer under `kind`; returns its `Location` header, if any.
    async fn get(&self, kind: Kind, url: &str) -> Option<String> {
        let answer = async {
            let response = self.client.get(url.parse().ok()?).await.ok()?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            response.into_body().collect().await.ok()?;
            Some((status, location))
        };
        let answer = tokio::time::timeout(self.timeout, answer)
            .await
            .ok()
            .flatten();
        self.count(|c| {
            let notices = match kind {
                Kind::Win => &mut c.win,
                Kind::Imp => &mut c.imp,
                Kind::Click => &mut c.click,
                Kind::Conv => &mut c.conv,
            };
            notices.sent += 1;
            match &answer {
                Some((status, _)) => *notices.status.entry(*status).or_default() += 1,
                None => notices.failed += 1,
            }
        });
        answer.and_then(|(_, location)| location)
    }

    fn count(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first `http(s)://…/click?t=…` URL in an ad's markup (HTML, VAST or native JSON).
fn click_url(adm: &str) -> Option<&str> {
    let at = adm.find("/click?t=")?;
    let start = adm[..at].rfind("http")?;
    let end = adm[at..]
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | ']' | '>'))
        .map_or(adm.len(), |n| at + n);
    Some(&adm[start..end])
}

/// The `pclid` parameter of a redirect's destination.
fn pclid(location: &str) -> Option<String> {
    let (_, query) = location.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("pclid="))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> Option<&str> {
    let rest = url.find("://")? + 3;
    let end = url[rest..].find('/').map_or(url.len(), |n| rest + n);
    Some(&url[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_urls_are_found_in_html_vast_and_native_markup() {
        let url = "http://127.0.0.1:8080/click?t=abc_-123";
        for adm in [
            format!(r#"<a href="{url}" target="_blank"><img src="https://cdn.example/x.jpg"></a>"#),
            format!("<a href='{url}'>ad</a>"),
            format!("<ClickThrough><![CDATA[{url}]]></ClickThrough>"),
            format!(r#"{{"link": {{"url": "{url}"}}, "assets": []}}"#),
            url.to_owned(),
        ] {
            assert_eq!(click_url(&adm), Some(url), "{adm}");
        }
        assert_eq!(click_url("<a href='https://x.example/land'>ad</a>"), None);
    }

    #[test]
    fn the_pclid_comes_from_the_redirect_and_conversions_go_to_the_click_host() {
        assert_eq!(
            pclid("https://shop.example/land?utm_source=precis&pclid=TOKEN-1_x").as_deref(),
            Some("TOKEN-1_x")
        );
        assert_eq!(pclid("https://shop.example/land?pclid="), None);
        assert_eq!(pclid("https://shop.example/land"), None);
        assert_eq!(
            origin("http://127.0.0.1:8080/click?t=x"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("http://host"), Some("http://host"));
        assert_eq!(origin("no scheme"), None);
    }
}
