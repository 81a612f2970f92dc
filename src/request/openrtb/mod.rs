//! OpenRTB 2.5/2.6: the bid request as exchanges send it (the response precis answers with is
//! written by [`crate::auction::response`]), and the names of OpenRTB's device types.
//!
//! Only the fields the bidder reads are decoded; every other field is skipped by the parser without
//! being stored. Every field is decoded leniently (see [`lenient`]) because real exchanges bend the
//! spec; [`decode`] refuses only what cannot be bid on safely (see its doc). This module never
//! looks at campaigns: it turns bytes into plain data.

pub mod lenient;

use serde::Deserialize;

/// Why a body is not a bid request. The text is what the exchange sees in the 400 answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("body is not a JSON bid request: {0}")]
    Json(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("bid request has no id")]
    MissingId,
    #[error("bid request has no imp")]
    MissingImp,
    #[error("imp id `{0}` is used by more than one imp")]
    DuplicateImpId(String),
    #[error("{0} must be 0 or 1")]
    BadGdpr(&'static str),
    #[error("{0} must be a string")]
    BadConsent(&'static str),
    #[error("a DOOH request cannot also be for a site or an app")]
    DoohWithSiteOrApp,
}

/// The OpenRTB `devicetype` of out-of-home screens (2.6).
pub const DOOH: u32 = 8;

/// OpenRTB `devicetype` codes (list 5.21, and 8 since 2.6) by the name precis writes each as, in
/// campaign files and reports. A name's first code is its own; the codes after it are those a
/// campaign targeting the name also reaches: 1 ("mobile/tablet") is a phone's and a tablet's,
/// `mobile` is both, and 7 (set-top box) is a connected TV's.
pub const DEVICE_TYPES: &[(&str, &[u32])] = &[
    ("mobile", &[1, 4, 5]),
    ("phone", &[4, 1]),
    ("tablet", &[5, 1]),
    ("desktop", &[2]),
    ("ctv", &[3, 7]),
    ("connected_device", &[6]),
    ("set_top_box", &[7]),
    ("dooh", &[DOOH]),
];

/// The name of a `devicetype` code (see [`DEVICE_TYPES`]), if it has one.
pub fn device_type_name(code: u32) -> Option<&'static str> {
    DEVICE_TYPES
        .iter()
        .find(|(_, codes)| codes.first() == Some(&code))
        .map(|(name, _)| *name)
}

/// Imps bid on per request; the rest are ignored (real requests carry a few, video pods dozens).
pub const MAX_IMPS: usize = 64;

/// Decodes and checks a bid request body.
///
/// Refused: what is not a JSON object, has no `id` or no `imp`, repeats an imp id (a bid could not
/// say which imp it is for), carries a privacy signal that cannot be read (`gdpr` other than 0/1,
/// a `consent` that is not a string: a bidder must not guess at a legal signal), or is for a DOOH
/// screen and a site or app at once. Imps without an id are dropped: no bid could refer to them
/// (Prebid stored-request imps arrive that way).
pub fn decode(body: &[u8]) -> Result<BidRequest, DecodeError> {
    // Serde would read an array as a struct written positionally; a bid request is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::NotObject);
    }
    // One UTF-8 check of the whole body (what is not UTF-8 is not JSON), then serde_json reads
    // strings without checking each: decoding 16-18% faster than `from_slice` (criterion,
    // `decode/*`).
    let body = std::str::from_utf8(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let mut request: BidRequest =
        serde_json::from_str(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    if request.id.as_deref().is_none_or(|id| id.trim().is_empty()) {
        return Err(DecodeError::MissingId);
    }
    if request.imp.is_empty() {
        return Err(DecodeError::MissingImp);
    }
    request.imp.retain(|imp| !imp.id.is_empty());
    // Each imp costs an auction, a signature and a log line: past any real request's count,
    // the rest are not bid on.
    request.imp.truncate(MAX_IMPS);
    let mut ids: Vec<&str> = request.imp.iter().map(|imp| imp.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(DecodeError::DuplicateImpId(pair[0].to_owned()));
    }
    let regs = request.regs.as_ref();
    let user = request.user.as_ref();
    check_gdpr("regs.gdpr", regs.and_then(|r| r.gdpr.as_ref()))?;
    check_gdpr(
        "regs.ext.gdpr",
        regs.and_then(|r| r.ext.as_ref()?.gdpr.as_ref()),
    )?;
    check_consent("user.consent", user.and_then(|u| u.consent.as_ref()))?;
    check_consent(
        "user.ext.consent",
        user.and_then(|u| u.ext.as_ref()?.consent.as_ref()),
    )?;
    if request.dooh.is_some() && (request.site.is_some() || request.app.is_some()) {
        return Err(DecodeError::DoohWithSiteOrApp);
    }
    Ok(request)
}

fn check_gdpr(field: &'static str, value: Option<&serde_json::Value>) -> Result<(), DecodeError> {
    let flag = match value {
        None => return Ok(()),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match flag {
        Some(0 | 1) => Ok(()),
        _ => Err(DecodeError::BadGdpr(field)),
    }
}

fn check_consent(
    field: &'static str,
    value: Option<&serde_json::Value>,
) -> Result<(), DecodeError> {
    match value {
        None | Some(serde_json::Value::String(_)) => Ok(()),
        Some(_) => Err(DecodeError::BadConsent(field)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BidRequest {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::objects")]
    pub imp: Vec<Imp>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub site: Option<Property>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub app: Option<Property>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub device: Option<Device>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub user: Option<User>,
    /// A digital out-of-home screen (2.6). Only its presence is read.
    #[serde(default, deserialize_with = "lenient::object")]
    pub dooh: Option<Dooh>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub regs: Option<Regs>,
    /// Currencies the exchange accepts bids in; empty means USD.
    #[serde(default, deserialize_with = "lenient::strings")]
    pub cur: Vec<String>,
    /// Blocked advertiser categories (IAB content taxonomy; a parent blocks its children).
    #[serde(default, deserialize_with = "lenient::strings")]
    pub bcat: Vec<String>,
    /// Blocked advertiser domains.
    #[serde(default, deserialize_with = "lenient::strings")]
    pub badv: Vec<String>,
    /// Milliseconds the exchange waits for the answer, network included.
    #[serde(default, deserialize_with = "lenient::number")]
    pub tmax: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Imp {
    /// `impid` in OpenRTB 1.x.
    #[serde(default, alias = "impid", deserialize_with = "imp_id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::object")]
    pub banner: Option<Banner>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub video: Option<Video>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub native: Option<Native>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub bidfloor: Option<f64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub bidfloorcur: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub pmp: Option<Pmp>,
}

fn imp_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient::string(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
pub struct Banner {
    #[serde(default, deserialize_with = "lenient::number")]
    pub w: Option<u32>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub h: Option<u32>,
    #[serde(default, deserialize_with = "lenient::objects")]
    pub format: Vec<Size>,
}

/// A size a banner slot takes (OpenRTB's `Format` object).
#[derive(Debug, Default, Deserialize)]
pub struct Size {
    #[serde(default, deserialize_with = "lenient::number")]
    pub w: Option<u32>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub h: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Video {
    #[serde(default, deserialize_with = "lenient::number")]
    pub w: Option<u32>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub h: Option<u32>,
    /// Content types the player plays (`video/mp4`); empty means any.
    #[serde(default, deserialize_with = "lenient::strings")]
    pub mimes: Vec<String>,
    /// Seconds.
    #[serde(default, deserialize_with = "lenient::number")]
    pub minduration: Option<u32>,
    /// Seconds; 0 means no limit.
    #[serde(default, deserialize_with = "lenient::number")]
    pub maxduration: Option<u32>,
    /// Accepted response protocols (list 5.8: 2 = VAST 2.0, 3 = VAST 3.0, 7 = VAST 4.0, …).
    #[serde(default, deserialize_with = "lenient::numbers")]
    pub protocols: Vec<u32>,
    /// The single protocol of OpenRTB 2.2 and earlier.
    #[serde(default, deserialize_with = "lenient::number")]
    pub protocol: Option<u32>,
}

/// The imp offers a native slot. Its `request` (a string or an object) is the creative's business,
/// not the bidder's, so nothing inside is decoded.
#[derive(Debug, Default, Deserialize)]
pub struct Native {}

#[derive(Debug, Default, Deserialize)]
pub struct Dooh {}

/// Privacy signals: 2.6 puts them at the top level, 2.5 under `ext`. Kept as raw JSON so that
/// [`decode`] can refuse values of the wrong type instead of guessing.
#[derive(Debug, Default, Deserialize)]
pub struct Regs {
    #[serde(default)]
    pub gdpr: Option<serde_json::Value>,
    /// 1: the site or app is directed at children (COPPA).
    #[serde(default, deserialize_with = "lenient::number")]
    pub coppa: Option<u32>,
    /// The IAB US Privacy string (2.6), e.g. `1YYN`: its third character `Y` is an opt-out.
    #[serde(default, deserialize_with = "lenient::string")]
    pub us_privacy: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub ext: Option<RegsExt>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RegsExt {
    #[serde(default)]
    pub gdpr: Option<serde_json::Value>,
    /// The US Privacy string (2.5).
    #[serde(default, deserialize_with = "lenient::string")]
    pub us_privacy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserExt {
    #[serde(default)]
    pub consent: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Pmp {
    /// 1: only the deals listed may bid. precis holds no deals, so it does not bid on such imps.
    #[serde(default, deserialize_with = "lenient::number")]
    pub private_auction: Option<u32>,
}

/// The site or app the ad would appear in: `site` and `app` share this shape (each reads the
/// fields that are its own: `domain` and `page` for a site, `bundle` for an app).
#[derive(Debug, Default, Deserialize)]
pub struct Property {
    #[serde(default, deserialize_with = "lenient::string")]
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub page: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub bundle: Option<String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub cat: Vec<String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub sectioncat: Vec<String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub pagecat: Vec<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub content: Option<Content>,
}

impl Property {
    /// Every IAB category the property declares, for itself, its section, page and content.
    pub fn categories(&self) -> impl Iterator<Item = &String> {
        let content = self.content.iter().flat_map(|c| &c.cat);
        self.cat
            .iter()
            .chain(&self.sectioncat)
            .chain(&self.pagecat)
            .chain(content)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Content {
    #[serde(default, deserialize_with = "lenient::strings")]
    pub cat: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Device {
    /// OpenRTB device type (list 5.21 / AdCOM 7.3).
    #[serde(default, deserialize_with = "lenient::number")]
    pub devicetype: Option<u32>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub os: Option<String>,
    /// OpenRTB connection type (list 5.22 / AdCOM 7.4).
    #[serde(default, deserialize_with = "lenient::number")]
    pub connectiontype: Option<u32>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub geo: Option<Geo>,
    /// The advertising id of a mobile device.
    #[serde(default, deserialize_with = "lenient::string")]
    pub ifa: Option<String>,
    /// 1: the user limits ad tracking.
    #[serde(default, deserialize_with = "lenient::number")]
    pub lmt: Option<u32>,
    /// 1: the browser sends Do Not Track.
    #[serde(default, deserialize_with = "lenient::number")]
    pub dnt: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Geo {
    #[serde(default, deserialize_with = "lenient::string")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub region: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub lat: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub lon: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct User {
    /// The exchange's id for the user.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// The buyer's (our) id for the user, from cookie sync.
    #[serde(default, deserialize_with = "lenient::string")]
    pub buyeruid: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub yob: Option<u32>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub gender: Option<String>,
    /// Comma-separated in the spec; some exchanges send an array.
    #[serde(default, deserialize_with = "lenient::strings")]
    pub keywords: Vec<String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub kwarray: Vec<String>,
    #[serde(default, deserialize_with = "lenient::objects")]
    pub data: Vec<Data>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub geo: Option<Geo>,
    /// The TCF consent string (2.6).
    #[serde(default)]
    pub consent: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub ext: Option<UserExt>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Data {
    #[serde(default, deserialize_with = "lenient::objects")]
    pub segment: Vec<Segment>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Segment {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sent_as_strings_and_strings_sent_as_numbers_are_understood() {
        let request = decode(
            br#"{"id": 42, "imp": [{"id": 1, "bidfloor": "0.75", "banner": {"w": "300", "h": 250.0}}],
                 "device": {"devicetype": "4", "geo": {"lat": "31.2", "lon": 121}}}"#,
        )
        .unwrap();
        assert_eq!(request.id.as_deref(), Some("42"));
        let imp = &request.imp[0];
        assert_eq!(imp.id, "1");
        assert_eq!(imp.bidfloor, Some(0.75));
        let banner = imp.banner.as_ref().unwrap();
        assert_eq!((banner.w, banner.h), (Some(300), Some(250)));
        let device = request.device.unwrap();
        assert_eq!(device.devicetype, Some(4));
        assert_eq!(device.geo.unwrap().lat, Some(31.2));
    }

    #[test]
    fn values_of_the_wrong_type_are_treated_as_absent_not_fatal() {
        let request = decode(
            br#"{"id": "r", "imp": [{"id": "1", "banner": "big", "bidfloor": {"x": 1}, "video": [1, 2]}, 7],
                 "device": "phone", "user": {"yob": true, "data": [{"segment": "x"}, null]},
                 "cur": "EUR", "bcat": [1, "IAB25", null], "site": {"cat": {"a": []}}}"#,
        )
        .unwrap();
        assert_eq!(request.imp.len(), 1);
        assert!(request.imp[0].banner.is_none() && request.imp[0].video.is_none());
        assert_eq!(request.imp[0].bidfloor, None);
        assert!(request.device.is_none());
        assert_eq!(request.user.as_ref().unwrap().yob, None);
        // A lone value where a list belongs is a list of one.
        assert_eq!(request.cur, vec!["EUR"]);
        assert_eq!(request.bcat, vec!["1", "IAB25"]);
        assert!(request.site.unwrap().cat.is_empty());
    }

    #[test]
    fn what_cannot_be_a_bid_request_is_refused_with_a_reason() {
        assert!(matches!(decode(b"{not json"), Err(DecodeError::Json(_))));
        assert_eq!(decode(b"[]").unwrap_err(), DecodeError::NotObject);
        assert_eq!(decode(b"").unwrap_err(), DecodeError::NotObject);
        assert_eq!(
            decode(br#"{"imp": [{"id": "1"}]}"#).unwrap_err(),
            DecodeError::MissingId
        );
        assert_eq!(
            decode(br#"{"id": " ", "imp": [{"id": "1"}]}"#).unwrap_err(),
            DecodeError::MissingId
        );
        assert_eq!(
            decode(br#"{"id": "r", "imp": []}"#).unwrap_err(),
            DecodeError::MissingImp
        );
        assert_eq!(
            decode(br#"{"id": "r", "imp": 7}"#).unwrap_err(),
            DecodeError::MissingImp
        );
        assert_eq!(
            decode(br#"{"id": "r", "imp": [{"id": "1"}, {"id": 1}]}"#).unwrap_err(),
            DecodeError::DuplicateImpId("1".into())
        );
    }

    #[test]
    fn imps_without_an_id_are_dropped_and_openrtb1_impid_is_read() {
        let lone =
            decode(br#"{"id": "r", "imp": {"id": "9", "video": {"protocols": ["3", 7, "x"]}}}"#)
                .unwrap();
        assert_eq!(lone.imp[0].id, "9");
        assert_eq!(lone.imp[0].video.as_ref().unwrap().protocols, vec![3, 7]);
        let request = decode(br#"{"id": "r", "imp": [{}, {"id": "2"}, {"banner": {}}]}"#).unwrap();
        assert_eq!(request.imp.len(), 1);
        assert_eq!(request.imp[0].id, "2");
        assert!(
            decode(br#"{"id": "r", "imp": [{}]}"#)
                .unwrap()
                .imp
                .is_empty()
        );
        assert_eq!(
            decode(br#"{"id": "r", "imp": [{"impid": "a"}]}"#)
                .unwrap()
                .imp[0]
                .id,
            "a"
        );
    }

    #[test]
    fn privacy_signals_that_cannot_be_read_are_refused_not_guessed() {
        let with = |extra: &str| {
            decode(format!(r#"{{"id": "r", "imp": [{{"id": "1"}}], {extra}}}"#).as_bytes())
        };
        assert!(with(r#""regs": {"gdpr": 1}, "user": {"consent": "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"}"#).is_ok());
        assert!(
            with(r#""regs": {"ext": {"gdpr": "0"}}, "user": {"ext": {"consent": ""}}"#).is_ok()
        );
        assert_eq!(
            with(r#""regs": {"gdpr": 2}"#).unwrap_err(),
            DecodeError::BadGdpr("regs.gdpr")
        );
        assert_eq!(
            with(r#""regs": {"ext": {"gdpr": true}}"#).unwrap_err(),
            DecodeError::BadGdpr("regs.ext.gdpr")
        );
        assert_eq!(
            with(r#""user": {"ext": {"consent": 1}}"#).unwrap_err(),
            DecodeError::BadConsent("user.ext.consent")
        );
        assert_eq!(
            with(r#""user": {"consent": {}}"#).unwrap_err(),
            DecodeError::BadConsent("user.consent")
        );
    }

    #[test]
    fn a_screen_is_not_also_a_site_or_an_app() {
        let with = |extra: &str| {
            decode(format!(r#"{{"id": "r", "imp": [{{"id": "1"}}], {extra}}}"#).as_bytes())
        };
        assert!(with(r#""dooh": {"id": "screen-1"}"#).is_ok());
        assert!(with(r#""site": {}, "app": {}"#).is_ok());
        assert_eq!(
            with(r#""dooh": {}, "site": {}"#).unwrap_err(),
            DecodeError::DoohWithSiteOrApp
        );
        assert_eq!(
            with(r#""dooh": {}, "app": {}"#).unwrap_err(),
            DecodeError::DoohWithSiteOrApp
        );
    }

    #[test]
    fn deeply_nested_json_is_skipped_or_refused_without_exhausting_the_stack() {
        let nest = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let in_imp = format!(r#"{{"id": "r", "imp": {}}}"#, nest(100_000));
        assert_eq!(
            decode(in_imp.as_bytes()).unwrap_err(),
            DecodeError::MissingImp
        );
        let in_ext = format!(
            r#"{{"id": "r", "imp": [{{"id": "1"}}], "ext": {}}}"#,
            nest(100_000)
        );
        assert_eq!(decode(in_ext.as_bytes()).unwrap().imp.len(), 1);
        let unclosed = format!(
            r#"{{"id": "r", "imp": [{{"id": "1", "banner": {}"#,
            "[".repeat(100_000)
        );
        assert!(matches!(
            decode(unclosed.as_bytes()),
            Err(DecodeError::Json(_))
        ));
    }
}
