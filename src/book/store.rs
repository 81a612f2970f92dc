//! The store: the campaign directory (with its `taxonomy.toml`) and the audience directory → an
//! immutable [`Snapshot`], swapped in atomically; and the state events feed back into bidding
//! ([`Feedback`]: learned rates, spend, exposures), which it owns.
//!
//! Requests read the current snapshot through arc-swap without ever waiting; a reload parses,
//! validates, ranks and indexes ([`crate::book::index`]) off the request path and publishes the
//! result with one pointer swap, so a request sees either the old campaigns or the new ones, never
//! a mix. Validation is per file: a file that fails keeps its last good version serving (a new
//! broken file is simply not loaded), and its errors are kept for `/status`.
//!
//! What people write can never hurt the set being served ([`Loading`]):
//! - a file is read only once it has stood still for the quiet period (written that long ago, or
//!   seen unchanged that long); until then it is *pending* and its last good version serves, and
//!   the snapshot says when to look again ([`Snapshot::recheck`]);
//! - the set of files changes only once the directory's own list has stood still as long, so a
//!   directory being copied in or deleted file by file is never published half-way;
//! - a directory that is missing or holds no campaign file never replaces campaigns serving: the
//!   last good set is held, and [`Snapshot::held`] says why;
//! - files over the size limit are refused without being read whole, symbolic links leading
//!   outside the directory are refused (the taxonomy's too), and two files claiming one id are
//!   both refused while the one that was serving it keeps serving;
//! - only files whose [`Stamp`] changed are read again (audience packages: while their length and
//!   modification time stay the same). Campaigns are checked against the taxonomy and the packages
//!   of the same reload (a change there checks every file again); a broken taxonomy keeps its last
//!   good version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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
use crate::campaign::{self, Campaign, Limits};
use crate::diagnostic::FileError;
use crate::eventlog::{Event, Kind};
use crate::files::{self, Bounded, Stamp};
use crate::metrics::Exposition;

/// The quiet period campaign files wait by default (`[reload] quiet_ms`).
pub const QUIET: Duration = Duration::from_millis(500);

/// A file written less than this before it was read may change again within the same tick of the
/// filesystem's clock without its stamp changing: it is read again next time rather than trusted.
const CLOCK_TICK: Duration = Duration::from_millis(50);

/// At start, how many quiet periods the first load waits, at most, for files still being written
/// before it serves what has settled.
const START_WAIT_QUIET_PERIODS: u32 = 10;

/// How the store reads campaign files (`[reload]`).
#[derive(Debug, Clone, Copy)]
pub struct Loading {
    /// How long a file (and the directory's list of files) must stand still before it is read.
    pub quiet: Duration,
    pub limits: Limits,
}

impl Default for Loading {
    fn default() -> Loading {
        Loading {
            quiet: QUIET,
            limits: Limits::default(),
        }
    }
}

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
    /// Files changed but not read yet because they have not stood still for the quiet period.
    pub pending: Vec<Pending>,
    /// Why the campaign set is held as it was instead of following the directory (missing, or
    /// holding no campaign file), when it is.
    pub held: Option<String>,
    /// When the files pending should have settled: the next reload is due then.
    pub recheck: Option<Instant>,
    /// Campaign files read (and compiled) by the reload that made this snapshot.
    pub files_read: usize,
    /// The tag tree campaigns were checked against (the last good `taxonomy.toml`), if any.
    pub taxonomy: Option<Arc<Taxonomy>>,
    /// The audience packages, with the files refused in this reload.
    pub audiences: Arc<Library>,
}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub campaign: Arc<Campaign>,
}

/// A campaign file changed but not read yet.
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: PathBuf,
    /// Why it waits: the file is still being written, or the directory's list still changes.
    pub why: &'static str,
    /// Whether its last good version serves meanwhile.
    pub serving_last_good: bool,
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
    loading: Loading,
    /// What reloads know of the files, behind the lock that serialises reloads (the watcher,
    /// SIGHUP and the admin route may ask at once). Held only by the reloading thread, never by a
    /// request.
    reloading: Mutex<Tracked>,
    /// Reloads asked for since the first load, and those that could not read the directory.
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Campaign files read (and compiled) since start: unchanged files are not read again.
    files_read: AtomicU64,
}

impl Snapshot {
    /// A loaded campaign by id, paused ones included (events arrive after a campaign stops).
    pub fn campaign(&self, id: &str) -> Option<&Arc<Campaign>> {
        self.by_id.get(id)
    }
}

/// What reloads remember of the campaign files between them.
#[derive(Default)]
struct Tracked {
    /// Each file's last reading, by path.
    readings: HashMap<PathBuf, Reading>,
    /// Files seen not yet settled: the stamp seen, and since when it has stood still.
    unsettled: HashMap<PathBuf, (Stamp, Instant)>,
    /// The same for the directory itself (its stamp moves when a file is added, removed or
    /// renamed).
    directory: Option<(Stamp, Instant)>,
    /// The files of the set last applied, in order.
    listed: Vec<PathBuf>,
}

/// One campaign file as last read: what it compiled to, valid while its stamp and the context
/// (taxonomy, packages, limits) stay the same.
struct Reading {
    stamp: Stamp,
    context: u64,
    /// False when the file was written so shortly before it was read that it may have changed
    /// again unseen: it is read again next time.
    trusted: bool,
    result: Result<Arc<Campaign>, FileError>,
}

/// What a reload found of one file.
enum Seen {
    /// Read now, or unchanged since last read.
    Compiled(Result<Arc<Campaign>, FileError>),
    /// Changed and not settled: look again after this long.
    Changing(Duration),
    /// No longer there (its directory's change not applied yet).
    Gone,
}

impl Store {
    /// Loads `dir` for the first time with the default limits and no quiet period: what is
    /// there is read at once, as `precis check` reads it (tests and tools; the bidder serves with
    /// [`Store::open_with`]). Fails only if the directory cannot be listed.
    pub fn open(dir: &Path, rates: Rates, feedback: Feedback) -> std::io::Result<Store> {
        let loading = Loading {
            quiet: Duration::ZERO,
            ..Loading::default()
        };
        Store::open_with(dir, rates, feedback, loading)
    }

    /// Loads `dir` for the first time. Files still being written are waited for (up to
    /// [`START_WAIT_QUIET_PERIODS`] quiet periods), so that the first set served is a settled
    /// one; any still changing then load when they settle. Fails only if the directory cannot be
    /// listed. Blocks.
    pub fn open_with(
        dir: &Path,
        rates: Rates,
        feedback: Feedback,
        loading: Loading,
    ) -> std::io::Result<Store> {
        let empty = Snapshot {
            generation: 0,
            loaded_at: Utc::now(),
            took: Duration::ZERO,
            ranked: Vec::new(),
            index: Arc::new(Index::build(&[])),
            files: BTreeMap::new(),
            by_id: HashMap::new(),
            refused: Vec::new(),
            pending: Vec::new(),
            held: None,
            recheck: None,
            files_read: 0,
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
            loading,
            reloading: Mutex::new(Tracked::default()),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            files_read: AtomicU64::new(0),
        };
        let give_up = Instant::now() + loading.quiet * START_WAIT_QUIET_PERIODS;
        let mut loaded = store.load()?;
        while let Some(at) = loaded.recheck.filter(|&at| at <= give_up) {
            tracing::info!(
                pending = loaded.pending.len(),
                "waiting for campaign files still being written to settle"
            );
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            loaded = store.load()?;
        }
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
    /// the directory the current campaigns stay as they are (the snapshot says why: see
    /// [`Snapshot::held`]).
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
        let mut tracked = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let wall = SystemTime::now();
        let previous = self.current.load_full();
        let quiet = self.loading.quiet;
        let listing = std::fs::metadata(&self.dir).and_then(|directory| {
            let files = crate::files::list(&self.dir, &[".toml"])?;
            let campaigns = files.into_iter().filter(|f| !f.ends_with(taxonomy::FILE));
            Ok((Stamp::of(&directory), campaigns.collect::<Vec<_>>()))
        });
        let (directory, listed) = match listing {
            Ok(listing) => listing,
            Err(e) => {
                let why = format!(
                    "cannot read the campaign directory {} ({e}): the last good set keeps serving",
                    self.dir.display()
                );
                self.publish(Snapshot {
                    held: Some(why),
                    ..Snapshot::clone(&previous)
                });
                return Err(e);
            }
        };
        let Sources {
            taxonomy,
            audiences,
            mut refused,
        } = Sources::load(
            &self.dir,
            &self.audiences,
            previous.taxonomy.clone(),
            &previous.audiences,
            self.loading.limits.max_file_bytes,
        );
        let names = audiences.names();
        let context = Context {
            rates: &self.rates,
            taxonomy: taxonomy.as_deref(),
            audiences: Some(&names),
            limits: self.loading.limits,
        };
        let context_hash = context_hash(&context);

        // The set of files follows the directory only once its list has stood still, and never
        // to nothing while campaigns serve.
        let mut due = settling(directory, &mut tracked.directory, quiet, wall, started);
        let emptied = listed.is_empty() && !previous.files.is_empty();
        let held = emptied.then(|| {
            format!(
                "the campaign directory {} holds no campaign file: the last good set keeps serving",
                self.dir.display()
            )
        });
        let follow = due.is_none() && !emptied;
        let mut pending = Vec::new();
        if !follow {
            let known: HashSet<&Path> = tracked.listed.iter().map(PathBuf::as_path).collect();
            let new = listed.iter().filter(|path| !known.contains(path.as_path()));
            pending.extend(new.map(|path| Pending {
                path: path.clone(),
                why: "the directory's list of files is still changing",
                serving_last_good: false,
            }));
        }
        let paths = if follow {
            listed.clone()
        } else {
            tracked.listed.clone()
        };
        let last_goods: HashMap<&Path, &Loaded> = (previous.files.iter())
            .map(|(p, l)| (p.as_path(), l))
            .collect();

        let mut candidates = Vec::new();
        let mut files_read = 0;
        for path in &paths {
            let last_good = last_goods.get(path.as_path()).map(|&l| l.clone());
            let seen = match files::outside(&self.dir, path) {
                Some(target) => Seen::Compiled(Err(outside_error(path, &target))),
                None => {
                    let seen = self.see(path, &mut tracked, context_hash, &context, wall);
                    files_read += usize::from(matches!(seen, (_, true)));
                    seen.0
                }
            };
            let chosen = match seen {
                Seen::Compiled(Ok(campaign)) => Some(Loaded { campaign }),
                Seen::Compiled(Err(error)) => {
                    refused.push(error);
                    last_good.clone()
                }
                Seen::Changing(wait) => {
                    due = Some(due.map_or(wait, |d| d.min(wait)));
                    pending.push(Pending {
                        path: path.clone(),
                        why: "the file is still being written",
                        serving_last_good: last_good.is_some(),
                    });
                    last_good.clone()
                }
                Seen::Gone => {
                    let reading = tracked.readings.get(path);
                    refused.extend(reading.and_then(|r| r.result.clone().err()));
                    last_good.clone()
                }
            };
            candidates.push(Candidate {
                path: path.clone(),
                chosen,
                last_good,
            });
        }
        self.files_read
            .fetch_add(files_read as u64, Ordering::Relaxed);
        let serving = |id: &str| previous.by_id.get(id).map(|c| c.path.clone());
        let (files, duplicates) = one_file_per_id(candidates, serving);
        refused.extend(duplicates);
        let applied: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        tracked
            .readings
            .retain(|path, _| applied.contains(path.as_path()));
        let listed: HashSet<&Path> = listed.iter().map(PathBuf::as_path).collect();
        tracked
            .unsettled
            .retain(|path, _| listed.contains(path.as_path()));
        if follow {
            tracked.listed = paths;
        }

        let ranked = self.rank(files.values().map(|l| l.campaign.clone()));
        let index = Arc::new(Index::build(&ranked));
        let next = Snapshot {
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
            pending,
            held,
            recheck: due.map(|wait| started + wait),
            files_read,
            taxonomy,
            audiences,
        };
        Ok(self.publish(next))
    }

    /// Swaps `next` in, logging when the set starts or stops being held.
    fn publish(&self, next: Snapshot) -> Arc<Snapshot> {
        let next = Arc::new(next);
        let before = self.current.swap(next.clone());
        match (&before.held, &next.held) {
            (_, Some(why)) if before.held != next.held => {
                tracing::error!(campaigns = next.files.len(), "{why}")
            }
            (Some(_), None) => tracing::info!(
                dir = %self.dir.display(),
                "the campaign directory is read again: the set follows its files"
            ),
            _ => {}
        }
        next
    }

    /// Looks at one campaign file: unchanged since last read (its last reading), changed but not
    /// settled, or read and compiled now (then remembered). The flag says whether it was read.
    fn see(
        &self,
        path: &Path,
        tracked: &mut Tracked,
        context_hash: u64,
        context: &Context,
        wall: SystemTime,
    ) -> (Seen, bool) {
        let Ok(stamp) = std::fs::metadata(path).map(|m| Stamp::of(&m)) else {
            return (Seen::Gone, false);
        };
        if let Some(reading) = tracked.readings.get(path)
            && reading.trusted
            && reading.stamp == stamp
            && reading.context == context_hash
        {
            return (Seen::Compiled(reading.result.clone()), false);
        }
        let quiet = self.loading.quiet;
        let mut seen = tracked.unsettled.remove(path);
        if let Some(wait) = settling(stamp, &mut seen, quiet, wall, Instant::now()) {
            tracked
                .unsettled
                .extend(seen.map(|seen| (path.to_owned(), seen)));
            return (Seen::Changing(wait), false);
        }
        let result = compile_file(path, context);
        // Written while it was read: what was read may be half of it.
        let after = std::fs::metadata(path).map(|m| Stamp::of(&m));
        if after.as_ref().ok() != Some(&stamp) {
            let mut seen = None;
            if let Ok(after) = after {
                settling(after, &mut seen, quiet, wall, Instant::now());
            }
            tracked
                .unsettled
                .extend(seen.map(|seen| (path.to_owned(), seen)));
            return (Seen::Changing(quiet.max(CLOCK_TICK)), true);
        }
        let reading = Reading {
            stamp,
            context: context_hash,
            trusted: stamp.settled_before(wall, CLOCK_TICK),
            result: result.clone(),
        };
        tracked.readings.insert(path.to_owned(), reading);
        (Seen::Compiled(result), true)
    }
}

/// Whether something whose stamp is now `stamp` has stood still for `quiet`: it changed at least
/// `quiet` before `wall`, or it has been seen unchanged that long (`seen`: the stamp seen before
/// and since when, updated here). `None` when it has; else how much longer to wait.
fn settling(
    stamp: Stamp,
    seen: &mut Option<(Stamp, Instant)>,
    quiet: Duration,
    wall: SystemTime,
    now: Instant,
) -> Option<Duration> {
    let since = match *seen {
        Some((before, since)) if before == stamp => since,
        _ => {
            *seen = Some((stamp, now));
            now
        }
    };
    let still = now.saturating_duration_since(since);
    // A time in the future (a clock set back) says nothing: the file is then judged by how
    // long it has been seen unchanged.
    let age = stamp.age(wall).unwrap_or_default();
    quiet
        .checked_sub(still.max(age))
        .filter(|wait| !wait.is_zero())
}

impl Store {
    /// The store's metrics: what is loaded and refused, reloads, why matching campaigns stepped
    /// aside, budgets' and frequency caps' state, and each live campaign's bids, wins and spend.
    pub fn report(&self, out: &mut Exposition, per_campaign: bool) {
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
                "precis_campaign_files_pending",
                "Campaign files changed but not read yet: not stood still for [reload] quiet_ms.",
                load(snapshot.pending.len()),
            ),
            (
                "precis_campaign_set_held",
                "1 while the campaign directory is missing or holds no campaign file and the last good set keeps serving.",
                u64::from(snapshot.held.is_some()),
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
        out.counter(
            "precis_campaign_files_read_total",
            "Campaign files read and compiled since start (a file whose stamp has not changed is not read again).",
            self.files_read.load(Ordering::Relaxed),
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
        if !per_campaign {
            return;
        }
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
    /// taxonomy and reusing unchanged packages of `previous`. A taxonomy over `max_file_bytes`
    /// or linking out of `dir` is refused as a campaign file would be.
    pub fn load(
        dir: &Path,
        audience_dir: &Path,
        last_good: Option<Arc<Taxonomy>>,
        previous: &Library,
        max_file_bytes: u64,
    ) -> Sources {
        let mut refused = Vec::new();
        let path = dir.join(taxonomy::FILE);
        let read = match files::outside(dir, &path) {
            Some(target) => Err(outside_error(&path, &target)),
            None => read_text(&path, max_file_bytes),
        };
        let taxonomy =
            match read.and_then(|text| text.map(|t| Taxonomy::parse(&t, &path)).transpose()) {
                Ok(None) => None,
                Ok(Some(taxonomy)) => Some(Arc::new(taxonomy)),
                Err(error) => {
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
    /// The audience packages their names were checked against.
    pub audiences: Arc<Library>,
}

/// Checks the campaign files `paths` name (a directory: its campaign files) as a reload would,
/// against the taxonomy and the audience packages of the first directory among them, else of
/// `dir`, within `limits`. Reads what is there: no quiet period. Fails only when a path cannot be
/// listed.
pub fn check(
    paths: &[PathBuf],
    dir: &Path,
    rates: &Rates,
    limits: Limits,
) -> std::io::Result<Checked> {
    let files = listed(paths)?;
    let dir = paths
        .iter()
        .find(|p| p.is_dir())
        .map_or(dir, PathBuf::as_path);
    let sources = Sources::load(
        dir,
        &audience_dir(dir),
        None,
        &Library::default(),
        limits.max_file_bytes,
    );
    let names = sources.audiences.names();
    let context = Context {
        rates,
        taxonomy: sources.taxonomy.as_deref(),
        audiences: Some(&names),
        limits,
    };
    let (loaded, mut refused) = compile_all(&files, &context);
    refused.extend(sources.refused);
    refused.extend(sources.audiences.refused.iter().cloned());
    Ok(Checked {
        files: files.len(),
        loaded,
        refused,
        taxonomy: sources.taxonomy,
        audiences: sources.audiences,
    })
}

/// The campaigns of `dir` that compile on their own, without its taxonomy and packages: what a
/// report of the log can name (a campaign refused for a tag is still the campaign its events
/// belong to).
pub fn compile_dir(
    dir: &Path,
    rates: &Rates,
    limits: Limits,
) -> std::io::Result<Vec<Arc<Campaign>>> {
    let files = listed(&[dir.to_owned()])?;
    let context = Context {
        rates,
        taxonomy: None,
        audiences: None,
        limits,
    };
    let (loaded, _) = compile_all(&files, &context);
    Ok(loaded.into_values().map(|l| l.campaign).collect())
}

/// Where the audience packages of campaign directory `dir` are: `audiences` next to it.
pub fn audience_dir(dir: &Path) -> PathBuf {
    dir.parent().unwrap_or(Path::new("")).join("audiences")
}

/// The campaign files named by `paths`: each `*.toml` in a directory (not hidden, not descending,
/// not the taxonomy), or a file named directly. Sorted, so that errors come in the same order
/// every time.
pub fn campaign_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = listed(paths)?.into_iter().map(|(f, _)| f).collect();
    files.sort();
    Ok(files)
}

/// [`campaign_files`], each with the directory it was listed in (`None`: named directly).
fn listed(paths: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, Option<PathBuf>)>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            std::fs::metadata(path)?;
            files.push((path.clone(), None));
            continue;
        }
        let listed = crate::files::list(path, &[".toml"])?;
        let campaigns = listed.into_iter().filter(|f| !f.ends_with(taxonomy::FILE));
        files.extend(campaigns.map(|f| (f, Some(path.clone()))));
    }
    files.sort();
    Ok(files)
}

/// Compiles every file of `files` as a first load would (no last good version to fall back
/// on): a link out of the directory it was listed in is refused, and so are two files claiming
/// one id.
fn compile_all(
    files: &[(PathBuf, Option<PathBuf>)],
    context: &Context,
) -> (BTreeMap<PathBuf, Loaded>, Vec<FileError>) {
    let mut refused = Vec::new();
    let mut candidates = Vec::new();
    for (path, dir) in files {
        let result = match dir.as_deref().and_then(|dir| files::outside(dir, path)) {
            Some(target) => Err(outside_error(path, &target)),
            None => compile_file(path, context),
        };
        let chosen = match result {
            Ok(campaign) => Some(Loaded { campaign }),
            Err(error) => {
                refused.push(error);
                None
            }
        };
        candidates.push(Candidate {
            path: path.clone(),
            chosen,
            last_good: None,
        });
    }
    let (loaded, duplicates) = one_file_per_id(candidates, |_| None);
    refused.extend(duplicates);
    (loaded, refused)
}

/// Reads and compiles one campaign file within `context`'s limits: one over the size limit is
/// refused before it is read whole.
fn compile_file(path: &Path, context: &Context) -> Result<Arc<Campaign>, FileError> {
    let text = read_text(path, context.limits.max_file_bytes)?
        .ok_or_else(|| whole_file_error(path, "cannot read: the file is gone".into()))?;
    campaign::file::parse_in(&text, path, context).map(Arc::new)
}

/// The text of a file of the campaign directory (a campaign file, the taxonomy), `None` when
/// there is no such file; refused when it is over `limit` bytes (by its size, unread) or not
/// UTF-8.
fn read_text(path: &Path, limit: u64) -> Result<Option<String>, FileError> {
    let bytes = match files::read_at_most(path, limit) {
        Ok(Bounded::Whole(bytes)) => bytes,
        Ok(Bounded::TooLarge(size)) => {
            return Err(whole_file_error(
                path,
                format!(
                    "the file is {size} bytes or more, over the limit of {limit} for a campaign file ([reload] max_file_bytes): it was not read"
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(whole_file_error(path, format!("cannot read: {e}"))),
    };
    let text =
        String::from_utf8(bytes).map_err(|_| whole_file_error(path, "not UTF-8 text".into()))?;
    Ok(Some(text))
}

/// What a file may serve in a reload, before ids are checked: what it compiled to now or else
/// its last good version (`chosen`), and that last good version.
struct Candidate {
    path: PathBuf,
    chosen: Option<Loaded>,
    last_good: Option<Loaded>,
}

/// Makes each campaign id served by one file at most. Two files (or more) claiming one id are
/// all refused, naming each other; the one `serving` says served that id until now keeps its last
/// good version serving, the others fall back to theirs only if it has another id. Returns what
/// serves, by file, and the refusals.
fn one_file_per_id(
    mut candidates: Vec<Candidate>,
    serving: impl Fn(&str) -> Option<PathBuf>,
) -> (BTreeMap<PathBuf, Loaded>, Vec<FileError>) {
    let mut claims: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, candidate) in candidates.iter().enumerate() {
        if let Some(loaded) = &candidate.chosen {
            claims
                .entry(loaded.campaign.id.clone())
                .or_default()
                .push(i);
        }
    }
    let mut refused = Vec::new();
    for (id, claimants) in claims.iter().filter(|(_, c)| c.len() > 1) {
        let keeper = serving(id).filter(|p| claimants.iter().any(|&i| candidates[i].path == *p));
        let keeping = match &keeper {
            Some(path) => format!(" ({} keeps serving its last good version)", path.display()),
            None => String::new(),
        };
        for &i in claimants {
            let others: Vec<String> = claimants
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| candidates[j].path.display().to_string())
                .collect();
            let candidate = &mut candidates[i];
            refused.push(whole_file_error(
                &candidate.path,
                format!(
                    "campaign id `{id}` is also used by {}: both files are refused until one of them changes its `id`{keeping}",
                    others.join(", ")
                ),
            ));
            let kept = keeper.as_ref() == Some(&candidate.path);
            candidate.chosen = candidate
                .last_good
                .clone()
                .filter(|l| (l.campaign.id == *id) == kept);
        }
    }
    let mut taken = HashSet::new();
    // Collected, not inserted one by one: candidates come in order, which a collect sorts in one
    // pass, where each insert would compare paths component by component.
    let files = (candidates.into_iter())
        .filter_map(|c| Some((c.path, c.chosen?)))
        .filter(|(_, loaded)| taken.insert(loaded.campaign.id.clone()))
        .collect();
    (files, refused)
}

/// What campaign files are checked against besides themselves, hashed: when it changes, every
/// file is checked again (a new taxonomy or a package added or removed may change a verdict).
fn context_hash(context: &Context) -> u64 {
    let mut hasher = DefaultHasher::new();
    context.taxonomy.map(Taxonomy::tags).hash(&mut hasher);
    context.audiences.hash(&mut hasher);
    context.limits.max_adm_bytes.hash(&mut hasher);
    context.limits.max_file_bytes.hash(&mut hasher);
    hasher.finish()
}

/// A campaign file that is a symbolic link leading out of the campaign directory.
fn outside_error(path: &Path, target: &Path) -> FileError {
    whole_file_error(
        path,
        format!(
            "a link to {}, outside the campaign directory: links are followed only within it (copy the file in instead)",
            target.display()
        ),
    )
}

/// A problem with a whole campaign file, shown at its start.
fn whole_file_error(path: &Path, message: String) -> FileError {
    FileError::at(path, 1, 1, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::frequency::Exposures;
    use crate::book::learning::Priors;

    /// A CPM campaign file at `cpm`, with `extra` lines at the top.
    fn campaign(cpm: f64, extra: &str) -> String {
        format!(
            "{extra}\nadomain = [\"a.example\"]\n[pricing]\nmodel = \"cpm\"\ncpm = {cpm:?}\n\
             [[creative]]\nid = \"c\"\nformat = \"banner\"\nw = 1\nh = 1\nadm = \"x\"\n\
             landing = \"https://a.example/\"\n"
        )
    }

    /// Writes `path`, dated a minute back: a file written well before it is read, whose reading
    /// is trusted until its stamp moves.
    fn write_old(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        (file.set_modified(SystemTime::now() - Duration::from_secs(60))).expect("set mtime");
    }

    fn feedback() -> Feedback {
        Feedback {
            learned: Learned::new(Priors {
                impressions: 1_000.0,
                clicks: 100.0,
            }),
            pacer: Pacer::new(60, 10),
            exposures: Exposures::new(100, 60),
        }
    }

    fn live(snapshot: &Snapshot) -> Vec<(&str, f64)> {
        let mut live: Vec<_> = (snapshot.files.values())
            .map(|l| match l.campaign.pricing.model {
                campaign::pricing::Model::Cpm { cpm } => (l.campaign.id.as_str(), cpm),
                _ => (l.campaign.id.as_str(), f64::NAN),
            })
            .collect();
        live.sort_by(|a, b| a.0.cmp(b.0));
        live
    }

    #[test]
    fn only_files_whose_stamp_changed_are_read_again_and_removed_files_drop_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, cpm) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
            write_old(&dir.path().join(format!("{name}.toml")), &campaign(cpm, ""));
        }
        let store = Store::open(dir.path(), Rates::default(), feedback()).expect("open");
        assert_eq!(store.snapshot().files_read, 3);
        assert_eq!(store.reload().expect("reload").files_read, 0);

        // Rewritten with the same length: the stamp still moves (times, and a new inode).
        let b = dir.path().join("b.toml");
        let replaced = dir.path().join(".b.toml.tmp");
        write_old(&replaced, &campaign(4.0, ""));
        std::fs::rename(&replaced, &b).expect("rename");
        std::fs::remove_file(dir.path().join("c.toml")).expect("remove");
        let reloaded = store.reload().expect("reload");
        assert_eq!(reloaded.files_read, 1);
        assert_eq!(live(&reloaded), [("a", 1.0), ("b", 4.0)]);
        assert_eq!(store.reload().expect("reload").files_read, 0);
    }

    #[test]
    fn a_new_file_settles_after_the_quiet_period_or_once_seen_still_that_long() {
        let quiet = Duration::from_millis(500);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let stamp = Stamp::of(&file.as_file().metadata().expect("stat"));
        let written = stamp.modified.expect("mtime");
        let now = Instant::now();
        let mut seen = None;
        // Just written: wait what is left of the quiet period.
        let at = written + Duration::from_millis(100);
        assert_eq!(
            settling(stamp, &mut seen, quiet, at, now),
            Some(Duration::from_millis(400))
        );
        assert_eq!(seen, Some((stamp, now)));
        // Written long enough ago.
        let later = written + quiet;
        assert_eq!(settling(stamp, &mut seen, quiet, later, now), None);
        // A modification time in the future says nothing: seen unchanged for the quiet period
        // is enough.
        let clock_set_back = written - Duration::from_secs(3600);
        let mut seen = None;
        assert_eq!(
            settling(stamp, &mut seen, quiet, clock_set_back, now),
            Some(quiet)
        );
        let still = now + Duration::from_millis(300);
        assert_eq!(
            settling(stamp, &mut seen, quiet, clock_set_back, still),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            settling(stamp, &mut seen, quiet, clock_set_back, now + quiet),
            None
        );
        // No quiet period: always settled.
        assert_eq!(
            settling(stamp, &mut None, Duration::ZERO, written, now),
            None
        );
    }

    #[test]
    fn a_changed_stamp_starts_the_wait_again() {
        let quiet = Duration::from_millis(500);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let before = Stamp::of(&file.as_file().metadata().expect("stat"));
        std::io::Write::write_all(&mut file.as_file(), b"more").expect("write");
        let after = Stamp::of(&file.as_file().metadata().expect("stat"));
        assert_ne!(before, after);
        let future = before.modified.expect("mtime") - Duration::from_secs(60);
        let now = Instant::now();
        let mut seen = Some((before, now - quiet));
        assert_eq!(settling(after, &mut seen, quiet, future, now), Some(quiet));
        assert_eq!(seen, Some((after, now)));
    }

    fn compiled(id: &str, path: &str) -> Loaded {
        let text = campaign(1.0, &format!("id = \"{id}\""));
        let campaign =
            campaign::file::parse(&text, Path::new(path), &Rates::default()).expect("compiles");
        Loaded {
            campaign: Arc::new(campaign),
        }
    }

    fn candidate(path: &str, now: Option<&str>, last_good: Option<&str>) -> Candidate {
        Candidate {
            path: PathBuf::from(path),
            chosen: now.map(|id| compiled(id, path)),
            last_good: last_good.map(|id| compiled(id, path)),
        }
    }

    fn served(files: &BTreeMap<PathBuf, Loaded>) -> Vec<(String, String)> {
        (files.iter())
            .map(|(p, l)| (p.display().to_string(), l.campaign.id.clone()))
            .collect()
    }

    #[test]
    fn two_files_claiming_one_id_are_both_refused_and_the_one_serving_it_keeps_serving() {
        let pair = || {
            vec![
                candidate("c/a-twin.toml", Some("shoes"), None),
                candidate("c/shoes.toml", Some("shoes"), Some("shoes")),
                candidate("c/hats.toml", Some("hats"), Some("hats")),
            ]
        };
        let (files, refused) =
            one_file_per_id(pair(), |id| (id == "shoes").then(|| "c/shoes.toml".into()));
        assert_eq!(
            served(&files),
            [
                ("c/hats.toml".to_owned(), "hats".to_owned()),
                ("c/shoes.toml".to_owned(), "shoes".to_owned())
            ]
        );
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        let keeps = "(c/shoes.toml keeps serving its last good version)";
        assert_eq!(
            refused,
            [
                format!(
                    "c/a-twin.toml:1:1: campaign id `shoes` is also used by c/shoes.toml: both files are refused until one of them changes its `id` {keeps}"
                ),
                format!(
                    "c/shoes.toml:1:1: campaign id `shoes` is also used by c/a-twin.toml: both files are refused until one of them changes its `id` {keeps}"
                ),
            ]
        );
        // Neither served it before (a first load, `precis check`): neither serves.
        let (files, refused) = one_file_per_id(pair(), |_| None);
        assert_eq!(
            served(&files),
            [("c/hats.toml".to_owned(), "hats".to_owned())]
        );
        assert_eq!(refused.len(), 2);
        // A file that took another's id falls back to its own last good version.
        let renamed = vec![
            candidate("c/hats.toml", Some("shoes"), Some("hats")),
            candidate("c/shoes.toml", Some("shoes"), Some("shoes")),
        ];
        let (files, _) = one_file_per_id(renamed, |id| Some(format!("c/{id}.toml").into()));
        assert_eq!(
            served(&files),
            [
                ("c/hats.toml".to_owned(), "hats".to_owned()),
                ("c/shoes.toml".to_owned(), "shoes".to_owned())
            ]
        );
    }

    #[test]
    fn an_emptied_or_missing_directory_holds_the_last_good_set() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("a.toml"), campaign(1.0, "")).expect("write");
        let store = Store::open(&dir, Rates::default(), feedback()).expect("open");
        std::fs::remove_file(dir.join("a.toml")).expect("remove");
        let emptied = store.reload().expect("reload");
        assert_eq!(live(&emptied), [("a", 1.0)]);
        assert!(
            emptied
                .held
                .as_deref()
                .is_some_and(|h| h.contains("holds no campaign file")),
            "{:?}",
            emptied.held
        );
        std::fs::remove_dir(&dir).expect("remove dir");
        assert!(store.reload().is_err());
        let missing = store.snapshot();
        assert_eq!(live(&missing), [("a", 1.0)]);
        assert!(
            (missing.held.as_deref())
                .is_some_and(|h| h.contains("cannot read the campaign directory")),
            "{:?}",
            missing.held
        );
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("b.toml"), campaign(2.0, "")).expect("write");
        let back = store.reload().expect("reload");
        assert_eq!(live(&back), [("b", 2.0)]);
        assert_eq!(back.held, None);
    }

    #[test]
    fn a_file_still_being_written_keeps_its_last_good_version_and_says_when_to_look_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.toml");
        std::fs::write(&path, campaign(1.0, "")).expect("write");
        let store = Store::open(dir.path(), Rates::default(), feedback()).expect("open");
        let loading = Loading {
            quiet: Duration::from_secs(60),
            ..Loading::default()
        };
        let store = Store { loading, ..store };
        std::fs::write(&path, campaign(2.0, "")).expect("write");
        let before = Instant::now();
        let pending = store.reload().expect("reload");
        assert_eq!(live(&pending), [("a", 1.0)]);
        assert_eq!(pending.files_read, 0);
        assert_eq!(pending.pending.len(), 1, "{:?}", pending.pending);
        assert!(pending.pending[0].serving_last_good);
        let recheck = pending.recheck.expect("a recheck");
        assert!(recheck > before + Duration::from_secs(50), "{recheck:?}");
    }

    #[test]
    fn a_taxonomy_over_the_size_limit_or_linking_out_is_refused_and_its_last_good_version_kept() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).expect("dir");
        let path = dir.join(taxonomy::FILE);
        let load = |last_good| {
            let sources = Sources::load(
                &dir,
                &audience_dir(&dir),
                last_good,
                &Library::default(),
                1024,
            );
            let refused: Vec<String> = sources.refused.iter().map(ToString::to_string).collect();
            (sources.taxonomy, refused)
        };
        let outside = root.path().join("taxonomy.toml");
        std::fs::write(&outside, "roots = [\"sports\"]\n").expect("write");
        std::os::unix::fs::symlink("../taxonomy.toml", &path).expect("link");
        let (taxonomy, refused) = load(None);
        assert!(taxonomy.is_none());
        let target = std::fs::canonicalize(&outside).expect("canonical");
        assert_eq!(
            refused,
            [format!(
                "{}:1:1: a link to {}, outside the campaign directory: links are followed only within it (copy the file in instead)",
                path.display(),
                target.display()
            )]
        );

        // A sparse 100 GiB taxonomy is refused unread, and the last good one kept.
        std::fs::remove_file(&path).expect("unlink");
        std::fs::File::create(&path)
            .and_then(|f| f.set_len(100 << 30))
            .expect("sparse file");
        let last_good = Arc::new(Taxonomy::parse("roots = [\"travel\"]\n", &path).expect("parse"));
        let (taxonomy, refused) = load(Some(last_good.clone()));
        assert!(taxonomy.is_some_and(|t| Arc::ptr_eq(&t, &last_good)));
        assert_eq!(
            refused,
            [format!(
                "{}:1:1: the file is 107374182400 bytes or more, over the limit of 1024 for a campaign file ([reload] max_file_bytes): it was not read",
                path.display()
            )]
        );
    }

    #[test]
    fn files_over_the_size_limit_and_links_out_of_the_directory_are_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).expect("dir");
        let big = campaign(1.0, &format!("# {}", "x".repeat(2000)));
        std::fs::write(dir.join("big.toml"), &big).expect("write");
        std::fs::write(root.path().join("out.toml"), campaign(1.0, "")).expect("write");
        std::os::unix::fs::symlink("../out.toml", dir.join("out.toml")).expect("link");
        std::os::unix::fs::symlink("big.toml", dir.join("alias.toml")).expect("link");
        let limits = Limits {
            max_file_bytes: 1024,
            ..Limits::default()
        };
        let checked =
            check(std::slice::from_ref(&dir), &dir, &Rates::default(), limits).expect("check");
        let refused: Vec<String> = checked.refused.iter().map(ToString::to_string).collect();
        let target = std::fs::canonicalize(root.path().join("out.toml")).expect("canonical");
        let at = |name: &str| dir.join(name).display().to_string();
        assert_eq!(
            refused,
            [
                format!(
                    "{}:1:1: the file is {} bytes or more, over the limit of 1024 for a campaign file ([reload] max_file_bytes): it was not read",
                    at("alias.toml"),
                    big.len()
                ),
                format!(
                    "{}:1:1: the file is {} bytes or more, over the limit of 1024 for a campaign file ([reload] max_file_bytes): it was not read",
                    at("big.toml"),
                    big.len()
                ),
                format!(
                    "{}:1:1: a link to {}, outside the campaign directory: links are followed only within it (copy the file in instead)",
                    at("out.toml"),
                    target.display()
                ),
            ]
        );
    }
}
