//! Reload: the campaign directory (with its `taxonomy.toml`) and the audience directory → an
//! immutable [`Snapshot`], swapped in atomically.
//!
//! Requests read the current snapshot through arc-swap without ever waiting; a reload parses,
//! validates, ranks and indexes ([`crate::book::index`]) off the request path and publishes the result with one pointer swap, so a
//! request sees either the old campaigns or the new ones, never a mix. Validation is per file: a file
//! that fails keeps its last good version serving (a new broken file is simply not loaded), and its
//! errors are kept for `/status`. Unchanged files are not parsed again (audience packages: not read
//! again while their length and modification time stay the same). Campaigns are checked against the
//! taxonomy and the packages of the same reload; a broken taxonomy keeps its last good version.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::audience::Library;
use crate::book::index::Index;
use crate::book::learning::Learned;
use crate::book::pacing::Pacer;
use crate::book::ranking::{self, Ranked};
use crate::campaign::file::Context;
use crate::campaign::pricing::Rates;
use crate::campaign::taxonomy::{self, Taxonomy};
use crate::campaign::{self, Campaign};
use crate::diagnostic::FileError;

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

/// The live campaigns and how to refresh them.
pub struct Store {
    dir: PathBuf,
    /// The audience package directory: `audiences` next to the campaign directory.
    audiences: PathBuf,
    rates: Rates,
    /// What campaigns have measured: sets the price of CPC and CPS campaigns.
    learned: Arc<Learned>,
    /// Budgeted campaigns' accounts, attached to them when they are ranked.
    pacer: Arc<Pacer>,
    /// Each campaign's bid counter by id, attached to it when it is ranked, so that reloads and
    /// repricing keep counting where they were.
    bids: DashMap<String, Arc<AtomicU64>>,
    current: ArcSwap<Snapshot>,
    /// Serialises reloads (the watcher, SIGHUP and the admin route may ask at once). Held only by
    /// the reloading thread, never by a request.
    reloading: Mutex<()>,
}

impl Snapshot {
    /// A loaded campaign by id, paused ones included (events arrive after a campaign stops).
    pub fn campaign(&self, id: &str) -> Option<&Arc<Campaign>> {
        self.by_id.get(id)
    }
}

impl Store {
    /// Loads `dir` for the first time. Fails only if the directory cannot be listed.
    pub fn open(
        dir: &Path,
        rates: Rates,
        learned: Arc<Learned>,
        pacer: Arc<Pacer>,
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
            taxonomy: None,
            audiences: Arc::default(),
        };
        let store = Store {
            dir: dir.to_owned(),
            audiences: audience_dir(dir),
            rates,
            learned,
            pacer,
            bids: DashMap::new(),
            current: ArcSwap::from_pointee(empty),
            reloading: Mutex::new(()),
        };
        store.reload()?;
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
        &self.learned
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
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
            account: self.pacer.account_for(&c),
            bids: self.bids.entry(c.id.clone()).or_default().clone(),
            ..Ranked::learned(c, &self.learned)
        })
    }

    /// Re-reads the directory and swaps in the result. On an error listing the directory the
    /// current snapshot stays as it is.
    pub fn reload(&self) -> std::io::Result<Arc<Snapshot>> {
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
        for entry in std::fs::read_dir(path)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.starts_with('.')
                && name.ends_with(".toml")
                && name != taxonomy::FILE
                && path.is_file()
            {
                files.push(path);
            }
        }
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
