//! The bid response precis answers with: one seat (`precis`), one bid per imp that has a winner.
//!
//! Borrowed from the request and the campaign snapshot, and written by hand into one buffer: the
//! creative's markup was escaped when its campaign loaded ([`Markup`]), and the event URLs are the
//! public base (checked at start to need no escaping) and a base64url token (nothing to escape),
//! so a response is mostly copied bytes. Each URL carries its own token, valid on its route only:
//! `nurl` → `/win` and `burl` → `/bill` (the exchange's, never in the markup), `${IMP_URL}` →
//! `/imp` and `${CLICK_URL}` → `/click` (the page's). Strings from the request (its id, imp ids)
//! and the campaign's go through serde_json's escaping.

use std::io::Write as _;

use crate::campaign::markup::{Macro, Markup};

/// Our seat name in every response.
pub const SEAT: &str = "precis";

#[derive(Debug)]
pub struct BidResponse<'a> {
    pub id: &'a str,
    pub cur: String,
    pub seatbid: [SeatBid<'a>; 1],
}

#[derive(Debug)]
pub struct SeatBid<'a> {
    pub seat: &'static str,
    pub bid: Vec<Bid<'a>>,
}

#[derive(Debug)]
pub struct Bid<'a> {
    pub id: String,
    pub impid: &'a str,
    /// CPM in the response currency.
    pub price: f64,
    pub adid: &'a str,
    pub crid: &'a str,
    pub cid: &'a str,
    pub adomain: &'a [String],
    /// Left out of the JSON when empty.
    pub cat: &'a [String],
    /// The creative's markup; its `${CLICK_URL}` and `${IMP_URL}` become the bid's event URLs.
    pub adm: &'a Markup,
    pub w: Option<u32>,
    pub h: Option<u32>,
    /// Where the event routes are, and the signed token each event URL carries.
    pub events: EventUrls<'a>,
}

/// A bid's event URLs: `{base}/{route}?t={token}`, one token per route.
#[derive(Debug)]
pub struct EventUrls<'a> {
    /// Scheme, host and port, without a trailing slash; nothing in it needs escaping in JSON
    /// (`public_url` is checked for that at start).
    pub base: &'a str,
    /// The tokens, base64url (they go into URLs as they are): `nurl`'s and `burl`'s, and the
    /// markup's pixel and click (`None` when the markup has no such macro).
    pub win: String,
    pub bill: String,
    pub imp: Option<String>,
    pub click: Option<String>,
}

/// Writes `{base}/{route}?t={token}{rest}` (as JSON string content: nothing in it needs
/// escaping).
#[inline]
fn write_url(out: &mut Vec<u8>, base: &str, route: &str, token: &str, rest: &str) {
    out.extend_from_slice(base.as_bytes());
    out.push(b'/');
    out.extend_from_slice(route.as_bytes());
    out.extend_from_slice(b"?t=");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(rest.as_bytes());
}

/// `{base}/{route}?t={token}{rest}` as a string.
fn url(base: &str, route: &str, token: &str, rest: &str) -> String {
    let mut out = Vec::new();
    write_url(&mut out, base, route, token, rest);
    String::from_utf8_lossy(&out).into_owned()
}

/// The win and billing notices' query after the token: the exchange puts the clearing price in.
const PRICE_QUERY: &str = "&price=${AUCTION_PRICE}";

impl Bid<'_> {
    /// The win notice URL, for the exchange to call with the clearing price.
    pub fn nurl(&self) -> String {
        url(self.events.base, "win", &self.events.win, PRICE_QUERY)
    }

    /// The billing notice URL, for the exchange to call when the impression is billable.
    pub fn burl(&self) -> String {
        url(self.events.base, "bill", &self.events.bill, PRICE_QUERY)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let fields = [
            ("id", &*self.id),
            ("impid", self.impid),
            ("adid", self.adid),
            ("crid", self.crid),
            ("cid", self.cid),
        ];
        for (key, value) in fields {
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            string(out, value);
            out.push(b',');
        }
        out.extend_from_slice(b"\"price\":");
        number(out, self.price);
        out.extend_from_slice(b",\"adomain\":");
        strings(out, self.adomain);
        if !self.cat.is_empty() {
            out.extend_from_slice(b",\"cat\":");
            strings(out, self.cat);
        }
        out.extend_from_slice(b",\"adm\":\"");
        let events = &self.events;
        self.adm.write(out, |out, slot| {
            let (route, token) = match slot {
                Macro::Click => ("click", &events.click),
                Macro::Imp => ("imp", &events.imp),
            };
            // Signed for every macro the markup holds (see `Markup::has`).
            write_url(out, events.base, route, token.as_deref().unwrap_or(""), "");
        });
        out.push(b'"');
        for (key, value) in [(&b",\"w\":"[..], self.w), (b",\"h\":", self.h)] {
            if let Some(value) = value {
                out.extend_from_slice(key);
                let _ = write!(out, "{value}");
            }
        }
        let notices = [
            (&b",\"nurl\":\""[..], "win", &events.win),
            (b",\"burl\":\"", "bill", &events.bill),
        ];
        for (key, route, token) in notices {
            out.extend_from_slice(key);
            write_url(out, events.base, route, token, PRICE_QUERY);
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// Bytes the bid takes in JSON, about: to size the buffer once.
    fn size(&self) -> usize {
        let url = self.events.base.len() + self.events.win.len() + 32;
        256 + self.adm.len() + 4 * url + self.impid.len() + self.cid.len()
    }
}

impl BidResponse<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        let [seatbid] = &self.seatbid;
        let size = 64 + self.id.len() + seatbid.bid.iter().map(Bid::size).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(b"{\"id\":");
        string(&mut out, self.id);
        out.extend_from_slice(b",\"cur\":");
        string(&mut out, &self.cur);
        out.extend_from_slice(b",\"seatbid\":[{\"seat\":");
        string(&mut out, seatbid.seat);
        out.extend_from_slice(b",\"bid\":[");
        for (i, bid) in seatbid.bid.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            bid.write(&mut out);
        }
        out.extend_from_slice(b"]}]}");
        out
    }
}

/// Writes `text` as a quoted JSON string.
fn string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn strings(out: &mut Vec<u8>, list: &[String]) {
    let _ = serde_json::to_writer(&mut *out, list);
}

/// A finite number as serde_json writes it (a price is always finite).
fn number(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_the_json_of_its_bids_with_event_urls_in_place() {
        let markup = Markup::new("<a href=\"${CLICK_URL}\"><img src=\"x\"></a>${IMP_URL}");
        let (adomain, cat) = (vec!["shop.example".to_owned()], vec![]);
        let bid = |id: &str, w| Bid {
            id: id.to_owned(),
            impid: "imp \"1\"",
            price: 1.25,
            adid: "c",
            crid: "c",
            cid: "shoes",
            adomain: &adomain,
            cat: &cat,
            adm: &markup,
            w,
            h: w,
            events: EventUrls {
                base: "http://127.0.0.1:8080",
                win: "Win-_1".to_owned(),
                bill: "Bill-_2".to_owned(),
                imp: Some("Imp-_3".to_owned()),
                click: Some("Click-_4".to_owned()),
            },
        };
        let response = BidResponse {
            id: "r\u{1}",
            cur: "EUR".to_owned(),
            seatbid: [SeatBid {
                seat: SEAT,
                bid: vec![bid("b1", Some(300)), bid("b2", None)],
            }],
        };
        let json: serde_json::Value = serde_json::from_slice(&response.to_json()).unwrap();
        let first = &json["seatbid"][0]["bid"][0];
        assert_eq!(json["id"], "r\u{1}");
        assert_eq!(json["cur"], "EUR");
        assert_eq!(json["seatbid"][0]["seat"], "precis");
        assert_eq!(first["impid"], "imp \"1\"");
        assert_eq!(first["price"], 1.25);
        assert_eq!(first["adomain"][0], "shop.example");
        assert!(first.get("cat").is_none(), "an empty cat is left out");
        // Each URL carries its own route's token: the markup, which the page and the user see,
        // holds the click and pixel tokens only, never the exchange's win or billing token.
        assert_eq!(
            first["adm"],
            "<a href=\"http://127.0.0.1:8080/click?t=Click-_4\"><img src=\"x\"></a>\
             http://127.0.0.1:8080/imp?t=Imp-_3"
        );
        assert_eq!(
            first["nurl"],
            "http://127.0.0.1:8080/win?t=Win-_1&price=${AUCTION_PRICE}"
        );
        assert_eq!(first["nurl"], response.seatbid[0].bid[0].nurl());
        assert_eq!(
            first["burl"],
            "http://127.0.0.1:8080/bill?t=Bill-_2&price=${AUCTION_PRICE}"
        );
        assert_eq!(first["burl"], response.seatbid[0].bid[0].burl());
        assert_eq!(
            (first["w"].as_u64(), first["h"].as_u64()),
            (Some(300), Some(300))
        );
        let second = &json["seatbid"][0]["bid"][1];
        assert_eq!(second["id"], "b2");
        assert!(second.get("w").is_none() && second.get("h").is_none());
    }
}
