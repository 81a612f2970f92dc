//! The bid response precis answers with: one seat (`precis`), one bid per imp that has a winner.
//! Borrowed from the request and the campaign snapshot so that encoding copies nothing it need not.

use serde::Serialize;

/// Our seat name in every response.
pub const SEAT: &str = "precis";

#[derive(Debug, Serialize)]
pub struct BidResponse<'a> {
    pub id: &'a str,
    pub cur: String,
    pub seatbid: [SeatBid<'a>; 1],
}

#[derive(Debug, Serialize)]
pub struct SeatBid<'a> {
    pub seat: &'static str,
    pub bid: Vec<Bid<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Bid<'a> {
    pub id: String,
    pub impid: &'a str,
    /// CPM in the response currency.
    pub price: f64,
    pub adid: &'a str,
    pub crid: &'a str,
    pub cid: &'a str,
    pub adomain: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub cat: &'a [String],
    pub adm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<u32>,
    pub nurl: String,
    pub burl: String,
}

impl BidResponse<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and finite numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
