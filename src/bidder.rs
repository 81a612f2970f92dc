//! The serving process as a value. [`Bidder::start`] binds the two ports, opens everything precis
//! serves from (the campaigns; the keys, made at the first start when not configured
//! ([`secrets`]); the state snapshot and the event log written after it, replayed into learning,
//! spend, reservations, exposures and dedup; the profiles) and starts its named background
//! tasks; [`Bidder::shutdown`] stops them in order and writes out what must survive a restart. A
//! damaged snapshot or holds file is set aside with an error line, never a reason not to start;
//! after a crash, budgets wait for the bids made before it ([`mark_running`]).
//! `precis serve` is [`run`]: a bidder that SIGTERM or SIGINT stops and SIGHUP reloads.
//!
//! The background tasks, each named in what it logs:
//! - `watcher`: reloads the campaigns, audience packages and bulk profile files as they change;
//! - `repricer`: ranks the campaigns again at their learned prices, every `reprice_secs`;
//! - `sweeper`: forgets what has expired (event tokens, budget reservations, frequency windows,
//!   profile tags) and hands freed memory back to the system, every `reprice_secs`;
//! - `snapshotter`: writes the profile snapshot every `snapshot_secs` when profiles changed;
//! - `checkpointer`: brings the state snapshot up to the event log every `[events] snapshot_secs`
//!   when the log has grown ([`checkpoint::refresh`]), so that the next start replays little.
//!
//! Each does its work on a blocking thread, never on a request thread, and the bidder owns them
//! all: nothing it starts outlives [`Bidder::shutdown`] but the log lines it wrote.

mod secrets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{oneshot, watch as stop};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::app::App;
use crate::auction::{NoBids, Urls};
use crate::audience::profiles::bulk::Feed;
use crate::audience::profiles::snapshot::SnapshotError;
use crate::audience::profiles::{self, Profiles};
use crate::book::frequency::Exposures;
use crate::book::learning::{Learned, Priors};
use crate::book::pacing::Pacer;
use crate::book::store::{Feedback, Snapshot, Store};
use crate::book::watch::{self, Trigger, Watch};
use crate::clock::Clock;
use crate::config::Config;
use crate::eventlog::read::{Positions, ReadError};
use crate::eventlog::retention::{self, Keep};
use crate::eventlog::{EventLog, Settings};
use crate::measure::checkpoint::{self, Restored, State};
use crate::measure::recorder::{Policy, Recorder};
use crate::serve::cores::Cores;
use crate::serve::{self, Ports, Ready};

/// Where an earlier precis kept the open reservations between a shutdown and the next start (in
/// the events dir); the state snapshot keeps them now.
const HOLDS_FILE: &str = "holds.json";

/// There while a bidder serves from the events dir, removed once a shutdown has saved the
/// reservations: found at start, it says the last run ended without saving them (a crash).
const RUNNING_FILE: &str = "precis.running";

/// How long the event log's writer gets to write what was accepted, at shutdown.
const LOG_PATIENCE: Duration = Duration::from_secs(30);

/// Why a bidder could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BidderError {
    #[error(transparent)]
    Tls(#[from] crate::serve::tls::TlsError),
    #[error(
        "admin_listen {0} is not a loopback address: set admin_token (or PRECIS_ADMIN_TOKEN) so that admin routes need it"
    )]
    OpenAdmin(SocketAddr),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the request threads")]
    Cores(#[source] std::io::Error),
    #[error("cannot handle signals")]
    Signals(#[source] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("cannot read campaign directory {path}")]
    Campaigns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] secrets::KeysError),
    #[error("cannot open the event log in {path}")]
    EventLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot replay the event log")]
    Replay(#[from] ReadError),
    #[error("cannot write the state snapshot {path}")]
    WriteState {
        path: PathBuf,
        source: crate::binary::BinaryError,
    },
    #[error("cannot watch the campaign directory")]
    Watch(#[from] notify::Error),
    #[error("cannot write the profile snapshot {path}")]
    Snapshot {
        path: PathBuf,
        source: SnapshotError,
    },
    #[error("a start-up or shutdown step failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running bidder: its two listeners, its application and its background tasks.
pub struct Bidder {
    app: Arc<App>,
    bid_addr: SocketAddr,
    admin_addr: SocketAddr,
    /// Tells the listeners to stop accepting and drain.
    stop_serving: oneshot::Sender<()>,
    serving: JoinHandle<()>,
    tasks: Tasks,
    watcher: Watcher,
    state_file: PathBuf,
    snapshot_file: PathBuf,
}

/// The `watcher` task: the directory watch, and the triggers of the reloads it runs.
struct Watcher {
    campaigns: Trigger,
    profiles: Trigger,
    _watch: Watch,
}

impl Bidder {
    /// Binds both ports and serves them at once (`/healthz` answers while campaigns load, every
    /// other route 503 until they are), then opens everything and starts the background tasks.
    /// Must be called within a multi-threaded tokio runtime.
    pub async fn start(config: Config, clock: Clock) -> Result<Bidder, BidderError> {
        let admin_token = config.admin_token();
        if admin_token.is_none() && !config.admin_listen.0.ip().is_loopback() {
            return Err(BidderError::OpenAdmin(config.admin_listen.0));
        }
        raise_open_files(config.limits.max_connections);
        let (bid, admin) = (
            bind(config.listen.0).await?,
            bind(config.admin_listen.0).await?,
        );
        let listening = |l: &TcpListener, addr| {
            l.local_addr()
                .map_err(|source| BidderError::Listen { addr, source })
        };
        let bid_addr = listening(&bid, config.listen.0)?;
        let admin_addr = listening(&admin, config.admin_listen.0)?;
        let ready = Ready::default();
        let (stop_serving, stopped) = oneshot::channel::<()>();
        let ports = Ports {
            bid,
            admin,
            cores: Cores::start(config.workers, config.pacing.seed).map_err(BidderError::Cores)?,
        };
        let settings = serve::Settings {
            admin_token,
            limits: config.limits.clone(),
            max_batch_bytes: config.profiles.max_batch_bytes,
            no_bid: config.no_bid,
            admin_host: config.admin_host.clone(),
            tls: match (&config.tls_cert, &config.tls_key) {
                (Some(cert), Some(key)) => Some(serve::tls::acceptor(cert, key)?),
                _ => None,
            },
        };
        let stopped = async {
            let _ = stopped.await;
        };
        let serving = tokio::spawn(serve::serve(ports, settings, ready.clone(), stopped));
        tracing::info!("listening on {bid_addr}");
        tracing::info!("admin listening on {admin_addr}");

        let clock = Arc::new(clock);
        let opening = tokio::task::spawn_blocking({
            let (config, clock) = (config.clone(), clock.clone());
            move || open(&config, clock, bid_addr)
        });
        let (app, watcher, snapshot) =
            match opening.await.map_err(BidderError::from).and_then(|r| r) {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = stop_serving.send(());
                    let _ = serving.await;
                    return Err(e);
                }
            };
        let _ = ready.set(app.clone());
        tracing::info!("ready: answering bids");

        let mut tasks = Tasks::new();
        let maintain = Duration::from_secs(config.learning.reprice_secs);
        let repriced = app.clone();
        tasks.every("repricer", maintain, move || {
            repriced.store.reprice();
        });
        let swept = app.clone();
        tasks.every("sweeper", maintain, move || {
            swept.expire(swept.clock.now());
            release_freed_memory();
        });
        let snapshot_file = config.profiles_snapshot();
        let (saved, file) = (app.clone(), snapshot_file.clone());
        let written = AtomicU64::new(saved.profiles.changes());
        let every = Duration::from_secs(config.profiles.snapshot_secs);
        tasks.every("snapshotter", every, move || {
            let changes = saved.profiles.changes();
            if changes != written.load(Ordering::Relaxed)
                && save_profiles(&saved.profiles, &file, saved.clock.now()).is_ok()
            {
                written.store(changes, Ordering::Relaxed);
            }
        });
        let state_file = config.events.dir.join(checkpoint::FILE);
        let (refreshed, file, dir) = (app.clone(), state_file.clone(), config.events.dir.clone());
        let covered = std::sync::Mutex::new(snapshot);
        let every = Duration::from_secs(config.events.snapshot_secs);
        let keep = Keep {
            days: config.events.keep_days,
            bytes: config.events.keep_gb.saturating_mul(1 << 30),
        };
        tasks.every("checkpointer", every, move || {
            refresh_state(&refreshed, &file, &dir, &covered);
            prune_log(&refreshed, &dir, &covered, keep);
        });
        Ok(Bidder {
            app,
            bid_addr,
            admin_addr,
            stop_serving,
            serving,
            tasks,
            watcher,
            state_file,
            snapshot_file,
        })
    }

    /// Where exchanges reach it (the bound address: port 0 in the configuration picks one).
    pub fn addr(&self) -> SocketAddr {
        self.bid_addr
    }

    /// Where operators reach it.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The application it serves.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Reloads the campaigns (with their taxonomy and packages) and the bulk profile files now,
    /// as a change to them would: what SIGHUP does.
    pub fn reload(&self) {
        self.watcher.campaigns.poke();
        self.watcher.profiles.poke();
    }

    /// Stops taking requests and lets those in flight finish, stops the background tasks, then
    /// writes out every event the requests accepted, the state snapshot (with the reservations
    /// of bids still waiting for their win: the next start takes them over) and the profile
    /// snapshot.
    pub async fn shutdown(self) -> Result<(), BidderError> {
        let _ = self.stop_serving.send(());
        self.serving.await?;
        drop(self.watcher);
        self.tasks.stop().await;
        let (app, state, snapshot) = (self.app, self.state_file, self.snapshot_file);
        let held = tokio::task::spawn_blocking(move || {
            app.recorder.close(LOG_PATIENCE);
            let held = save_state(&app, &state);
            let saved = save_profiles(&app.profiles, &snapshot, app.clock.now());
            let held = held?;
            saved.map(|()| held)
        })
        .await??;
        tracing::info!(
            held,
            "stopped; event log flushed and synced, state and reservations saved"
        );
        Ok(())
    }
}

/// Serves until SIGTERM or SIGINT, reloading on SIGHUP, then shuts down: `precis serve`.
pub async fn run(config: Config, clock: Clock) -> Result<(), BidderError> {
    // Handlers first: a signal that arrives while campaigns load is answered once they are.
    let handler = |kind| signal(kind).map_err(BidderError::Signals);
    let mut terminate = handler(SignalKind::terminate())?;
    let mut interrupt = handler(SignalKind::interrupt())?;
    let mut hangup = handler(SignalKind::hangup())?;
    // A write past a file size limit (`ulimit -f`) must fail (EFBIG), which the event log handles
    // like a full disk, rather than kill the process: SIGXFSZ is caught, and otherwise ignored.
    let _file_size_limit = handler(SignalKind::from_raw(libc::SIGXFSZ))?;
    let bidder = Bidder::start(config, clock).await?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => break tracing::info!("SIGINT received"),
            Some(()) = hangup.recv() => {
                tracing::info!("SIGHUP: reloading campaigns and profile files");
                bidder.reload();
            }
        }
    }
    bidder.shutdown().await
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BidderError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BidderError::Listen { addr, source })
}

/// Each connection is a file descriptor: allow as many as the hard limit lets.
fn raise_open_files(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 => tracing::warn!(
            limit,
            "open files allowed: below [limits] max_connections, accept will fail first"
        ),
        Ok(limit) => tracing::info!(limit, "open files allowed"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

/// Loads the campaigns, reads the state snapshot and replays the event log written after it into
/// learning, pacing, frequency and dedup, takes back the reservations an earlier precis saved in
/// `holds.json`, reads the profiles (snapshot, then bulk files) and starts watching the campaign,
/// audience and profile directories. Returns what it opened and the log positions the state
/// snapshot on disk covers. Blocks: run it off the runtime's threads.
fn open(
    config: &Config,
    clock: Arc<Clock>,
    bid_addr: SocketAddr,
) -> Result<(Arc<App>, Watcher, Positions), BidderError> {
    let rates = config.rates().map_err(BidderError::Config)?;
    let (learning, pacing) = (&config.learning, &config.pacing);
    let recorder = recorder(config)?;
    let dir = &config.events.dir;
    // What the snapshot says was learned, spent, held, shown and seen, and how far into the log.
    let Restored {
        feedback,
        seen,
        from,
    } = checkpoint::restore(
        &dir.join(checkpoint::FILE),
        Feedback {
            learned: Learned::new(Priors {
                impressions: learning.prior_impressions,
                clicks: learning.prior_clicks,
            }),
            pacer: Pacer::new(pacing.hold_secs, pacing.step_secs),
            exposures: Exposures::new(pacing.max_users, pacing.hold_secs),
        },
        recorder.seen().empty_like(),
    );
    let loading = config.reload.loading();
    let store =
        Store::open_with(&config.campaigns, rates, feedback, loading).map_err(|source| {
            BidderError::Campaigns {
                path: config.campaigns.clone(),
                source,
            }
        })?;
    let store = Arc::new(store);
    log_reload(&Ok(store.snapshot()));
    let recorder = Arc::new(recorder.with_seen(seen));
    // Budgeted campaigns bid only while their spend can be written down.
    store.pacer().record_spend_in(recorder.log_health());
    // Then what the log says happened since.
    let to = checkpoint::log_lengths(dir)?;
    let into = State {
        feedback: store.feedback(),
        seen: recorder.seen(),
    };
    let (campaigns, now) = (store.snapshot(), clock.now());
    let expiry = |e: &_| recorder.expiry(e);
    let replayed = checkpoint::replay(dir, (&from, &to), &into, &campaigns, expiry, now)?;
    tracing::info!(replayed, dir = %dir.display(), "event log open");
    let held = restore_holds_file(&dir.join(HOLDS_FILE), &store);
    mark_running(dir, &store, held.is_none(), now);
    let held = held.unwrap_or_default();
    // Nothing changes the state before the first request: what was replayed (and the holds file
    // read) is written down now, so that the next start need not do it again.
    let state_file = dir.join(checkpoint::FILE);
    let mut covered = from;
    if replayed > 0 || held > 0 {
        match write_state(&store, &recorder, &state_file, &to, now) {
            Ok(()) => covered = to,
            Err(e) => tracing::error!("{}", with_causes(&e)),
        }
    }
    // Spend just replayed is in the accounts; rank again so budgets see it from the first bid.
    store.reprice();
    let (profiles, profile_files) = open_profiles(config, clock.now());
    let (profiles, profile_files) = (Arc::new(profiles), Arc::new(profile_files));
    let (fed, files, fed_at) = (profiles.clone(), profile_files.clone(), clock.clone());
    let profiles_trigger = watch::debounced(move || {
        if let Err(e) = files.reload(&fed, fed_at.now()) {
            tracing::error!("cannot read the profile directory: {e}");
        }
    });
    let others = vec![(config.profiles.dir.clone(), profiles_trigger.clone())];
    let (campaigns_trigger, watch) = watch::spawn(store.clone(), log_reload, others)?;
    let public = config.public_url.clone().unwrap_or_else(|| {
        let scheme = if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{bid_addr}")
    });
    let app = Arc::new(App {
        store,
        recorder,
        profiles,
        profile_files,
        clock,
        urls: Urls {
            public: public.trim_end_matches('/').to_owned(),
        },
        no_bids: NoBids::default(),
        vendor_id: config.privacy.vendor_id,
    });
    let watcher = Watcher {
        campaigns: campaigns_trigger,
        profiles: profiles_trigger,
        _watch: watch,
    };
    Ok((app, watcher, covered))
}

/// Takes back the reservations an earlier precis saved at shutdown in `holds.json`: how many. A
/// file that cannot be read is set aside with an error line, and `None` says the reservations it
/// held are unknown (the bidder then starts as after a crash: see [`mark_running`]).
fn restore_holds_file(path: &Path, store: &Store) -> Option<usize> {
    match store.pacer().load_holds_file(path) {
        Ok(0) => Some(0),
        Ok(held) => {
            tracing::info!(held, file = %path.display(), "budget reservations restored");
            Some(held)
        }
        Err(e) => {
            // Outside the macro: its arguments are not evaluated when nothing logs errors.
            let aside = crate::files::set_aside(path);
            tracing::error!(
                "cannot read the budget reservations {}: {e}; starting without them ({aside})",
                path.display(),
            );
            None
        }
    }
}

/// At shutdown, once the log is closed: the live state written as the state snapshot of the
/// whole log. Returns the reservations it holds. Not when the log could not write everything it
/// accepted: the state would count events the log does not hold, and the last snapshot stays.
fn save_state(app: &App, path: &Path) -> Result<usize, BidderError> {
    let (store, recorder) = (&app.store, &app.recorder);
    let stats = &recorder.log().stats;
    let left = stats.queued.load(Ordering::Relaxed) + stats.unsynced.load(Ordering::Relaxed);
    if left > 0 {
        tracing::error!(
            left,
            "the event log did not write everything it accepted: the state snapshot is not written (the last one stays)"
        );
        return Ok(0);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let positions = crate::eventlog::read::lengths(dir).map_err(|e| BidderError::WriteState {
        path: path.to_owned(),
        source: e.into(),
    })?;
    write_state(store, recorder, path, &positions, app.clock.now())?;
    // The reservations are saved: the next start need not assume a crash.
    let running = dir.join(RUNNING_FILE);
    if let Err(e) = std::fs::remove_file(&running) {
        tracing::error!("cannot remove {}: {e}", running.display());
    }
    Ok(store.pacer().holds())
}

/// The live state written as the state snapshot of the log up to `positions`: only when nothing
/// changes it (before serving, after it).
fn write_state(
    store: &Store,
    recorder: &Recorder,
    path: &Path,
    positions: &Positions,
    now: DateTime<Utc>,
) -> Result<(), BidderError> {
    let state = State {
        feedback: store.feedback(),
        seen: recorder.seen(),
    };
    checkpoint::save(path, &state, store.pacer(), positions, now).map_err(|source| {
        BidderError::WriteState {
            path: path.to_owned(),
            source,
        }
    })
}

/// An error with its causes, for a log line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text += &format!(": {e}");
        cause = e.source();
    }
    text
}

/// The `checkpointer`'s run: the state snapshot brought up to the log, when the log has grown
/// past what the snapshot covers.
fn refresh_state(app: &App, path: &Path, dir: &Path, covered: &std::sync::Mutex<Positions>) {
    let mut covered = covered.lock().unwrap_or_else(|p| p.into_inner());
    match app.recorder.log().positions() {
        Ok(now) if now == *covered => {}
        Ok(now) => {
            let started = std::time::Instant::now();
            let (store, recorder) = (&app.store, &app.recorder);
            match checkpoint::refresh(path, (dir, &now), store, recorder, app.clock.now()) {
                Ok(events) => {
                    tracing::info!(
                        events,
                        took_ms = started.elapsed().as_millis() as u64,
                        "state snapshot brought up to the event log"
                    );
                    *covered = now;
                }
                Err(e) => tracing::error!("cannot refresh the state snapshot: {}", with_causes(&e)),
            }
        }
        Err(e) => tracing::error!("cannot list the event log: {e}"),
    }
}

/// The `checkpointer`'s second step: the log files the state snapshot has read to their end and
/// `[events] keep_days` / `keep_gb` let go are removed ([`retention`]).
fn prune_log(app: &App, dir: &Path, covered: &std::sync::Mutex<Positions>, keep: Keep) {
    let covered = covered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match retention::prune(dir, &covered, keep, app.clock.now()) {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => {
            let removed: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            tracing::info!(
                files = removed.len(),
                "event log files removed: {}",
                removed.join(", ")
            );
        }
        Err(e) => tracing::error!("cannot remove old event log files: {e}"),
    }
}

/// Marks this run as running, and holds budgets back if the last one did not end cleanly (or left
/// a `damaged` holds file): the marker is removed only once a shutdown has written the state
/// snapshot with its reservations.
/// Found at start, it says the last run crashed (`kill -9`, power loss), so the reservations of its
/// last moments are unknown: budgeted campaigns stay out of the auction for `hold_secs`, until
/// every bid made before the crash has been won (its win, logged, counts in spend) or has lapsed.
fn mark_running(dir: &Path, store: &Store, damaged: bool, now: DateTime<Utc>) {
    let running = dir.join(RUNNING_FILE);
    if running.exists() || damaged {
        let until = store.pacer().hold_back_until(now);
        tracing::warn!(
            %until,
            "the last run ended without saving its budget reservations: budgeted campaigns wait for its bids' wins until then"
        );
    }
    let marked = std::fs::File::create(&running).and_then(|file| file.sync_all());
    if let Err(e) = marked {
        tracing::error!("cannot write {}: {e}", running.display());
    }
}

/// The recorder: the event log opened, with the configured secrets (or, without one, the secret
/// kept in the event log directory) and the user key kept there ([`secrets`]).
fn recorder(config: &Config) -> Result<Recorder, BidderError> {
    let events = &config.events;
    let keys = secrets::keys(events)?;
    let log = EventLog::open(Settings {
        dir: events.dir.clone(),
        queue: events.queue,
        max_file_bytes: events.max_file_mb.saturating_mul(1 << 20),
        sync_every: Duration::from_millis(events.sync_ms),
    })
    .map_err(|source| BidderError::EventLog {
        path: events.dir.clone(),
        source,
    })?;
    let policy = Policy {
        token_ttl_secs: events.token_ttl_secs,
        log_bids_every: events.log_bids_every,
        max_orders_per_click: events.max_orders_per_click,
        max_order_value_usd: events.max_order_value,
        max_dedup_keys: events.max_dedup_keys,
    };
    let exchanges = config.exchanges().map_err(BidderError::Config)?;
    Ok(Recorder::new(log, keys, policy).with_exchanges(exchanges))
}

/// The profile store: the snapshot read back (a damaged one is set aside and the store starts
/// empty), then the bulk files applied over it; and those files.
fn open_profiles(config: &Config, now: DateTime<Utc>) -> (Profiles, Feed) {
    let profiles = Profiles::new(config.profiles.max_users);
    let files = Feed::new(config.profiles.dir.clone());
    let file = config.profiles_snapshot();
    match profiles::snapshot::load(&profiles, &file, now) {
        Ok(users) => tracing::info!(users, file = %file.display(), "profile snapshot loaded"),
        Err(e) => {
            let aside = crate::files::set_aside(&file);
            tracing::error!(
                "cannot load the profile snapshot {}: {e}; starting with no profiles ({aside})",
                file.display(),
            );
        }
    }
    match files.reload(&profiles, now) {
        Ok(updates) => tracing::info!(updates, users = profiles.users(), "profile files applied"),
        Err(e) => tracing::error!("cannot read the profile directory: {e}"),
    }
    (profiles, files)
}

/// Writes the profile snapshot, logging the outcome.
fn save_profiles(profiles: &Profiles, file: &Path, now: DateTime<Utc>) -> Result<(), BidderError> {
    match profiles::snapshot::save(profiles, file, now) {
        Ok(users) => {
            tracing::info!(users, file = %file.display(), "profile snapshot written");
            Ok(())
        }
        Err(source) => {
            tracing::error!(
                "cannot write the profile snapshot {}: {source}",
                file.display()
            );
            Err(BidderError::Snapshot {
                path: file.to_owned(),
                source,
            })
        }
    }
}

/// Hands the memory freed since the last call back to the system: mimalloc (the binary's
/// allocator) returns free pages on its own after a short delay, but a thread's heap that goes
/// idle after a burst (10,000 connections opened and closed) keeps them until it allocates again;
/// this collects them. Off the request threads.
fn release_freed_memory() {
    // SAFETY: mi_collect only walks and releases mimalloc's own free lists and pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Logs what a reload (or the first load) did: each refused file, and what is live.
fn log_reload(result: &std::io::Result<Arc<Snapshot>>) {
    match result {
        Ok(snapshot) => {
            for error in &snapshot.refused {
                tracing::error!(
                    "refused campaign file (last good version, if any, keeps serving):\n{error}"
                );
            }
            for error in &snapshot.audiences.refused {
                tracing::error!(
                    "refused audience package (last good version, if any, keeps serving): {error}"
                );
            }
            tracing::info!(
                generation = snapshot.generation,
                audiences = snapshot.audiences.packages().count(),
                live = snapshot.ranked.len(),
                refused = snapshot.refused.len(),
                took_ms = snapshot.took.as_millis() as u64,
                "campaigns loaded"
            );
        }
        Err(e) => tracing::error!("cannot read campaign directory, keeping current campaigns: {e}"),
    }
}

/// The bidder's periodic background tasks, each named in what it logs, stopped together.
struct Tasks {
    stop: stop::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    fn new() -> Tasks {
        Tasks {
            stop: stop::channel(false).0,
            running: Vec::new(),
        }
    }

    /// Runs `work` on a blocking thread now and every `period`, one run at a time, until stopped.
    fn every(
        &mut self,
        name: &'static str,
        period: Duration,
        work: impl Fn() + Send + Sync + 'static,
    ) {
        let mut stopped = self.stop.subscribe();
        let work = Arc::new(work);
        let task = async move {
            let mut every = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => break,
                }
                let work = work.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || work()).await {
                    tracing::error!("failed: {e}");
                }
            }
        };
        let span = tracing::info_span!("task", name);
        self.running
            .push((name, tokio::spawn(task.instrument(span))));
    }

    /// Stops every task, letting a run in progress finish.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.running {
            if let Err(e) = task.await {
                tracing::error!("task {name} ended badly: {e}");
            }
        }
    }
}
