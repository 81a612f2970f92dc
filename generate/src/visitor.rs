//! The request side of generated data: a [`Visitor`] is one plausible bid request's worth of facts
//! (who: place, screen, interests, age; and where they are seen: context, slot, floor), drawn from
//! the same places, tree and sizes as the generated campaigns, so that traffic meets them at
//! realistic rates. A [`Crowd`] says whether visitors are all new or often users seen before, who
//! keep their [`Person`] (and, as an exchange sends them, their device's hardware and advertising
//! id, with each request's [`Detail`]: more imps, sizes, deadline, privacy signals).
//! [`Visitor::bid_request`] writes a visitor as an OpenRTB 2.6 request.
//! Requests only: what a bidder answers is never decided or assumed here.

use serde::{Serialize, Serializer};

use super::devices::{Hardware, ZERO_IFA, draw_hardware, draw_ifa};
use super::places::{City, Market, draw_city, draw_market};
use super::privacy::Regs;
use super::rng::Rng;
use super::tree::{ROOTS, draw_root, tree};
use super::{ANY_SIZES, DESKTOP_SIZES, MOBILE_SIZES, PUBLISHERS, app_bundle, site_domain};

/// The ad slot of an imp.
#[derive(Debug, Clone, PartialEq)]
pub enum AdSlot {
    Banner { w: u32, h: u32 },
    Video { w: u32, h: u32, maxduration: u32 },
    Native,
}

/// Who a visitor is: what stays the same across a returning user's requests.
#[derive(Debug, Clone)]
pub struct Person {
    /// ISO-3166 alpha-3; `None` for a request without geo.
    pub country: Option<&'static str>,
    /// The city (and through it the region); `None` when the exchange knows only the country.
    pub city: Option<&'static City>,
    /// OpenRTB `devicetype`.
    pub device_type: u32,
    /// `device.os` as exchanges spell it.
    pub os: &'static str,
    /// Taxonomy tags (segments of the user's data), often none.
    pub tags: Vec<String>,
    /// The roots the tags are under, as drawn: what the pages they visit are often about.
    interests: Vec<usize>,
    pub yob: Option<u32>,
    pub gender: Option<&'static str>,
    /// `user.id`; `None` for a request without a user.
    pub user: Option<String>,
    /// The device's make, model, OS version and user agent; `None` for [`Crowd::Strangers`].
    pub hardware: Option<&'static Hardware>,
    /// `device.ifa`, the device's advertising id ([`ZERO_IFA`] when the user limits ad
    /// tracking); `None` for a PC and for [`Crowd::Strangers`].
    pub ifa: Option<String>,
}

/// One request's facts: who, and where they are seen this time.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub person: Person,
    /// Device coordinates near the city, when the exchange passes them.
    pub point: Option<(f64, f64)>,
    /// OpenRTB `connectiontype`.
    pub connection: u32,
    /// IAB categories of the site or app.
    pub categories: Vec<String>,
    /// Exactly one of these.
    pub site: Option<String>,
    pub app: Option<String>,
    pub slot: AdSlot,
    /// CPM floor in USD, if the impression has one.
    pub bidfloor: Option<f64>,
    /// What the request says besides: drawn for a [`Crowd::Returning`], `None` for
    /// [`Crowd::Strangers`].
    pub detail: Option<Detail>,
    /// Ordinals of the context's root and of the site or app among its publishers.
    context: usize,
    publisher: usize,
}

/// What an exchange's request says besides who, where and which slot, drawn for each request.
#[derive(Debug, Clone)]
pub struct Detail {
    /// `tmax`: milliseconds the exchange waits.
    pub tmax: u32,
    /// `secure` of every imp: the page or app is served over HTTPS.
    pub secure: bool,
    /// `banner.format` of the first imp when it is a banner: its own size, then the others the
    /// slot also takes; empty for video and native.
    pub format: Vec<(u32, u32)>,
    /// A second imp on the same page or screen.
    pub second: Option<Placement>,
    /// `publisher.id` of the site or app.
    pub publisher: String,
    /// The user's tags go as `user.keywords` instead of data segments.
    pub keywords: bool,
    /// `device.ip`, in the ranges reserved for documentation (RFC 5737), so never a real user's.
    pub ip: String,
    pub regs: Regs,
}

/// An imp after the first: its slot, floor and `banner.format` (as [`Detail::format`]).
#[derive(Debug, Clone)]
pub struct Placement {
    pub slot: AdSlot,
    pub bidfloor: Option<f64>,
    pub format: Vec<(u32, u32)>,
}

/// Who sends a run of visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowd {
    /// Everyone new: each visitor is drawn whole from its own stream, with a user id seen once
    /// (85%) or none, and a floor on every impression. The generated visitors benchmarks and
    /// tests are measured on.
    Strangers,
    /// Traffic as an exchange sends it: 60% of requests come from a population of `users` who
    /// come back, picked with a skew (the cube of a uniform draw) so that a few are seen very
    /// often and frequency caps bite, each with a [`Person`] of their own that never changes
    /// (home place, device, its hardware and advertising id, birth year, gender, interests); the
    /// others are strangers as above, with hardware of their own; 30% of impressions carry no
    /// floor. Each request has its [`Detail`].
    Returning { users: u64 },
}

/// Share of a returning crowd's requests from its returning users.
const RETURNING_SHARE: f64 = 0.6;
/// Share of a returning crowd's impressions without a floor.
const NO_FLOOR_SHARE: f64 = 0.3;
/// A returning crowd's `tmax` choices (ms), equally often.
const TMAX: [u32; 4] = [100, 120, 150, 200];
/// Shares of a returning crowd's requests with two imps, served over HTTPS, with the user's
/// tags as keywords (of those with tags), and of their banner imps taking more than one size.
const TWO_IMPS_SHARE: f64 = 0.1;
const SECURE_SHARE: f64 = 0.5;
const KEYWORDS_SHARE: f64 = 0.5;
const MULTI_SIZE_SHARE: f64 = 0.3;

/// A banner size: width and height.
type Size = (u32, u32);

/// Sizes a banner slot of the first size also takes, as multi-size ad units are set up (all of
/// them sizes generated campaigns buy).
const ALSO: &[(Size, &[Size])] = &[
    ((300, 250), &[(300, 600), (336, 280)]),
    ((336, 280), &[(300, 250)]),
    ((300, 600), &[(300, 250), (160, 600)]),
    ((160, 600), &[(300, 600)]),
    ((728, 90), &[(970, 90), (970, 250)]),
    ((970, 90), &[(728, 90)]),
    ((970, 250), &[(970, 90), (728, 90)]),
    ((320, 50), &[(300, 50), (320, 100)]),
    ((300, 50), &[(320, 50)]),
    ((320, 100), &[(320, 50)]),
    ((320, 480), &[(300, 250)]),
];

/// Device types with their share of traffic: phone, desktop, tablet, CTV, mobile/tablet,
/// connected device, set-top box.
const DEVICES: &[(u32, u32)] = &[(4, 52), (2, 25), (5, 8), (3, 8), (1, 4), (6, 2), (7, 1)];

/// Ages are drawn against this year (a visitor's `yob` does not move with the calendar).
const YEAR: u32 = 2026;

impl Visitor {
    /// Visitor `index` of `seed` from `crowd` (see [`crate::Generator::visitor_in`]).
    pub(crate) fn of(seed: u64, crowd: Crowd, index: usize) -> Visitor {
        let mut rng = Rng::stream(seed ^ 0x7669_7369_746f_7273, index as u64);
        let Crowd::Returning { users } = crowd else {
            return Visitor::draw(&mut rng, None);
        };
        let who = rng.unit();
        let mut visitor = if who < RETURNING_SHARE {
            let u = rng.unit();
            let n = (u * u * u * users as f64) as u64;
            // Who they are is the stranger their own stream draws, with their id.
            let mut own = Rng::stream(seed ^ 0x7265_7475_726e_6564, n);
            let mut person = Visitor::draw(&mut own, None).person;
            person.user = Some(format!("u-{seed:x}-{n}"));
            person.equip(&mut own);
            Visitor::draw(&mut rng, Some(person))
        } else {
            let mut stranger = Visitor::draw(&mut rng, None);
            stranger.person.equip(&mut rng);
            stranger
        };
        if rng.chance(NO_FLOOR_SHARE) {
            visitor.bidfloor = None;
        }
        visitor.detail = Some(Detail::draw(&mut rng, &visitor));
        visitor
    }

    /// A visitor drawn from `rng`: `person` seen again (their place, device, interests, age and
    /// id), or someone new drawn on the way. A stranger's draws come in one fixed order, so a
    /// seed's strangers stay what they are.
    fn draw(rng: &mut Rng, person: Option<Person>) -> Visitor {
        let place = match &person {
            Some(p) => (p.country, p.city),
            None => draw_place(rng),
        };
        let point = place.1.filter(|_| rng.chance(0.6)).map(|c| {
            (
                round4(c.lat + rng.range(-0.05, 0.05)),
                round4(c.lon + rng.range(-0.05, 0.05)),
            )
        });
        let (device_type, os) = match &person {
            Some(p) => (p.device_type, p.os),
            None => draw_device(rng),
        };
        let connection = *match device_type {
            4 | 1 => rng.weighted(&[(2, 45), (6, 35), (7, 15), (5, 5)]),
            2 => rng.weighted(&[(1, 40), (2, 60)]),
            _ => rng.weighted(&[(2, 80), (1, 20)]),
        };
        let (interests, tags) = match &person {
            Some(p) => (p.interests.clone(), p.tags.clone()),
            None => draw_interests(rng),
        };

        // Context: what the page or app is about, often what the user is into.
        let context = if !interests.is_empty() && rng.chance(0.65) {
            interests[rng.below(interests.len())]
        } else {
            draw_root(rng)
        };
        let spec = &ROOTS[context];
        let mut categories = Vec::new();
        if rng.chance(0.9) {
            categories.push(spec.iab.to_owned());
            if spec.iab_subcategories > 0 && rng.chance(0.5) {
                let n = rng.between(1, spec.iab_subcategories as usize);
                categories.push(format!("{}-{n}", spec.iab));
            }
        }
        let in_app = match device_type {
            2 => false,
            3 | 6 | 7 => true,
            _ => rng.chance(0.75),
        };
        let publisher = rng.below(PUBLISHERS);
        let (site, app) = if in_app {
            (None, Some(app_bundle(spec.name, publisher)))
        } else {
            (Some(site_domain(spec.name, publisher)), None)
        };

        let person = person.unwrap_or_else(|| {
            let (yob, gender) = draw_age(rng);
            let user = rng
                .chance(0.85)
                .then(|| format!("u-{:016x}", rng.next_u64()));
            Person {
                country: place.0,
                city: place.1,
                device_type,
                os,
                tags,
                interests,
                yob,
                gender,
                user,
                hardware: None,
                ifa: None,
            }
        });

        let (slot, bidfloor) = draw_slot(rng, device_type);
        Visitor {
            person,
            point,
            connection,
            categories,
            site,
            app,
            slot,
            bidfloor: Some(bidfloor),
            detail: None,
            context,
            publisher,
        }
    }

    /// The visitor as an OpenRTB 2.6 bid request with this `id`, as JSON text: the tags as
    /// segments of one data provider (or as keywords), the geo on `device.geo` with the region
    /// code as exchanges send it, and the [`Detail`] when there is one. Written straight from the
    /// fields (keys in alphabetical order), a microsecond or two, so that a load generator can
    /// send as fast as it asks.
    pub fn bid_request(&self, id: &str) -> String {
        let person = &self.person;
        let detail = self.detail.as_ref();
        let secure = detail.map(|d| u8::from(d.secure));
        let imp = Imps(
            Imp::new(
                "1",
                &self.slot,
                self.bidfloor,
                detail.map(|d| &d.format[..]),
                secure,
            ),
            (detail.and_then(|d| d.second.as_ref()))
                .map(|p| Imp::new("2", &p.slot, p.bidfloor, Some(&p.format), secure)),
        );
        let point = self.point;
        let geo = Geo {
            city: person.city.map(|c| c.name),
            country: person.country,
            lat: point.map(|(lat, _)| lat),
            lon: point.map(|(_, lon)| lon),
            region: person.city.map(Market::request_region),
            r#type: point.map(|_| 1),
            utcoffset: detail.and(person.city).and_then(City::utc_offset),
        };
        let keywords = detail.is_some_and(|d| d.keywords);
        let segments: Vec<Segment> = if keywords {
            Vec::new()
        } else {
            person.tags.iter().map(|id| Segment { id }).collect()
        };
        let user = User {
            consent: detail.and_then(|d| d.regs.consent),
            data: (!segments.is_empty()).then_some([Data {
                id: "precis-taxonomy",
                name: "precis interest taxonomy",
                segment: segments,
            }]),
            gender: person.gender,
            id: person.user.as_deref(),
            keywords: keywords.then(|| person.tags.join(",")),
            yob: person.yob,
        };
        let publisher = detail.map(|d| Publisher { id: &d.publisher });
        let hardware = |field: fn(&Hardware) -> &'static str| {
            person.hardware.map(field).filter(|v| !v.is_empty())
        };
        let request = Request {
            app: self.app.as_deref().map(|bundle| App {
                bundle,
                cat: &self.categories,
                publisher,
            }),
            at: 1,
            cur: ["USD"],
            device: Device {
                connectiontype: self.connection,
                devicetype: person.device_type,
                geo: (geo != Geo::default()).then_some(geo),
                ifa: person.ifa.as_deref(),
                ip: detail.map(|d| d.ip.as_str()),
                lmt: person.ifa.as_ref().map(|ifa| u8::from(ifa == ZERO_IFA)),
                make: hardware(|h| h.make),
                model: hardware(|h| h.model),
                os: person.os,
                osv: hardware(|h| h.osv),
                ua: hardware(|h| h.ua),
            },
            id,
            imp,
            regs: detail.map(|d| Regulations {
                coppa: u8::from(d.regs.coppa),
                gdpr: d.regs.gdpr.map(u8::from),
                us_privacy: d.regs.us_privacy,
            }),
            site: self.site.as_deref().map(|domain| Site {
                cat: &self.categories,
                domain,
                page: format!("https://{domain}/"),
                publisher,
            }),
            tmax: detail.map_or(150, |d| d.tmax),
            user: (user != User::default()).then_some(user),
        };
        serde_json::to_string(&request).expect("strings and numbers always make JSON")
    }
}

impl Person {
    /// Gives the person the hardware and the advertising id of their device, drawn from `rng`.
    fn equip(&mut self, rng: &mut Rng) {
        self.hardware = draw_hardware(rng, self.device_type, self.os);
        self.ifa = draw_ifa(rng, self.device_type, self.os);
    }
}

impl Detail {
    /// The detail of a request of `visitor` (whose first imp is drawn), from `rng`.
    fn draw(rng: &mut Rng, visitor: &Visitor) -> Detail {
        let tmax = *rng.pick(&TMAX);
        let secure = rng.chance(SECURE_SHARE);
        let format = banner_format(rng, &visitor.slot);
        let second = rng.chance(TWO_IMPS_SHARE).then(|| {
            let (slot, floor) = draw_slot(rng, visitor.person.device_type);
            let bidfloor = Some(floor).filter(|_| !rng.chance(NO_FLOOR_SHARE));
            let format = banner_format(rng, &slot);
            Placement {
                slot,
                bidfloor,
                format,
            }
        });
        let keywords = !visitor.person.tags.is_empty() && rng.chance(KEYWORDS_SHARE);
        let block = *rng.pick(&["192.0.2", "198.51.100", "203.0.113"]);
        let ip = format!("{block}.{}", rng.between(1, 254));
        Detail {
            tmax,
            secure,
            format,
            second,
            publisher: format!("{}-{}", ROOTS[visitor.context].name, visitor.publisher),
            keywords,
            ip,
            regs: Regs::draw(rng, visitor.person.country),
        }
    }
}

/// An ad slot for a device of `device_type` and its CPM floor in USD: a common IAB banner size
/// for the screen, a video or a native ad, each with floors of its own.
fn draw_slot(rng: &mut Rng, device_type: u32) -> (AdSlot, f64) {
    let (slot, floor) = match device_type {
        3 | 7 => (
            AdSlot::Video {
                w: 1920,
                h: 1080,
                maxduration: *rng.pick(&[30, 60]),
            },
            rng.log_range(8.0, 20.0),
        ),
        _ => {
            let (sizes, native) = match device_type {
                2 => (DESKTOP_SIZES, 0.05),
                4 | 1 => (MOBILE_SIZES, 0.15),
                _ => (ANY_SIZES, 0.10),
            };
            let roll = rng.unit();
            if roll < native {
                (AdSlot::Native, rng.log_range(0.3, 3.0))
            } else if roll < native + 0.15 {
                let (w, h) = *rng.pick(&[(640, 360), (1280, 720), (1920, 1080)]);
                let maxduration = *rng.pick(&[15, 30, 30, 60]);
                (AdSlot::Video { w, h, maxduration }, rng.log_range(1.0, 8.0))
            } else {
                let (w, h) = *rng.weighted(sizes);
                (AdSlot::Banner { w, h }, rng.log_range(0.05, 1.5))
            }
        }
    };
    (slot, (floor * 100.0).round() / 100.0)
}

/// `banner.format` of `slot`: a banner's own size, then (for some) the others it also takes;
/// none for video and native.
fn banner_format(rng: &mut Rng, slot: &AdSlot) -> Vec<(u32, u32)> {
    let &AdSlot::Banner { w, h } = slot else {
        return Vec::new();
    };
    let mut format = vec![(w, h)];
    let also = ALSO.iter().find(|(size, _)| *size == (w, h));
    if let Some((_, also)) = also
        && rng.chance(MULTI_SIZE_SHARE)
    {
        format.extend_from_slice(&also[..rng.between(1, also.len())]);
    }
    format
}

/// Where a new visitor is: a market by weight, then (mostly) one of its cities.
fn draw_place(rng: &mut Rng) -> (Option<&'static str>, Option<&'static City>) {
    let market = draw_market(rng);
    let geo = rng.unit();
    if geo < 0.04 {
        (None, None)
    } else if geo < 0.12 {
        (Some(market.country), None)
    } else {
        (Some(market.country), Some(draw_city(rng, market)))
    }
}

/// A new visitor's device type and OS.
fn draw_device(rng: &mut Rng) -> (u32, &'static str) {
    let device_type = *rng.weighted(DEVICES);
    let os = *match device_type {
        4 | 1 => rng.weighted(&[("iOS", 45), ("Android", 55)]),
        5 => rng.weighted(&[("iPadOS", 30), ("iOS", 30), ("Android", 40)]),
        2 => rng.weighted(&[("Windows", 70), ("macOS", 25), ("Linux", 5)]),
        3 | 7 => rng.weighted(&[("tvOS", 20), ("Roku", 35), ("Tizen", 25), ("webOS", 20)]),
        _ => rng.weighted(&[("Android", 1)]),
    };
    (device_type, os)
}

/// A new visitor's interests (root ordinals) and the tags under them: three users in ten come
/// with no data at all.
fn draw_interests(rng: &mut Rng) -> (Vec<usize>, Vec<String>) {
    let roots = tree().roots();
    let mut interests: Vec<usize> = Vec::new();
    let mut tags = Vec::new();
    if rng.chance(0.7) {
        for _ in 0..rng.between(1, 3) {
            let r = draw_root(rng);
            if interests.contains(&r) {
                continue;
            }
            interests.push(r);
            let subtree = tree().subtree(roots[r]);
            for _ in 0..rng.between(1, 4) {
                let depth = if rng.chance(0.6) { 4 } else { 3 };
                let at: Vec<_> = subtree.iter().filter(|n| n.depth == depth).collect();
                let tag = &at[rng.below(at.len())].path;
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
        }
    }
    (interests, tags)
}

/// A new visitor's birth year and gender, when the exchange knows them.
fn draw_age(rng: &mut Rng) -> (Option<u32>, Option<&'static str>) {
    let yob = rng.chance(0.55).then(|| YEAR - rng.between(18, 75) as u32);
    let gender = yob
        .filter(|_| rng.chance(0.8))
        .map(|_| *rng.weighted(&[("M", 49), ("F", 49), ("O", 2)]));
    (yob, gender)
}

// The request as written: each struct's fields in alphabetical order, absent ones left out.

#[derive(Serialize)]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<App<'a>>,
    at: u32,
    cur: [&'static str; 1],
    device: Device<'a>,
    id: &'a str,
    imp: Imps<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regs: Option<Regulations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<Site<'a>>,
    tmax: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
}

#[derive(Serialize)]
struct App<'a> {
    bundle: &'a str,
    cat: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    publisher: Option<Publisher<'a>>,
}

#[derive(Serialize)]
struct Site<'a> {
    cat: &'a [String],
    domain: &'a str,
    page: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    publisher: Option<Publisher<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct Publisher<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Device<'a> {
    connectiontype: u32,
    devicetype: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    geo: Option<Geo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ifa: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lmt: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    make: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    osv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ua: Option<&'static str>,
}

#[derive(Serialize, Default, PartialEq)]
struct Geo {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utcoffset: Option<i32>,
}

/// The imps of a request: one or two, written as a list without collecting them into one.
struct Imps<'a>(Imp<'a>, Option<Imp<'a>>);

impl Serialize for Imps<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(std::iter::once(&self.0).chain(&self.1))
    }
}

#[derive(Serialize)]
struct Imp<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    banner: Option<Banner<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bidfloor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bidfloorcur: Option<&'static str>,
    id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<Native>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<Video>,
}

impl<'a> Imp<'a> {
    /// Imp `id` for `slot`, with its floor, its `banner.format` sizes (`None`: no list) and
    /// `secure` when the request says.
    fn new(
        id: &'static str,
        slot: &AdSlot,
        bidfloor: Option<f64>,
        format: Option<&'a [(u32, u32)]>,
        secure: Option<u8>,
    ) -> Imp<'a> {
        let (banner, video, native) = match *slot {
            AdSlot::Banner { w, h } => {
                let format = format.filter(|f| !f.is_empty()).map(Sizes);
                (Some(Banner { format, h, w }), None, None)
            }
            AdSlot::Video { w, h, maxduration } => {
                let video = Video {
                    h,
                    maxduration,
                    mimes: ["video/mp4", "video/webm"],
                    minduration: 5,
                    plcmt: 1,
                    protocols: [2, 3, 5, 6, 7, 8, 11, 12, 13, 14],
                    w,
                };
                (None, Some(video), None)
            }
            AdSlot::Native => (None, None, Some(NATIVE)),
        };
        Imp {
            banner,
            bidfloor,
            bidfloorcur: bidfloor.map(|_| "USD"),
            id,
            native,
            secure,
            video,
        }
    }
}

#[derive(Serialize)]
struct Banner<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Sizes<'a>>,
    h: u32,
    w: u32,
}

/// A `banner.format` list: each size as a format object.
struct Sizes<'a>(&'a [(u32, u32)]);

impl Serialize for Sizes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|&(w, h)| Banner { format: None, h, w }))
    }
}

#[derive(Serialize)]
struct Video {
    h: u32,
    maxduration: u32,
    mimes: [&'static str; 2],
    minduration: u32,
    plcmt: u32,
    protocols: [u32; 10],
    w: u32,
}

#[derive(Serialize)]
struct Native {
    request: &'static str,
    ver: &'static str,
}

/// A title and a main image, as native slots ask.
const NATIVE: Native = Native {
    request: "{\"ver\":\"1.2\",\"assets\":[{\"id\":1,\"required\":1,\"title\":{\"len\":90}},{\"id\":2,\"required\":1,\"img\":{\"type\":3,\"wmin\":600,\"hmin\":314}}]}",
    ver: "1.2",
};

/// `regs`.
#[derive(Serialize)]
struct Regulations {
    coppa: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    gdpr: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    us_privacy: Option<&'static str>,
}

#[derive(Serialize, Default, PartialEq)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    consent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<[Data<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keywords: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    yob: Option<u32>,
}

#[derive(Serialize, PartialEq)]
struct Data<'a> {
    id: &'static str,
    name: &'static str,
    segment: Vec<Segment<'a>>,
}

#[derive(Serialize, PartialEq)]
struct Segment<'a> {
    id: &'a str,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::Generator;
    use crate::places::Law;

    /// What a user keeps from one request to the next.
    fn traits(p: &Person) -> impl PartialEq + std::fmt::Debug {
        (
            p.country,
            p.city.map(|c| c.name),
            p.device_type,
            p.os,
            p.yob,
            p.gender,
            p.tags.clone(),
            p.hardware,
            p.ifa.clone(),
        )
    }

    #[test]
    fn strangers_are_seen_once_and_some_come_without_a_user() {
        let generator = Generator::new(5);
        let visitors: Vec<Visitor> = (0..5000).map(|i| generator.visitor(i)).collect();
        let mut ids: Vec<&str> = visitors
            .iter()
            .filter_map(|v| v.person.user.as_deref())
            .collect();
        let with_user = ids.len();
        let share = with_user as f64 / visitors.len() as f64;
        assert!((0.82..0.88).contains(&share), "{share}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), with_user, "no one twice");
        assert!(
            visitors.iter().all(|v| v.bidfloor.is_some()),
            "always a floor"
        );
        assert!(
            visitors
                .iter()
                .all(|v| v.detail.is_none() && v.person.hardware.is_none()),
            "what benchmarks measure stays as it was"
        );
    }

    #[test]
    fn returning_users_keep_their_person_and_come_back_often() {
        let generator = Generator::new(9);
        let crowd = Crowd::Returning { users: 100_000 };
        let n = 50_000;
        let mut seen: HashMap<String, (usize, Visitor)> = HashMap::new();
        let mut busiest_places = Vec::new();
        let (mut anonymous, mut repeats, mut no_floor) = (0, 0, 0);
        for i in 0..n {
            let visitor = generator.visitor_in(crowd, i);
            no_floor += usize::from(visitor.bidfloor.is_none());
            let Some(id) = visitor.person.user.clone() else {
                anonymous += 1;
                continue;
            };
            if id == "u-9-0" {
                busiest_places.push((visitor.site.clone(), visitor.app.clone()));
            }
            match seen.get_mut(&id) {
                Some((count, first)) => {
                    *count += 1;
                    repeats += 1;
                    assert_eq!(traits(&first.person), traits(&visitor.person), "{id}");
                }
                None => {
                    seen.insert(id, (1, visitor));
                }
            }
        }
        let share = |k: usize| k as f64 / n as f64;
        // 60% of requests from 100,000 users, skewed: about a fifth of all requests are from a
        // user seen before, and user 0 (about 2% of theirs) hundreds of times.
        assert!((0.15..0.25).contains(&share(repeats)), "{}", share(repeats));
        assert!(busiest_places.len() > 400, "{}", busiest_places.len());
        assert_eq!(seen["u-9-0"].0, busiest_places.len());
        // ...on other sites and apps each time, as people are.
        busiest_places.sort_unstable();
        busiest_places.dedup();
        assert!(busiest_places.len() > 50, "{busiest_places:?}");
        // The other 40% are strangers, some without a user id; 30% without a floor.
        assert!(
            (0.04..0.08).contains(&share(anonymous)),
            "{}",
            share(anonymous)
        );
        assert!(
            (0.27..0.33).contains(&share(no_floor)),
            "{}",
            share(no_floor)
        );
    }

    #[test]
    fn a_returning_crowds_requests_carry_what_exchanges_send_at_realistic_shares() {
        let generator = Generator::new(3);
        let crowd = Crowd::Returning { users: 100_000 };
        let n = 20_000;
        let mut tmax: HashMap<u32, usize> = HashMap::new();
        let (mut two, mut secure, mut tagged, mut keywords) = (0, 0, 0, 0);
        let (mut banners, mut multi, mut gdpr, mut consented, mut us) = (0, 0, 0, 0, 0);
        for i in 0..n {
            let visitor = generator.visitor_in(crowd, i);
            let person = &visitor.person;
            let detail = visitor
                .detail
                .as_ref()
                .expect("every request has its detail");
            assert!(person.hardware.is_some(), "{person:?}");
            assert_eq!(person.ifa.is_some(), person.device_type != 2, "{person:?}");
            *tmax.entry(detail.tmax).or_default() += 1;
            two += usize::from(detail.second.is_some());
            secure += usize::from(detail.secure);
            tagged += usize::from(!person.tags.is_empty());
            keywords += usize::from(detail.keywords);
            assert!(!detail.keywords || !person.tags.is_empty());
            let slots = std::iter::once((&visitor.slot, &detail.format))
                .chain(detail.second.iter().map(|p| (&p.slot, &p.format)));
            for (slot, format) in slots {
                let AdSlot::Banner { w, h } = *slot else {
                    assert!(format.is_empty(), "{slot:?} {format:?}");
                    continue;
                };
                banners += 1;
                multi += usize::from(format.len() > 1);
                assert_eq!(format[0], (w, h), "its own size first");
                for size in format {
                    assert!(ANY_SIZES.iter().any(|(s, _)| s == size), "{size:?}");
                }
            }
            let law = person.country.and_then(Market::of).map(|m| m.law);
            assert_eq!(detail.regs.gdpr, law.map(|l| l == Law::Gdpr), "{law:?}");
            assert!(detail.regs.consent.is_none() || law == Some(Law::Gdpr));
            assert_eq!(
                detail.regs.us_privacy.is_some(),
                law == Some(Law::UsPrivacy)
            );
            gdpr += usize::from(detail.regs.gdpr == Some(true));
            consented += usize::from(detail.regs.consent.is_some_and(|c| !c.is_empty()));
            us += usize::from(detail.regs.us_privacy.is_some());
            let reserved = ["192.0.2.", "198.51.100.", "203.0.113."];
            assert!(
                reserved.iter().any(|r| detail.ip.starts_with(r)),
                "{}",
                detail.ip
            );
        }
        let share = |k: usize, of: usize| k as f64 / of as f64;
        assert_eq!(tmax.len(), TMAX.len());
        for (t, count) in tmax {
            assert!((0.23..0.27).contains(&share(count, n)), "tmax {t}: {count}");
        }
        assert!((0.09..0.11).contains(&share(two, n)), "two imps {two}");
        assert!((0.48..0.52).contains(&share(secure, n)), "secure {secure}");
        let keywords = share(keywords, tagged);
        assert!((0.47..0.53).contains(&keywords), "keywords {keywords}");
        let multi = share(multi, banners);
        assert!((0.27..0.32).contains(&multi), "multi-size {multi}");
        // The GDPR's markets weigh about a third of the traffic; most of it consents.
        assert!((0.25..0.40).contains(&share(gdpr, n)), "gdpr {gdpr}");
        let consented = share(consented, gdpr);
        assert!(
            (0.87..0.93).contains(&consented),
            "consent strings {consented}"
        );
        assert!((0.30..0.45).contains(&share(us, n)), "us_privacy {us}");
    }
}
