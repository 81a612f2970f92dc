//! The store: the campaign directory (with its `taxonomy.toml`) and the audience directory → an
//! immutable [`Snapshot`], swapped in atomically; and the state events feed back into bidding
//! ([`Feedback`]: learned rates, spend, exposures), which it owns.
//!
//! Requests read the current snapshot through arc-swap without ever waiting; a reload parses,
//! validates, ranks and indexes ([`crate::book::index`]) off the request path and publishes the
//! result with one pointer swap, so a request sees either the old campaigns or the new ones, never
//! a mix. Validation is per file: a file
//! that fails keeps its last good version serving (a new broken file is simply not loaded), and its
//! errors are kept for `/status`. Unchanged files are not parsed again (audience packages: not read
//! again while their length and modification time stay the same). Campaigns are checked against the
//! taxonomy and the packages of the same reload; a broken taxonomy keeps its last good version.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::audience::Library;
use crate::book::frequency::Exposures;
use crate::book::index::Index;
use crate::book::learning::Learned;
use crate::book::pacing::Pacer;
use crate::book::ranking::{self, Ranked};
use crate::campaign::file::Context;
use crate::campaign::pricing::Rates;
use crate::campaign::taxonomy::{self, Taxonomy};
use crate::campaign::{self, Campaign};
use crate::diagnostic::FileError;
use crate::eventlog::{Event, Kind};
use crate::metrics::Exposition;

/// Everything the bidder serves from, as of one reload (and the latest repricing).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counts reloads since start; 1 is the first load.
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    /// How long the reload that made this snapshot took (listing, reading, compiling, ranking).
    pub took: Duration,
    /// Active campaigns in auction order, with their current prices (see [`ranking::rank`]).
    pub ranked: Vec<Ranked>,
    /// `ranked`'s index: finds a request's candidates without walking every campaign.
    pub index: Arc<Index>,
    /// Every loaded campaign (paused ones too), by file.
    pub files: BTreeMap<PathBuf, Loaded>,
    /// The same campaigns by id.
    by_id: HashMap<String, Arc<Campaign>>,
    /// Files refused in this reload, with why (campaign files and the taxonomy). A refused file
    /// may still serve its last good version.
    pub refused: Vec<FileError>,
    /// The tag tree campaigns were checked against (the last good `taxonomy.toml`), if any.
    pub taxonomy: Option<Arc<Taxonomy>>,
    /// The audience packages, with the files refused in this reload.
    pub audiences: Arc<Library>,
}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub campaign: Arc<Campaign>,
    /// Hash of the file contents it was compiled from.
    hash: u64,
}

/// What logged events teach the bidder, rebuilt at start from the state snapshot and the log
/// written after it ([`crate::measure::checkpoint`]): rates (which price
/// CPC and CPS campaigns), spend (which budgets hold against) and exposures (which frequency caps
/// count).
#[derive(Debug)]
pub struct Feedback {
    pub learned: Learned,
    pub pacer: Pacer,
    pub exposures: Exposures,
}

impl Feedback {
    /// Counts a logged event into what it teaches: rates, spend (a win settles its reservation)
    /// and exposures. `campaign` is its campaign, when still loaded.
    pub fn observe(&self, event: &Event, campaign: Option<&Campaign>) {
        let Feedback {
            learned,
            pacer,
            exposures,
        } = self;
        learned.observe(event);
        let user = event
            .user
            .as_deref()
            .and_then(|u| u64::from_str_radix(u, 16).ok());
        match (event.event, campaign, user) {
            (Kind::Win, _, _) => {
                let tz = campaign.map_or(chrono_tz::UTC, |c| c.timezone);
                pacer.settle(&event.bid, &event.campaign, tz, event.spend_usd, event.ts);
            }
            (Kind::Imp, Some(campaign), Some(user)) => exposures.shown(user, campaign, event.ts),
            (Kind::Conv, Some(campaign), Some(user)) => {
                exposures.converted(user, campaign, event.ts);
            }
            _ => {}
        }
    }

    /// An empty one with the same settings: what a state snapshot is read into.
    pub fn empty_like(&self) -> Feedback {
        Feedback {
            learned: self.learned.empty_like(),
            pacer: self.pacer.empty_like(),
            exposures: self.exposures.empty_like(),
        }
    }
}

/// The live campaigns, how to refresh them, and what events taught about them.
pub struct Store {
    dir: PathBuf,
    /// The audience package directory: `audiences` next to the campaign directory.
    audiences: PathBuf,
    rates: Rates,
    /// What campaigns have measured, spent and shown; budgeted campaigns' accounts are attached
    /// to them when they are ranked.
    feedback: Feedback,
    /// Each campaign's bid counter by id, attached to it when it is ranked, so that reloads and
    /// repricing keep counting where they were.
    bids: DashMap<String, Arc<AtomicU64>>,
    current: ArcSwap<Snapshot>,
    /// Serialises reloads (the watcher, SIGHUP and the admin route may ask at once). Held only by
    /// the reloading thread, never by a request.
    reloading: Mutex<()>,
    /// Reloads asked for since the first load, and those that could not read the directory.
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Snapshot {
    /// A loaded campaign by id, paused ones included (events arrive after a campaign stops).
    pub fn campaign(&self, id: &str) -> Option<&Arc<Campaign>> {
        self.by_id.get(id)
    }
}

impl Store {
    /// Loads `dir` for the first time. Fails only if the directory cannot be listed.
    pub fn open(dir: &Path, rates: Rates, feedback: Feedback) -> std::io::Result<Store> {
        let empty = Snapshot {
            generation: 0,
            loaded_at: Utc::now(),
            took: Duration::ZERO,
            ranked: Vec::new(),
            index: Arc::new(Index::build(&[])),
            files: BTreeMap::new(),
            by_id: HashMap::new(),
            refused: Vec::new(),
            taxonomy: None,
            audiences: Arc::default(),
        };
        let store = Store {
            dir: dir.to_owned(),
            audiences: audience_dir(dir),
            rates,
            feedback,
            bids: DashMap::new(),
            current: ArcSwap::from_pointee(empty),
            reloading: Mutex::new(()),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        };
        store.load()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn audience_dir(&self) -> &Path {
        &self.audiences
    }

    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    pub fn learned(&self) -> &Learned {
        &self.feedback.learned
    }

    pub fn pacer(&self) -> &Pacer {
        &self.feedback.pacer
    }

    pub fn exposures(&self) -> &Exposures {
        &self.feedback.exposures
    }

    /// What events taught: learned rates, spend and reservations, exposures.
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }

    /// Counts a logged event into what it teaches (see [`Feedback::observe`]).
    pub fn observe(&self, event: &Event, campaign: Option<&Campaign>) {
        self.feedback.observe(event, campaign);
    }

    /// Forgets what time has expired as of `now`: budget reservations no win claimed, frequency
    /// windows that are over. Walks maps: off the request path.
    pub fn expire(&self, now: DateTime<Utc>) {
        self.feedback.pacer.sweep(now);
        self.feedback.exposures.sweep(now);
    }

    /// The current snapshot. Wait-free; hold it for the length of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Ranks the current campaigns again at the prices learned since, and swaps that in.
    pub fn reprice(&self) -> Arc<Snapshot> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        next.ranked = self.rank(next.ranked.iter().map(|r| r.campaign.clone()));
        next.index = Arc::new(Index::build(&next.ranked));
        let next = Arc::new(next);
        self.current.store(next.clone());
        next
    }

    fn rank(&self, campaigns: impl IntoIterator<Item = Arc<Campaign>>) -> Vec<Ranked> {
        ranking::rank(campaigns, &self.rates, |c| Ranked {
            account: self.feedback.pacer.account_for(&c),
            bids: self.bids.entry(c.id.clone()).or_default().clone(),
            ..Ranked::learned(c, &self.feedback.learned)
        })
    }

    /// Re-reads the directory and swaps in the result, counted in `/metrics`. On an error listing
    /// the directory the current snapshot stays as it is.
    pub fn reload(&self) -> std::io::Result<Arc<Snapshot>> {
        let result = self.load();
        let counter = match result {
            Ok(_) => &self.reloads,
            Err(_) => &self.reload_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn load(&self) -> std::io::Result<Arc<Snapshot>> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let previous = self.current.load_full();
        let paths = campaign_files(std::slice::from_ref(&self.dir))?;
        let Sources {
            taxonomy,
            audiences,
            mut refused,
        } = Sources::load(
            &self.dir,
            &self.audiences,
            previous.taxonomy.clone(),
            &previous.audiences,
        );
        let names = audiences.names();
        let context = Context {
            rates: &self.rates,
            taxonomy: taxonomy.as_deref(),
            audiences: Some(&names),
        };
        let (files, campaigns_refused) = compile(&paths, &previous.files, &context);
        refused.extend(campaigns_refused);
        let ranked = self.rank(files.values().map(|l| l.campaign.clone()));
        let index = Arc::new(Index::build(&ranked));
        let next = Arc::new(Snapshot {
            generation: previous.generation + 1,
            loaded_at: Utc::now(),
            took: started.elapsed(),
            ranked,
            index,
            by_id: files
                .values()
                .map(|l| (l.campaign.id.clone(), l.campaign.clone()))
                .collect(),
            files,
            refused,
            taxonomy,
            audiences,
        });
        self.current.store(next.clone());
        Ok(next)
    }
}

impl Store {
    /// The store's metrics: what is loaded and refused, reloads, why matching campaigns stepped
    /// aside, budgets' and frequency caps' state, and each live campaign's bids, wins and spend.
    pub fn report(&self, out: &mut Exposition) {
        let snapshot = self.snapshot();
        let load = |n: usize| n as u64;
        for (name, help, value) in [
            (
                "precis_campaigns_live",
                "Active campaigns in the auction.",
                load(snapshot.ranked.len()),
            ),
            (
                "precis_campaign_files_refused",
                "Campaign files refused by the last reload.",
                load(snapshot.refused.len()),
            ),
            (
                "precis_reload_generation",
                "Reloads applied since start.",
                snapshot.generation,
            ),
            (
                "precis_audience_files_refused",
                "Audience package files refused by the last reload.",
                load(snapshot.audiences.refused.len()),
            ),
        ] {
            out.gauge(name, help, value);
        }
        out.gauges(
            "precis_audience_users",
            "Users in each loaded audience package.",
            "package",
            snapshot.audiences.packages().map(|p| (&p.name, p.users())),
        );
        out.counter(
            "precis_reloads_total",
            "Campaign reloads run after a change, SIGHUP or /admin/reload.",
            self.reloads.load(Ordering::Relaxed),
        );
        out.counter(
            "precis_reload_failures_total",
            "Reloads that could not read the campaign directory.",
            self.reload_failures.load(Ordering::Relaxed),
        );
        let Feedback {
            learned,
            pacer,
            exposures,
        } = &self.feedback;
        let counted = |n: &AtomicU64| n.load(Ordering::Relaxed);
        out.counters(
            "precis_candidates_stepped_aside_total",
            "Campaigns that matched but let the next one bid, by reason.",
            "reason",
            [
                ("out_of_budget", counted(&pacer.out_of_budget)),
                ("throttled", counted(&pacer.throttled)),
                ("spend_unrecorded", counted(&pacer.spend_unrecorded)),
                ("frequency_capped", counted(&exposures.capped)),
            ],
        );
        pacer.report(out);
        exposures.report(out);
        // Ids are letters, digits, `.`, `_` and `-`: they need no escaping as label values.
        type Value = fn(&Ranked, &Learned) -> f64;
        let families: [(&str, &str, Value); 3] = [
            (
                "precis_campaign_bids_total",
                "Bids made, per live campaign, since start.",
                |r, _| r.bids.load(Ordering::Relaxed) as f64,
            ),
            (
                "precis_campaign_wins_total",
                "Win notices logged, per live campaign (replayed from the event log at start).",
                |r, l| l.counts(&r.campaign.id).wins as f64,
            ),
            (
                "precis_campaign_spend_usd_total",
                "Clearing prices won, USD, per live campaign (replayed from the event log at start).",
                |r, l| l.counts(&r.campaign.id).spend_usd,
            ),
        ];
        for (name, help, value) in families {
            let series = snapshot
                .ranked
                .iter()
                .map(|r| (&r.campaign.id, value(r, learned)));
            out.counters(name, help, "campaign", series);
        }
    }
}

/// What campaigns are checked against: the taxonomy of their directory and the audience packages.
pub struct Sources {
    pub taxonomy: Option<Arc<Taxonomy>>,
    pub audiences: Arc<Library>,
    /// The taxonomy, when it was refused (its last good version, if any, is `taxonomy`).
    pub refused: Vec<FileError>,
}

impl Sources {
    /// Reads `dir`'s taxonomy and the packages of `audience_dir`, falling back to the last good
    /// taxonomy and reusing unchanged packages of `previous`.
    pub fn load(
        dir: &Path,
        audience_dir: &Path,
        last_good: Option<Arc<Taxonomy>>,
        previous: &Library,
    ) -> Sources {
        let mut refused = Vec::new();
        let taxonomy = match Taxonomy::load(dir) {
            None => None,
            Some(Ok(taxonomy)) => Some(Arc::new(taxonomy)),
            Some(Err(error)) => {
                refused.push(error);
                last_good
            }
        };
        Sources {
            taxonomy,
            audiences: Arc::new(Library::load(audience_dir, previous)),
            refused,
        }
    }
}

/// What checking campaign files found (`precis check`).
#[derive(Debug)]
pub struct Checked {
    /// How many campaign files were named.
    pub files: usize,
    /// Those that compiled, by file.
    pub loaded: BTreeMap<PathBuf, Loaded>,
    /// Every file refused: campaign files, then the taxonomy, then audience packages.
    pub refused: Vec<FileError>,
    /// The taxonomy the campaigns were checked against, if the directory has one.
    pub taxonomy: Option<Arc<Taxonomy>>,
    /// How many audience packages their names were checked against.
    pub packages: usize,
}

/// Checks the campaign files `paths` name (a directory: its campaign files) as a reload would,
/// against the taxonomy and the audience packages of the first directory among them, else of
/// `dir`. Fails only when a path cannot be listed.
pub fn check(paths: &[PathBuf], dir: &Path, rates: &Rates) -> std::io::Result<Checked> {
    let files = campaign_files(paths)?;
    let dir = paths
        .iter()
        .find(|p| p.is_dir())
        .map_or(dir, PathBuf::as_path);
    let sources = Sources::load(dir, &audience_dir(dir), None, &Library::default());
    let names = sources.audiences.names();
    let context = Context {
        rates,
        taxonomy: sources.taxonomy.as_deref(),
        audiences: Some(&names),
    };
    let (loaded, mut refused) = compile(&files, &BTreeMap::new(), &context);
    refused.extend(sources.refused);
    refused.extend(sources.audiences.refused.iter().cloned());
    Ok(Checked {
        files: files.len(),
        loaded,
        refused,
        taxonomy: sources.taxonomy,
        packages: names.len(),
    })
}

/// The campaigns of `dir` that compile on their own, without its taxonomy and packages: what a
/// report of the log can name (a campaign refused for a tag is still the campaign its events
/// belong to).
pub fn compile_dir(dir: &Path, rates: &Rates) -> std::io::Result<Vec<Arc<Campaign>>> {
    let files = campaign_files(&[dir.to_owned()])?;
    let context = Context {
        rates,
        taxonomy: None,
        audiences: None,
    };
    let (loaded, _) = compile(&files, &BTreeMap::new(), &context);
    Ok(loaded.into_values().map(|l| l.campaign).collect())
}

/// Where the audience packages of campaign directory `dir` are: `audiences` next to it.
pub fn audience_dir(dir: &Path) -> PathBuf {
    dir.parent().unwrap_or(Path::new("")).join("audiences")
}

/// The campaign files named by `paths`: each `*.toml` in a directory (not hidden, not descending,
/// not the taxonomy), or a file named directly. Sorted, so duplicate ids are resolved the same way every time.
pub fn campaign_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            std::fs::metadata(path)?;
            files.push(path.clone());
            continue;
        }
        let listed = crate::files::list(path, &[".toml"])?;
        files.extend(listed.into_iter().filter(|f| !f.ends_with(taxonomy::FILE)));
    }
    files.sort();
    Ok(files)
}

/// Compiles `paths` in `context`, reusing `previous` for files whose contents (and context) have
/// not changed and falling back to it for files that fail. Returns what loaded (by file) and what
/// was refused.
pub fn compile(
    paths: &[PathBuf],
    previous: &BTreeMap<PathBuf, Loaded>,
    context: &Context,
) -> (BTreeMap<PathBuf, Loaded>, Vec<FileError>) {
    // A new taxonomy or a package added or removed may change a file's verdict: check it again.
    let context_hash = {
        let mut hasher = DefaultHasher::new();
        context.taxonomy.map(Taxonomy::tags).hash(&mut hasher);
        context.audiences.hash(&mut hasher);
        hasher.finish()
    };
    let mut files = BTreeMap::new();
    let mut refused = Vec::new();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        let last_good = previous.get(path);
        let result = std::fs::read(path)
            .map_err(|e| whole_file_error(path, format!("cannot read: {e}")))
            .and_then(|bytes| {
                let hash = content_hash(&bytes) ^ context_hash;
                if let Some(good) = last_good.filter(|l| l.hash == hash) {
                    return Ok(good.clone());
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| whole_file_error(path, "not UTF-8 text".into()))?;
                let campaign = campaign::file::parse_in(&text, path, context)?;
                Ok(Loaded {
                    campaign: Arc::new(campaign),
                    hash,
                })
            });
        let loaded = match result {
            Ok(loaded) => Some(loaded),
            Err(error) => {
                refused.push(error);
                last_good.cloned()
            }
        };
        let Some(loaded) = loaded else { continue };
        match owners.get(&loaded.campaign.id) {
            Some(owner) => refused.push(whole_file_error(
                path,
                format!(
                    "campaign id `{}` is already used by {}",
                    loaded.campaign.id,
                    owner.display()
                ),
            )),
            None => {
                owners.insert(loaded.campaign.id.clone(), path.clone());
                files.insert(path.clone(), loaded);
            }
        }
    }
    (files, refused)
}

/// A problem with a whole campaign file, shown at its start.
fn whole_file_error(path: &Path, message: String) -> FileError {
    FileError::at(path, 1, 1, message)
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
