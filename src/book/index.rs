//! The index: which campaigns could possibly bid on a request, found without walking them all.
//!
//! Built from the ranked campaigns each time they are ranked (off the request path) and swapped in
//! with them. For each indexed dimension (country, region, city, radius by map cell, device type,
//! OS, tags with their ancestors, site categories with their parents) it keeps, per value, the set
//! of campaigns whose included term names that value, plus the set of campaigns with no term on
//! that dimension; for each creative shape (banner size, video, native) the campaigns that have
//! one. Sets are bitsets over auction order. This is the conjunctive part of "indexing boolean
//! expressions" (Whang et al., VLDB 2009) with bitmap posting lists, which suits a few dozen values
//! per dimension and campaigns counted in the hundred thousands.
//!
//! A request's [`Query`] looks its values up once, then works out candidates a block of four
//! 64-campaign words at a time, best first, ANDing the dimensions' ORs from the most selective: the
//! auction stops at its winner, usually in the first blocks, so what a request costs hardly grows
//! with the number of campaigns (the whole sets were combined before: 1,563 words per set at
//! 100,000 campaigns).
//!
//! The index only narrows: a candidate is then checked in full (targeting, flight, blocks,
//! exclusions, the creative fit), so its answer is always the plain per-campaign evaluation's.
//! Dimensions it does not index (schedule, connection, age, gender, sites, apps, all-of tags,
//! audience packages of campaigns and creatives) and exclusions are decided on the candidates alone.

use foldhash::HashMap;
use std::hash::Hash;

use crate::book::ranking::Ranked;
use crate::campaign::CreativeFormat;
use crate::campaign::targeting::Term;
use crate::forms::ancestors;
use crate::request::facts::Facts;
use crate::request::geo::{Country, Point};
use crate::request::openrtb::Imp;

/// Device type codes are OpenRTB's, below 32 (see [`crate::campaign::targeting::Codes`]).
const DEVICE_CODES: u32 = 32;

/// Map cells of the radius index, in degrees of latitude and longitude.
const CELL_DEGREES: f64 = 0.5;

/// A circle spanning more cells than this (a huge radius, or near a pole) is not put in cells:
/// its campaign counts as free of the radius dimension and is checked in full.
const MAX_CELLS: usize = 400;

/// Kilometres per degree of latitude.
const KM_PER_DEGREE: f64 = 111.19;

/// A set of campaign ordinals (positions in auction order), with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bits {
    words: Vec<u64>,
    ones: usize,
}

impl Bits {
    fn empty(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
            ones: 0,
        }
    }

    fn full(len: usize) -> Bits {
        let mut bits = Bits::empty(len);
        for i in 0..len {
            bits.insert(i);
        }
        bits
    }

    fn insert(&mut self, i: usize) {
        let (word, bit) = (&mut self.words[i / 64], 1 << (i % 64));
        if *word & bit == 0 {
            *word |= bit;
            self.ones += 1;
        }
    }

    /// Heap bytes.
    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// One targeting dimension: the campaigns free of it, and those that name each value.
#[derive(Debug)]
struct Dimension<K> {
    free: Bits,
    by: HashMap<K, Bits>,
}

impl<K: Hash + Eq> Dimension<K> {
    fn new(len: usize) -> Dimension<K> {
        Dimension {
            free: Bits::empty(len),
            by: HashMap::default(),
        }
    }

    fn add(&mut self, campaign: usize, values: impl IntoIterator<Item = K>, len: usize) {
        for value in values {
            self.by
                .entry(value)
                .or_insert_with(|| Bits::empty(len))
                .insert(campaign);
        }
    }

    /// Adds to `query` the clause of this dimension: campaigns free of it or naming one of
    /// `values`. None when no campaign constrains it.
    fn clause<'i, 'v, Q>(&'i self, query: &mut Query<'i>, values: impl Iterator<Item = &'v Q>)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized + 'v,
    {
        if !self.by.is_empty() {
            let named = values.filter_map(|value| self.by.get(value));
            query.clause(std::iter::once(&self.free).chain(named));
        }
    }

    fn bytes(&self) -> usize {
        self.free.bytes() + self.by.values().map(|b| b.bytes() + 48).sum::<usize>()
    }
}

/// The index of one ranked campaign list.
#[derive(Debug)]
pub struct Index {
    all: Bits,
    countries: Dimension<Country>,
    /// By subdivision code (`CA` of `US-CA`): the country is checked in full.
    regions: Dimension<String>,
    cities: Dimension<String>,
    /// By map cell: every cell a circle's bounding box touches.
    near: Dimension<(i32, i32)>,
    devices: Dimension<u32>,
    os: Dimension<String>,
    tags: Dimension<String>,
    categories: Dimension<String>,
    /// The longest tag and category any campaign names, in bytes: a request's ancestors longer than
    /// that name no campaign, and are skipped without being hashed.
    longest_tag: usize,
    longest_category: usize,
    /// Campaigns with a banner of each size, a video, a native creative.
    banners: HashMap<(u32, u32), Bits>,
    video: Bits,
    native: Bits,
}

impl Index {
    /// Indexes `ranked`; ordinals are positions in it.
    pub fn build(ranked: &[Ranked]) -> Index {
        let len = ranked.len();
        let mut index = Index {
            all: Bits::full(len),
            countries: Dimension::new(len),
            regions: Dimension::new(len),
            cities: Dimension::new(len),
            near: Dimension::new(len),
            devices: Dimension::new(len),
            os: Dimension::new(len),
            tags: Dimension::new(len),
            categories: Dimension::new(len),
            longest_tag: 0,
            longest_category: 0,
            banners: HashMap::default(),
            video: Bits::empty(len),
            native: Bits::empty(len),
        };
        for (i, entry) in ranked.iter().enumerate() {
            let campaign = &entry.campaign;
            let mut constrained = Constrained::default();
            for term in &campaign.targeting.include {
                match term {
                    Term::Countries(list) => {
                        index.countries.add(i, list.iter().copied(), len);
                        constrained.country = true;
                    }
                    Term::Regions(list) => {
                        index
                            .regions
                            .add(i, list.iter().map(|r| r.code.clone()), len);
                        constrained.region = true;
                    }
                    Term::Cities(list) => {
                        index.cities.add(i, list.iter().cloned(), len);
                        constrained.city = true;
                    }
                    Term::Near(circles) => {
                        let cells: Option<Vec<Vec<(i32, i32)>>> =
                            circles.iter().map(|c| cells(&c.center, c.km)).collect();
                        if let Some(cells) = cells {
                            index.near.add(i, cells.into_iter().flatten(), len);
                            constrained.near = true;
                        }
                    }
                    Term::DeviceTypes(codes) => {
                        let named = (0..DEVICE_CODES).filter(|&c| codes.contains(c));
                        index.devices.add(i, named, len);
                        constrained.device = true;
                    }
                    Term::Os(list) => {
                        index.os.add(i, list.iter().cloned(), len);
                        constrained.os = true;
                    }
                    Term::TagsAny(list) => {
                        let longest = list.iter().map(String::len).max().unwrap_or(0);
                        index.longest_tag = index.longest_tag.max(longest);
                        index.tags.add(i, list.iter().cloned(), len);
                        constrained.tags = true;
                    }
                    Term::Categories(list) => {
                        let longest = list.iter().map(String::len).max().unwrap_or(0);
                        index.longest_category = index.longest_category.max(longest);
                        index.categories.add(i, list.iter().cloned(), len);
                        constrained.categories = true;
                    }
                    _ => {}
                }
            }
            for (constrained, dimension) in [
                (constrained.country, &mut index.countries.free),
                (constrained.region, &mut index.regions.free),
                (constrained.city, &mut index.cities.free),
                (constrained.near, &mut index.near.free),
                (constrained.device, &mut index.devices.free),
                (constrained.os, &mut index.os.free),
                (constrained.tags, &mut index.tags.free),
                (constrained.categories, &mut index.categories.free),
            ] {
                if !constrained {
                    dimension.insert(i);
                }
            }
            for creative in &campaign.creatives {
                match (&creative.format, creative.w, creative.h) {
                    (CreativeFormat::Banner, Some(w), Some(h)) => index
                        .banners
                        .entry((w, h))
                        .or_insert_with(|| Bits::empty(len))
                        .insert(i),
                    (CreativeFormat::Banner, ..) => {}
                    (CreativeFormat::Video(_), ..) => index.video.insert(i),
                    (CreativeFormat::Native, ..) => index.native.insert(i),
                }
            }
        }
        index
    }

    /// What `facts` asks of the index: each dimension's sets, looked up once per request.
    pub fn query(&self, facts: &Facts) -> Query<'_> {
        let mut query = Query {
            index: self,
            sets: Vec::with_capacity(32),
            clauses: Vec::with_capacity(10),
        };
        let q = &mut query;
        self.countries.clause(q, facts.country.iter());
        let region = facts.region.as_ref().map(|r| r.code.as_str());
        self.regions.clause(q, region.iter().copied());
        self.cities.clause(q, facts.city.iter().map(String::as_str));
        let cell = facts.point.as_ref().map(cell);
        self.near.clause(q, cell.iter());
        self.devices.clause(q, facts.device_type.iter());
        self.os.clause(q, facts.os.iter().map(String::as_str));
        // A request tag matches campaigns naming it or any of its ancestors (`a/b/c`: `a/b`, `a`).
        let longest = self.longest_tag;
        let tags = facts.tags.iter().flat_map(|t| ancestors(t, '/', longest));
        self.tags.clause(q, tags);
        let longest = self.longest_category;
        let categories = (facts.categories.iter()).flat_map(|c| ancestors(c, '-', longest));
        self.categories.clause(q, categories);
        // The most selective first: a word that one clause empties is not read by the others.
        query.clauses.sort_by_key(|c| c.ones);
        query
    }

    /// The sets of the creative shapes `imp` takes: its banner sizes, video, native.
    fn shapes<'i>(&'i self, imp: &Imp) -> Vec<&'i [u64]> {
        let mut shapes = Vec::new();
        if let Some(banner) = &imp.banner {
            let sizes = std::iter::once((banner.w, banner.h))
                .chain(banner.format.iter().map(|f| (f.w, f.h)));
            for size in sizes {
                if let (Some(w), Some(h)) = size
                    && let Some(bits) = self.banners.get(&(w, h))
                {
                    shapes.push(&bits.words[..]);
                }
            }
        }
        if imp.video.is_some() {
            shapes.push(&self.video.words);
        }
        if imp.native.is_some() {
            shapes.push(&self.native.words);
        }
        shapes
    }

    /// Heap bytes the index takes.
    pub fn bytes(&self) -> usize {
        self.all.bytes()
            + self.countries.bytes()
            + self.regions.bytes()
            + self.cities.bytes()
            + self.near.bytes()
            + self.devices.bytes()
            + self.os.bytes()
            + self.tags.bytes()
            + self.categories.bytes()
            + self.banners.values().map(|b| b.bytes() + 48).sum::<usize>()
            + self.video.bytes()
            + self.native.bytes()
    }
}

/// One request's question to the index: the AND of clauses, each the OR of a few sets (a
/// dimension's free campaigns and those naming one of the request's values). Nothing is combined
/// up front: candidates are worked out a block of words at a time, in auction order, so an
/// auction that finds its winner in the first blocks never reads the rest, whatever the number of
/// campaigns.
pub struct Query<'i> {
    index: &'i Index,
    /// The sets of every clause, clause after clause.
    sets: Vec<&'i [u64]>,
    /// Where each clause's sets lie in `sets`, most selective clause first.
    clauses: Vec<Clause>,
}

/// A clause of a [`Query`]: `sets[start..end]`, which hold `ones` campaigns at most.
#[derive(Clone, Copy)]
struct Clause {
    start: usize,
    end: usize,
    ones: usize,
}

impl<'i> Query<'i> {
    fn clause(&mut self, sets: impl Iterator<Item = &'i Bits>) {
        let start = self.sets.len();
        let mut ones = 0;
        for bits in sets {
            ones += bits.ones;
            self.sets.push(&bits.words);
        }
        let end = self.sets.len();
        self.clauses.push(Clause { start, end, ones });
    }

    /// Words `b * LANES ..` of the OR of `sets` (zero past the end).
    fn any(sets: &[&[u64]], b: usize) -> Block {
        let mut any = [0; LANES];
        for set in sets {
            let words = set.get(b * LANES..).unwrap_or_default();
            for (any, word) in any.iter_mut().zip(words) {
                *any |= word;
            }
        }
        any
    }

    /// Block `b` of the candidates among `first` (sets of words of the same length).
    fn block(&self, first: &[&[u64]], b: usize) -> Block {
        let mut block = Query::any(first, b);
        for clause in &self.clauses {
            if block == [0; LANES] {
                break;
            }
            let sets = self.sets.get(clause.start..clause.end).unwrap_or_default();
            for (word, any) in block.iter_mut().zip(Query::any(sets, b)) {
                *word &= any;
            }
        }
        block
    }

    /// The campaigns that could match the request: a superset of those that do, best first.
    pub fn candidates(&self) -> Candidates<'_> {
        Candidates::new(self, vec![&self.index.all.words])
    }

    /// The candidates with a creative of a shape `imp` takes, best first.
    pub fn fitting(&self, imp: &Imp) -> Candidates<'_> {
        Candidates::new(self, self.index.shapes(imp))
    }
}

/// Words worked out together: four 64-campaign words, which the compiler ORs and ANDs as one
/// 256-bit value. Fewer, wider steps than a word at a time; the auction still stops within 256
/// campaigns of its winner.
const LANES: usize = 4;

/// [`LANES`] consecutive words of a set.
type Block = [u64; LANES];

/// The candidates of a [`Query`] in auction order, worked out a block at a time as they are read.
pub struct Candidates<'q> {
    query: &'q Query<'q>,
    /// The sets the first clause ORs: every campaign, or those of an imp's shapes.
    first: Vec<&'q [u64]>,
    /// Blocks in all, and the next block to work out.
    blocks: usize,
    next: usize,
    /// What is left of the current block, and the ordinal of its first campaign.
    block: Block,
    base: usize,
}

impl<'q> Candidates<'q> {
    fn new(query: &'q Query<'q>, first: Vec<&'q [u64]>) -> Candidates<'q> {
        Candidates {
            blocks: query.index.all.words.len().div_ceil(LANES),
            query,
            first,
            next: 0,
            block: [0; LANES],
            base: 0,
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            let lanes = self.block.iter_mut().enumerate();
            if let Some((lane, word)) = lanes.into_iter().find(|(_, word)| **word != 0) {
                let bit = word.trailing_zeros() as usize;
                *word &= *word - 1;
                return Some(self.base + lane * 64 + bit);
            }
            if self.next >= self.blocks || self.first.is_empty() {
                return None;
            }
            self.block = self.query.block(&self.first, self.next);
            self.base = self.next * LANES * 64;
            self.next += 1;
        }
    }
}

/// Which dimensions one campaign's included terms constrain.
#[derive(Default)]
struct Constrained {
    country: bool,
    region: bool,
    city: bool,
    near: bool,
    device: bool,
    os: bool,
    tags: bool,
    categories: bool,
}

/// The map cell of a point.
fn cell(point: &Point) -> (i32, i32) {
    (
        (point.lat / CELL_DEGREES).floor() as i32,
        (point.lon / CELL_DEGREES).floor() as i32,
    )
}

/// Every cell the bounding box of a circle touches; `None` when that is more than [`MAX_CELLS`]
/// (near a pole, across the antimeridian, or a continent-sized radius).
fn cells(center: &Point, km: f64) -> Option<Vec<(i32, i32)>> {
    // 5% wider than the circle: the box must hold it whole.
    let lat_span = 1.05 * km / KM_PER_DEGREE;
    let cos = (center.lat.abs() + lat_span).min(90.0).to_radians().cos();
    if cos < 0.01 {
        return None;
    }
    let lon_span = lat_span / cos;
    let corner = |lat: f64, lon: f64| cell(&Point { lat, lon });
    let (south, west) = corner(center.lat - lat_span, center.lon - lon_span);
    let (north, east) = corner(center.lat + lat_span, center.lon + lon_span);
    let crosses = center.lon - lon_span < -180.0 || center.lon + lon_span > 180.0;
    let count = (north - south + 1) as usize * (east - west + 1) as usize;
    if crosses || count > MAX_CELLS {
        return None;
    }
    Some(
        (south..=north)
            .flat_map(|lat| (west..=east).map(move |lon| (lat, lon)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::pricing::Rates;
    use crate::request::openrtb::decode;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn a_tag_or_category_of_120_000_levels_finds_the_campaign_naming_an_ancestor() {
        // Looking up each of its 120,000 ancestors (hashing ~7 GB) took minutes per request; what
        // such a request costs is benched (`cargo bench --bench bid_path -- hostile`).
        let text = "adomain = [\"a.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = 1.0\n\
                    [targeting]\ntags_any = [\"a/a\"]\ncategories = [\"IAB1-IAB1\"]\n\
                    [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 300\nh = 250\n\
                    adm = \"ad\"\nlanding = \"https://a.example/\"";
        let rates = Rates::new([]);
        let campaign = crate::campaign::file::parse(text, Path::new("deep.toml"), &rates).unwrap();
        let ranked = crate::book::ranking::rank([Arc::new(campaign)], &rates, Ranked::from_file);
        let index = Index::build(&ranked);
        let tag = vec!["a"; 120_000].join("/");
        let category = vec!["IAB1"; 120_000].join("-");
        let body = format!(
            r#"{{"id": "r", "imp": [{{"id": "1", "banner": {{"w": 300, "h": 250}}}}],
                "site": {{"cat": ["{category}"]}}, "user": {{"keywords": "{tag}"}}}}"#
        );
        let request = decode(body.as_bytes()).unwrap();
        let facts = Facts::from_request(&request, "2026-11-23T09:00:00Z".parse().unwrap());
        assert!(ranked[0].campaign.targeting.matches(&facts));
        assert!(index.query(&facts).candidates().any(|i| i == 0));
    }
}
