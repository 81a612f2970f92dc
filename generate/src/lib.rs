//! The seeded synthetic world precis is tested and measured on: real places, an interest taxonomy
//! tree, campaign files (`precis gen-campaigns`) and the bid requests that meet them, at any scale,
//! the same for the same seed, byte for byte.
//!
//! A campaign is drawn the way a real book looks: an advertiser in a vertical (one of the 18 roots of
//! the [`tree()`]), a home market (real countries weighted toward the big ones, real regions,
//! cities and coordinates from [`places`]), audience tags from its vertical's subtree, contextual IAB
//! categories, a device class, sometimes dayparting in its local time zone, a pricing model
//! (CPM, CPC, CPS) with realistic prices, one to four creatives of common IAB sizes (some video and
//! native), and sometimes a budget, a frequency cap, KPIs, a flight, exclusions, a paused status.
//! Most campaigns target a few countries or cities, a device class and a few tags or categories; a
//! few are broad run-of-network. A [`Visitor`] is the request side, drawn from the same places and
//! the same tree, so that a plausible request matches a few dozen of 10,000 campaigns and some
//! match none; visitors come as strangers or as a [`Crowd`] of returning users with stable
//! profiles and devices, whose requests carry what exchanges send besides (more imps and sizes,
//! deadlines, privacy signals): what the load generator sends.
//!
//! Each campaign (and visitor) draws from its own random stream of the seed ([`Rng::stream`]), so
//! campaign `n` is the same whether made alone, among 100 or among 100,000, on one thread or many.
//!
//! It makes text and values only and knows nothing of precis: whether precis reads them (compiles
//! the files, decodes the requests, checks the tags) is tested on the bidder's side, which depends
//! on this crate, never the other way round; so the load generator uses it without the bidder.

mod devices;
pub mod places;
mod privacy;
pub mod rng;
pub mod tree;
mod visitor;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use devices::{Hardware, ZERO_IFA};
pub use places::{City, Law, MARKETS, Market, draw_city, draw_market};
pub use privacy::{CONSENT_ALL, CONSENT_MEASUREMENT, CONSENT_NONE, Regs};
pub use rng::Rng;
pub use tree::{Node, Tree, draw_root, tree};
pub use visitor::{AdSlot, Crowd, Detail, Person, Placement, Visitor};

use tree::ROOTS;

/// Makes campaign files from a seed.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    /// Currencies other than USD that campaigns of markets paying in them may be priced in.
    currencies: Vec<String>,
}

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        let _ = write!($out, $($arg)*);
    };
}

impl Generator {
    /// Every campaign priced in USD, which `precis check` and `serve` accept without a rates table.
    pub fn new(seed: u64) -> Generator {
        Generator {
            seed,
            currencies: Vec::new(),
        }
    }

    /// Lets campaigns of markets that pay in one of `currencies` (ISO codes, e.g. `EUR`, `GBP`) be
    /// priced in it, most of the time. Serving them needs a rate for each under `[currencies]`.
    pub fn with_currencies<S: AsRef<str>>(mut self, currencies: &[S]) -> Generator {
        self.currencies = currencies
            .iter()
            .map(|c| c.as_ref().trim().to_ascii_uppercase())
            .filter(|c| c != "USD")
            .collect();
        self
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Campaign `index`'s id, which is also its file stem: `gen-000042`.
    pub fn id(index: usize) -> String {
        format!("gen-{index:06}")
    }

    /// Campaign `index`'s file name: `gen-000042.toml`.
    pub fn file_name(index: usize) -> String {
        format!("{}.toml", Generator::id(index))
    }

    /// The text of campaign file `index`.
    pub fn campaign(&self, index: usize) -> String {
        let mut out = String::with_capacity(4096);
        self.write_campaign(index, &mut out);
        out
    }

    /// Appends the text of campaign file `index` to `out`.
    pub fn write_campaign(&self, index: usize, out: &mut String) {
        let mut rng = Rng::stream(self.seed, index as u64);
        Draft::new(self, index, &mut rng, out).write();
    }

    /// Request-side visitor `index` of this seed (a stream apart from the campaigns'), someone
    /// new: where they are, on what, interested in what, looking at which slot.
    pub fn visitor(&self, index: usize) -> Visitor {
        self.visitor_in(Crowd::Strangers, index)
    }

    /// Visitor `index` of this seed from `crowd`: of [`Crowd::Strangers`], the same as
    /// [`Generator::visitor`]; of [`Crowd::Returning`], often someone seen before.
    pub fn visitor_in(&self, crowd: Crowd, index: usize) -> Visitor {
        Visitor::of(self.seed, crowd, index)
    }
}

/// What [`write_dir`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{0} exists and is not empty: refusing to mix generated campaigns with what is there (choose a new directory, or --force to write into it anyway)"
    )]
    NotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes campaign files `0..count` into `dir`, creating it. A directory that exists and holds
/// anything is refused unless `force`, when same-named files are replaced and others left alone.
/// Two threads share the files (each file is built in memory and written with one call). The
/// taxonomy file their tags are checked against is the bidder's to write.
pub fn write_dir(
    generator: &Generator,
    count: usize,
    dir: &Path,
    force: bool,
) -> Result<Written, WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(WriteError::NotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?
        }
        Err(e) => return Err(io(dir)(e)),
    }
    const THREADS: usize = 2;
    // A thread that fails (a full disk) stops the other too.
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Written, WriteError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let failed = &failed;
                scope.spawn(move || {
                    let mut text = String::with_capacity(8192);
                    let mut written = Written { files: 0, bytes: 0 };
                    for index in (t..count).step_by(THREADS) {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        text.clear();
                        generator.write_campaign(index, &mut text);
                        let path = dir.join(Generator::file_name(index));
                        std::fs::File::create(&path)
                            .and_then(|mut file| file.write_all(text.as_bytes()))
                            .map_err(|e| {
                                failed.store(true, Ordering::Relaxed);
                                io(&path)(e)
                            })?;
                        written.files += 1;
                        written.bytes += text.len() as u64;
                    }
                    Ok(written)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a generator thread panicked"))
            .collect()
    });
    results
        .into_iter()
        .try_fold(Written { files: 0, bytes: 0 }, |sum, part| {
            let part = part?;
            Ok(Written {
                files: sum.files + part.files,
                bytes: sum.bytes + part.bytes,
            })
        })
}

// ---------------------------------------------------------------------------------------------
// One campaign file.

/// Approximate units per USD of the currencies local prices may be quoted in, so that a EUR or JPY
/// campaign's prices look like that currency's (precis converts with the configured rates).
const PER_USD: &[(&str, f64)] = &[
    ("EUR", 0.92),
    ("GBP", 0.79),
    ("JPY", 150.0),
    ("CNY", 7.2),
    ("CAD", 1.36),
    ("INR", 83.0),
    ("BRL", 5.0),
    ("AUD", 1.52),
    ("KRW", 1350.0),
    ("MXN", 17.0),
    ("SEK", 10.5),
    ("PLN", 4.0),
    ("CHF", 0.88),
];

/// What kind of screen a campaign is bought for; decides its creatives and its price level.
#[derive(Clone, Copy, PartialEq)]
enum Screens {
    Any,
    Mobile,
    Desktop,
    Ctv,
}

/// `device_types` lists with their odds, and the screens each means.
const DEVICE_TARGETS: &[((&str, Screens), u32)] = &[
    ((r#"["phone"]"#, Screens::Mobile), 25),
    ((r#"["phone", "tablet"]"#, Screens::Mobile), 20),
    ((r#"["mobile"]"#, Screens::Mobile), 15),
    ((r#"["desktop"]"#, Screens::Desktop), 20),
    ((r#"["tablet"]"#, Screens::Mobile), 4),
    ((r#"["desktop", "tablet"]"#, Screens::Any), 5),
    ((r#"["ctv"]"#, Screens::Ctv), 11),
];

/// IAB standard display sizes and how often each is bought, by screen.
const MOBILE_SIZES: &[((u32, u32), u32)] = &[
    ((320, 50), 30),
    ((300, 250), 30),
    ((320, 480), 10),
    ((320, 100), 10),
    ((300, 50), 6),
    ((728, 90), 4),
];
const DESKTOP_SIZES: &[((u32, u32), u32)] = &[
    ((300, 250), 30),
    ((728, 90), 22),
    ((300, 600), 12),
    ((160, 600), 10),
    ((970, 250), 8),
    ((336, 280), 6),
    ((970, 90), 5),
    ((468, 60), 3),
];
const ANY_SIZES: &[((u32, u32), u32)] = &[
    ((300, 250), 30),
    ((728, 90), 15),
    ((320, 50), 15),
    ((300, 600), 8),
    ((160, 600), 6),
    ((970, 250), 5),
    ((320, 480), 5),
    ((336, 280), 4),
    ((320, 100), 4),
    ((300, 50), 3),
    ((970, 90), 3),
    ((468, 60), 2),
];

const HOURS: &[(&str, u32)] = &[
    ("[[6, 10], [17, 23]]", 25),
    ("[[9, 18]]", 20),
    ("[[18, 24]]", 15),
    ("[[7, 23]]", 20),
    ("[[11, 14], [17, 21]]", 10),
    ("[[0, 6]]", 5),
    ("[[12, 24]]", 5),
];
const DAYS: &[(&str, u32)] = &[
    (r#"["mon", "tue", "wed", "thu", "fri"]"#, 60),
    (r#"["sat", "sun"]"#, 25),
    (r#"["thu", "fri", "sat"]"#, 15),
];
const AGES: &[&str] = &[
    "[18, 24]", "[18, 34]", "[25, 34]", "[25, 44]", "[35, 54]", "[45, 64]", "[55, 99]",
];
const TACTICS: &[&str] = &[
    "prospecting",
    "retargeting",
    "brand awareness",
    "seasonal sale",
    "always on",
    "product launch",
    "app install",
    "conquest",
];
/// First words of advertiser names; the second word comes from the vertical.
const BRANDS: &[&str] = &[
    "Northwind",
    "Bluebird",
    "Summit",
    "Brightline",
    "Urbano",
    "Greenleaf",
    "Silverline",
    "Oakridge",
    "Harbor",
    "Atlas",
    "Nimbus",
    "Redwood",
    "Lumen",
    "Crescent",
    "Pioneer",
    "Vertex",
    "Maple",
    "Coastal",
    "Evergreen",
    "Horizon",
    "Ironwood",
    "Juniper",
    "Kestrel",
    "Meridian",
    "Nova",
    "Orchid",
    "Polaris",
    "Quarry",
    "Riverside",
    "Sterling",
];
/// The second word of an advertiser's name, per root (in `ROOTS` order).
const TRADES: [&[&str]; 18] = [
    &["Market", "Outlet", "Store"],
    &["Studios", "Pictures", "Records"],
    &["Times", "Daily", "Herald"],
    &["Labs", "Devices", "Software"],
    &["Travel", "Airways", "Hotels"],
    &["Motors", "Auto", "Cars"],
    &["Bank", "Capital", "Insurance"],
    &["Kitchen", "Foods", "Coffee"],
    &["Health", "Pharmacy", "Clinics"],
    &["Sports", "Athletics", "Outdoors"],
    &["Apparel", "Boutique", "Beauty"],
    &["Games", "Interactive", "Arcade"],
    &["Home", "Furnishings", "Garden"],
    &["Kids", "Baby", "Family"],
    &["Solutions", "Partners", "Consulting"],
    &["Academy", "Learning", "University"],
    &["Realty", "Homes", "Properties"],
    &["Pet Supply", "Vets", "Petcare"],
];
const EXCLUSIONS: &[(&str, u32)] = &[
    (r#"categories = ["IAB25", "IAB26"]"#, 50),
    (r#"categories = ["IAB7-39", "IAB11", "IAB14"]"#, 15),
    (r#"tags = ["family/teens", "family/parenting"]"#, 10),
    (r#"countries = ["RUS", "PRK", "IRN"]"#, 10),
    (r#"os = ["android"]"#, 5),
    (r#"connection = ["2g", "3g"]"#, 10),
];

/// Publisher domains and app bundles a context (root) has: campaigns may list them, visitors are
/// on them.
fn site_domain(root: &str, k: usize) -> String {
    format!("{root}-{k}.example")
}

fn app_bundle(root: &str, k: usize) -> String {
    format!("com.example.{}{k}", root.replace('-', ""))
}

/// Publishers per context.
const PUBLISHERS: usize = 40;

struct Draft<'a> {
    generator: &'a Generator,
    index: usize,
    id: String,
    rng: &'a mut Rng,
    out: &'a mut String,
    /// Index of the vertical's root in the taxonomy's nodes, and its ordinal among the roots.
    root: usize,
    vertical: usize,
    market: &'static Market,
    screens: Screens,
    /// The advertiser's name and domain (`adomain`).
    advertiser: String,
    domain: String,
}

impl<'a> Draft<'a> {
    fn new(
        generator: &'a Generator,
        index: usize,
        rng: &'a mut Rng,
        out: &'a mut String,
    ) -> Draft<'a> {
        let vertical = tree::draw_root(rng);
        let market = places::draw_market(rng);
        Draft {
            generator,
            index,
            id: Generator::id(index),
            rng,
            out,
            root: tree().roots()[vertical],
            vertical,
            market,
            screens: Screens::Any,
            advertiser: String::new(),
            domain: String::new(),
        }
    }

    fn write(mut self) {
        let broad = self.rng.chance(0.005);
        self.advertiser();
        // The header and the prices depend on things decided below (time zone, screens, video):
        // draw targeting and creatives into their own buffers, then assemble.
        let mut targeting = String::with_capacity(1024);
        let timezone = self.targeting(broad, &mut targeting);
        let mut creatives = String::with_capacity(2048);
        let video = self.creatives(&mut creatives);
        self.header(timezone);
        self.pricing(video);
        self.out.push_str(&targeting);
        self.limits();
        self.out.push_str(&creatives);
    }

    /// Who pays: a brand name and a trade of the vertical, and their domain.
    fn advertiser(&mut self) {
        let brand = *self.rng.pick(BRANDS);
        let trade = *self.rng.pick(TRADES[self.vertical]);
        self.advertiser = format!("{brand} {trade}");
        self.domain = format!(
            "{}-{}.example",
            brand.to_ascii_lowercase(),
            trade.to_ascii_lowercase().replace(' ', "-")
        );
    }

    fn header(&mut self, timezone: &str) {
        let spec = &ROOTS[self.vertical];
        let (advertiser, domain) = (&self.advertiser, &self.domain);
        let subject = spec.children[self.rng.below(spec.children.len())]
            .0
            .replace('-', " ");
        let tactic = *self.rng.pick(TACTICS);
        put!(
            self.out,
            "# generated by precis gen-campaigns, seed {}, campaign {}\n",
            self.generator.seed,
            self.index
        );
        put!(
            self.out,
            "name = \"{advertiser}: {subject}, {tactic} ({})\"\n",
            self.market.country
        );
        put!(self.out, "advertiser = \"{advertiser}\"\n");
        put!(self.out, "adomain = [\"{domain}\"]\n");
        match (spec.iab_subcategories, self.rng.chance(0.4)) {
            (n @ 1.., true) => {
                put!(
                    self.out,
                    "cat = [\"{0}\", \"{0}-{1}\"]\n",
                    spec.iab,
                    self.rng.between(1, n as usize)
                );
            }
            _ => {
                put!(self.out, "cat = [\"{}\"]\n", spec.iab);
            }
        }
        if self.rng.chance(0.06) {
            self.out.push_str("status = \"paused\"\n");
        }
        if self.rng.chance(0.12) {
            // A flight somewhere in 2026–2027: some over, some running, some still to come.
            let start = self.rng.below(18);
            let months = self.rng.between(1, 9);
            let end = start + months - 1;
            put!(
                self.out,
                "start = {}-{:02}-01\nend = {}-{:02}-28\n",
                2026 + start / 12,
                start % 12 + 1,
                2026 + end / 12,
                end % 12 + 1
            );
        }
        put!(self.out, "timezone = \"{timezone}\"\n");
    }

    /// Writes `[targeting]` (and its exclusions) to `out`; answers the campaign's time zone.
    fn targeting(&mut self, broad: bool, out: &mut String) -> &'static str {
        out.push_str("\n[targeting]\n");
        let market = self.market;
        let mut timezone = market.timezone();
        // Geo: where the campaign runs.
        let geo = self.rng.unit();
        if broad || geo < 0.64 {
            let n = match self.rng.unit() {
                x if x < 0.55 => 1,
                x if x < 0.80 => 2,
                x if x < 0.95 => 3,
                _ => self.rng.between(5, 8),
            };
            let mut countries = vec![market.country];
            for _ in 1..n * 2 {
                let other = places::draw_market(self.rng);
                if countries.len() < n && !countries.contains(&other.country) {
                    countries.push(other.country);
                }
            }
            put!(out, "countries = {}\n", list(&countries));
        } else if geo < 0.75 {
            let mut regions: Vec<&str> = Vec::new();
            for _ in 0..self.rng.between(1, 3) {
                let city = self.city();
                if !regions.contains(&city.region) {
                    regions.push(city.region);
                }
                timezone = city.timezone;
            }
            put!(out, "regions = {}\n", list(&regions));
        } else if geo < 0.89 {
            let mut cities: Vec<&str> = Vec::new();
            for _ in 0..self.rng.between(1, 4) {
                let city = self.city();
                if !cities.contains(&city.name) {
                    cities.push(city.name);
                }
                timezone = city.timezone;
            }
            put!(out, "cities = {}\n", list(&cities));
        } else if geo < 0.95 {
            let circles: Vec<String> = (0..self.rng.between(1, 2))
                .map(|_| {
                    let city = self.city();
                    timezone = city.timezone;
                    let km = self.rng.pick(&[5, 10, 15, 25, 50]);
                    format!("{{ lat = {}, lon = {}, km = {km} }}", city.lat, city.lon)
                })
                .collect();
            put!(out, "near = [{}]\n", circles.join(", "));
        }
        // else: every country (a global brand), narrowed by what follows.

        // Screens.
        if self.rng.chance(0.65) {
            let (types, screens) = *self.rng.weighted(DEVICE_TARGETS);
            self.screens = screens;
            put!(out, "device_types = {types}\n");
            if self.rng.chance(0.25) {
                let os = match screens {
                    Screens::Mobile => {
                        *self
                            .rng
                            .pick(&[r#"["ios"]"#, r#"["android"]"#, r#"["ios", "android"]"#])
                    }
                    Screens::Desktop => *self.rng.pick(&[
                        r#"["windows"]"#,
                        r#"["macos"]"#,
                        r#"["windows", "macos"]"#,
                    ]),
                    _ => "",
                };
                if !os.is_empty() {
                    put!(out, "os = {os}\n");
                }
            }
        }
        if self.rng.chance(0.03) {
            let connection = *self
                .rng
                .pick(&[r#"["wifi"]"#, r#"["cellular"]"#, r#"["4g", "5g"]"#]);
            put!(out, "connection = {connection}\n");
        }
        if broad {
            return timezone;
        }

        // Audience and context.
        let tagged = self.rng.unit();
        if tagged < 0.70 {
            let n = self.rng.between(2, 5);
            let tags = self.tags(n);
            put!(out, "tags_any = {}\n", list(&tags));
        } else if tagged < 0.75 {
            // An intersection: the vertical and an interest elsewhere (travel and credit cards).
            let mut tags = self.tags(1);
            let other = tree().roots()[self.rng.below(ROOTS.len())];
            if other != self.root {
                tags.push(self.node(other, 2));
            }
            put!(out, "tags_all = {}\n", list(&tags));
        }
        if tagged >= 0.75 || self.rng.chance(0.15) {
            let spec = &ROOTS[self.vertical];
            let mut categories = vec![spec.iab.to_owned()];
            if spec.iab_subcategories > 0 && self.rng.chance(0.5) {
                // Narrower: subcategories only.
                categories = (0..self.rng.between(1, 3))
                    .map(|_| {
                        let n = self.rng.between(1, spec.iab_subcategories as usize);
                        format!("{}-{n}", spec.iab)
                    })
                    .collect();
            }
            if self.rng.chance(0.2) {
                categories.push(ROOTS[self.rng.below(ROOTS.len())].iab.to_owned());
            }
            categories.sort_unstable();
            categories.dedup();
            put!(out, "categories = {}\n", list(&categories));
        }
        if self.rng.chance(0.25) {
            put!(out, "hours = {}\n", self.rng.weighted(HOURS));
            if self.rng.chance(0.5) {
                put!(out, "days = {}\n", self.rng.weighted(DAYS));
            }
        }
        if self.rng.chance(0.10) {
            put!(out, "age = {}\n", self.rng.pick(AGES));
        }
        if self.rng.chance(0.06) {
            put!(out, "gender = [\"{}\"]\n", self.rng.pick(&["f", "m"]));
        }
        if self.rng.chance(0.03) {
            // A publisher allow list in the vertical's context.
            let name = ROOTS[self.vertical].name;
            let (key, publishers): (&str, Vec<String>) = if self.rng.chance(0.5) {
                let sites = (0..self.rng.between(1, 4))
                    .map(|_| site_domain(name, self.rng.below(PUBLISHERS)))
                    .collect();
                ("sites", sites)
            } else {
                let apps = (0..self.rng.between(1, 4))
                    .map(|_| app_bundle(name, self.rng.below(PUBLISHERS)))
                    .collect();
                ("apps", apps)
            };
            put!(out, "{key} = {}\n", list(&publishers));
        }
        if self.rng.chance(0.12) {
            put!(
                out,
                "\n[targeting.exclude]\n{}\n",
                self.rng.weighted(EXCLUSIONS)
            );
        }
        timezone
    }

    /// A city of the home market, the big ones more often.
    fn city(&mut self) -> &'static City {
        places::draw_city(self.rng, self.market)
    }

    /// `n` distinct tags of the vertical, mostly on its second and third levels, one in seven from
    /// another root.
    fn tags(&mut self, n: usize) -> Vec<String> {
        let roots = tree().roots();
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            let root = if self.rng.chance(1.0 / 7.0) {
                roots[self.rng.below(roots.len())]
            } else {
                self.root
            };
            let depth = match self.rng.unit() {
                x if x < 0.04 => 1,
                x if x < 0.50 => 2,
                x if x < 0.88 => 3,
                _ => 4,
            };
            let tag = self.node(root, depth);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        tags
    }

    /// A node at `depth` under `root`, uniformly (`root` itself when none is that deep).
    fn node(&mut self, root: usize, depth: u8) -> String {
        let subtree = tree().subtree(root);
        let at: Vec<&Node> = subtree.iter().filter(|n| n.depth == depth).collect();
        if at.is_empty() {
            return subtree[0].path.clone();
        }
        at[self.rng.below(at.len())].path.clone()
    }

    /// `[pricing]`: the model, priced for the screens and formats bought (`video`: some creative is).
    fn pricing(&mut self, video: bool) {
        let local = self.market.currency;
        let priced_locally =
            self.generator.currencies.iter().any(|c| c == local) && self.rng.chance(0.8);
        let currency = if priced_locally { local } else { "USD" };
        let rate = PER_USD
            .iter()
            .find(|(c, _)| *c == currency)
            .map_or(1.0, |(_, r)| *r);
        let money = |usd: f64| round_money(usd * rate);
        self.out.push_str("\n[pricing]\nmodel = \"");
        let model = self.rng.unit();
        // Typical CPMs: display 0.5–8, video 6–25, CTV 18–45 USD.
        let (low, high) = match self.screens {
            Screens::Ctv => (18.0, 45.0),
            _ if video => (6.0, 25.0),
            _ => (0.5, 8.0),
        };
        if model < 0.60 || self.screens == Screens::Ctv {
            let cpm = money(self.rng.log_range(low, high));
            put!(self.out, "cpm\"\ncpm = {cpm}\n");
        } else if model < 0.85 {
            let ctr = self.rng.log_range(0.0008, 0.012);
            let cpc = money(self.rng.log_range(0.15, 4.0));
            let ecpm = cpc * ctr * 1000.0;
            let max_cpm = round_money((ecpm * self.rng.range(0.8, 2.0)).max(0.05 * rate));
            put!(
                self.out,
                "cpc\"\ncpc = {cpc}\nctr = {ctr:.4}\nmax_cpm = {max_cpm}\n"
            );
        } else {
            let commission = self.rng.range(0.02, 0.15);
            let order_value = money(self.rng.log_range(25.0, 400.0));
            let cvr = self.rng.range(0.005, 0.05);
            let ctr = self.rng.log_range(0.001, 0.01);
            let ecpm = commission * order_value * cvr * ctr * 1000.0;
            let max_cpm = round_money((ecpm * self.rng.range(0.8, 2.5)).max(0.05 * rate));
            put!(
                self.out,
                "cps\"\ncommission = {commission:.3}\norder_value = {order_value}\n\
                 cvr = {cvr:.4}\nctr = {ctr:.4}\nmax_cpm = {max_cpm}\n"
            );
        }
        if currency != "USD" {
            put!(self.out, "currency = \"{currency}\"\n");
        }
    }

    /// `[kpi]`, `[budget]` and `[frequency]`, each for some campaigns.
    fn limits(&mut self) {
        if self.rng.chance(0.08) {
            self.out.push_str("\n[kpi]\n");
            match self.rng.below(3) {
                0 => {
                    put!(self.out, "min_ctr = {:.4}\n", self.rng.range(0.001, 0.005));
                }
                1 => {
                    put!(self.out, "min_roi = {:.1}\n", self.rng.range(1.1, 3.0));
                }
                _ => {
                    put!(
                        self.out,
                        "max_cost_per_order = {}\n",
                        round_money(self.rng.log_range(10.0, 80.0))
                    );
                }
            }
        }
        if self.rng.chance(0.30) {
            // Large: real budgets, which pacing spreads but which do not stop a benchmark.
            let daily = 100.0 * self.rng.log_range(10.0, 1000.0).round();
            put!(self.out, "\n[budget]\ndaily = {daily:.0}\n");
            if self.rng.chance(0.4) {
                put!(
                    self.out,
                    "total = {:.0}\n",
                    daily * self.rng.between(30, 120) as f64
                );
            }
            if self.rng.chance(0.3) {
                self.out.push_str("pacing = \"asap\"\n");
            }
        }
        if self.rng.chance(0.20) {
            let per =
                *self
                    .rng
                    .weighted(&[("day", 60), ("week", 20), ("hour", 10), ("flight", 10)]);
            let impressions = match per {
                "hour" => self.rng.between(1, 3),
                "day" => self.rng.between(2, 10),
                _ => self.rng.between(5, 30),
            };
            put!(
                self.out,
                "\n[frequency]\nimpressions = {impressions}\nper = \"{per}\"\n"
            );
            if self.rng.chance(0.25) {
                self.out.push_str("stop_after_conversion = true\n");
            }
        }
    }

    /// One to four `[[creative]]` tables fit for the campaign's screens, written to `out`; whether
    /// one is a video.
    fn creatives(&mut self, out: &mut String) -> bool {
        let domain = self.domain.clone();
        let n = *self.rng.weighted(&[(1u32, 25), (2, 35), (3, 25), (4, 15)]);
        let mut sizes_used: Vec<(u32, u32)> = Vec::new();
        let mut video = false;
        for k in 1..=n {
            let format = if self.screens == Screens::Ctv {
                1
            } else {
                *self.rng.weighted(&[(0, 72), (1, 16), (2, 12)])
            };
            let landing = format!(
                "https://www.{domain}/{}?utm_source=precis&utm_campaign={}&utm_content=c{k}",
                self.rng
                    .pick(&["offer", "shop", "landing", "promo", "products", "signup"]),
                self.id
            );
            match format {
                0 => {
                    let sizes = match self.screens {
                        Screens::Mobile => MOBILE_SIZES,
                        Screens::Desktop => DESKTOP_SIZES,
                        _ => ANY_SIZES,
                    };
                    let (w, h) = *self.rng.weighted(sizes);
                    if sizes_used.contains(&(w, h)) {
                        continue;
                    }
                    sizes_used.push((w, h));
                    put!(
                        out,
                        "\n[[creative]]\nid = \"c{k}-{w}x{h}\"\nformat = \"banner\"\nw = {w}\nh = {h}\n\
                         adm = '<a href=\"${{CLICK_URL}}\" target=\"_blank\"><img src=\"https://cdn.{domain}/{}/c{k}-{w}x{h}.jpg\" \
                         width=\"{w}\" height=\"{h}\" alt=\"\" style=\"border:0\"></a>'\n\
                         landing = \"{landing}\"\n",
                        self.id
                    );
                }
                1 => {
                    self.video(out, k, &domain, &landing);
                    video = true;
                }
                _ => {
                    put!(
                        out,
                        "\n[[creative]]\nid = \"c{k}-native\"\nformat = \"native\"\n\
                         adm = '{{\"native\":{{\"ver\":\"1.2\",\"link\":{{\"url\":\"${{CLICK_URL}}\"}},\"assets\":[\
                         {{\"id\":1,\"title\":{{\"text\":\"{}\"}}}},\
                         {{\"id\":2,\"img\":{{\"url\":\"https://cdn.{domain}/{}/c{k}-1200x627.jpg\",\"w\":1200,\"h\":627}}}},\
                         {{\"id\":3,\"data\":{{\"value\":\"{}\"}}}}]}}}}'\n\
                         landing = \"{landing}\"\n",
                        self.rng.pick(&[
                            "Up to 40% off this week",
                            "See what is new this season",
                            "Free delivery on your first order",
                            "Try it free for 30 days",
                            "Book now, pay later",
                        ]),
                        self.id,
                        self.rng
                            .pick(&["Shop now", "Learn more", "Sign up", "Get offer"]),
                    );
                }
            }
        }
        video
    }

    fn video(&mut self, out: &mut String, k: u32, domain: &str, landing: &str) {
        let seconds = *self
            .rng
            .weighted(&[(6u32, 15), (15, 45), (30, 35), (60, 5)]);
        let vast = *self.rng.weighted(&[
            ("4.0", 35),
            ("3.0", 30),
            ("4.2", 15),
            ("2.0", 10),
            ("4.1", 10),
        ]);
        let (mime, ext) = *self
            .rng
            .weighted(&[(("video/mp4", "mp4"), 85), (("video/webm", "webm"), 15)]);
        let (w, h) = *self.rng.weighted(&[
            ((1920u32, 1080u32), 35),
            ((1280, 720), 25),
            ((640, 360), 20),
            ((0, 0), 20),
        ]);
        put!(
            out,
            "\n[[creative]]\nid = \"c{k}-video{seconds}s\"\nformat = \"video\"\n"
        );
        if w > 0 {
            put!(out, "w = {w}\nh = {h}\n");
        }
        let (media_w, media_h) = if w > 0 { (w, h) } else { (1280, 720) };
        put!(
            out,
            "mime = \"{mime}\"\nduration = {seconds}\nvast = \"{vast}\"\n\
             adm = '<VAST version=\"{vast}\"><Ad id=\"{id}-c{k}\"><InLine><AdSystem>precis</AdSystem>\
             <AdTitle>{id} c{k}</AdTitle><Impression><![CDATA[${{IMP_URL}}]]></Impression><Creatives><Creative><Linear>\
             <Duration>00:{:02}:{:02}</Duration><VideoClicks><ClickThrough><![CDATA[${{CLICK_URL}}]]></ClickThrough>\
             </VideoClicks><MediaFiles><MediaFile delivery=\"progressive\" type=\"{mime}\" width=\"{media_w}\" \
             height=\"{media_h}\"><![CDATA[https://cdn.{domain}/{id}/c{k}-{seconds}s.{ext}]]></MediaFile></MediaFiles>\
             </Linear></Creative></Creatives></InLine></Ad></VAST>'\nlanding = \"{landing}\"\n",
            seconds / 60,
            seconds % 60,
            id = self.id,
        );
    }
}

/// Money with at most two decimals and never 0 (0.01 at least).
fn round_money(x: f64) -> f64 {
    ((x * 100.0).round() / 100.0).max(0.01)
}

/// A TOML array of plain strings.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        put!(out, "\"{}\"", item.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_files_and_another_seed_others() {
        let a = Generator::new(7);
        let b = Generator::new(7);
        let c = Generator::new(8);
        for index in [0, 1, 17, 999, 123_456] {
            assert_eq!(a.campaign(index), b.campaign(index));
            assert_ne!(a.campaign(index), c.campaign(index));
        }
        let all: Vec<String> = (0..50).map(|i| a.campaign(i)).collect();
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), all.len(), "every campaign its own");
    }
}
