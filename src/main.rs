//! The `precis` command: `serve` runs the bidder, `check` validates campaign files, `report` sums
//! the event log, `gen-campaigns` writes test campaigns, `audience build` makes retargeting packages.
//! This is the binary edge: errors become `anyhow` reports and exit codes here, nowhere else.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use precis::auction::Urls;
use precis::clock::Clock;
use precis::config::{Config, Flags, LogFormat};
use precis::eventlog::{EventLog, Settings};
use precis::events::{Feedback, Policy, Recorder};
use precis::frequency::Exposures;
use precis::learning::{self, Learned, Priors};
use precis::metrics::Metrics;
use precis::pacing::Pacer;
use precis::profiles::{self, Profiles};
use precis::reload::{self, Store};
use precis::report;
use precis::server::{self, App};
use precis::token::{Keys, MIN_SECRET_LEN};

/// mimalloc: per-thread free lists with no arena locks. The bid path allocates and frees a few
/// dozen small objects per request; with glibc's malloc that was about 15% of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "precis",
    version,
    about = "A real-time OpenRTB bidder that serves campaigns from a folder of TOML files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve bid requests for the campaigns in the campaign directory, reloading it as it changes.
    ///
    /// Every key of precis.toml is also a flag (`--SECTION-KEY` for keys in a section), which
    /// overrides the file. Secrets come from the file or the environment: PRECIS_SECRET,
    /// PRECIS_SECRET_PREVIOUS, PRECIS_ADMIN_TOKEN.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        flags: Box<Flags>,
        /// Run on a simulated clock that starts at this time (RFC 3339) and moves only when
        /// `POST /admin/clock?now=TIME` moves it: for market simulations of a whole day.
        #[arg(long, value_parser = report::parse_time)]
        simulate_from: Option<DateTime<Utc>>,
    },
    /// Validate campaign files (or directories of them); print every error as path:line:col: message.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Files or directories to check [default: campaigns].
        paths: Vec<PathBuf>,
    },
    /// Totals of the event log per group: bids, wins, impressions, reach, clicks, conversions,
    /// spend, revenue and their ratios (amounts in USD).
    Report {
        #[command(flatten)]
        config: ConfigArgs,
        /// Campaign directory whose [kpi] tables flag campaigns (with --by campaign)
        /// [default: the configured campaigns, when present].
        #[arg(long)]
        campaigns: Option<PathBuf>,
        /// Event log directory: its *.jsonl files are read.
        #[arg(long, default_value = "logs")]
        logs: PathBuf,
        /// Count events at or after this time: RFC 3339, or a date (its start, UTC).
        #[arg(long, value_parser = report::parse_time)]
        from: Option<DateTime<Utc>>,
        /// Count events before this time: RFC 3339, or a date (its start, UTC).
        #[arg(long, value_parser = report::parse_time)]
        to: Option<DateTime<Utc>>,
        /// What a row is.
        #[arg(long, value_enum, default_value_t = report::By::Campaign)]
        by: report::By,
        /// How the rows are printed.
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
    },
    /// Write COUNT realistic generated campaign files into DIR: real places, taxonomy tags, every
    /// pricing model, dayparting, devices, IAB-size creatives. The same seed writes the same files.
    GenCampaigns {
        /// How many campaign files to write (gen-000000.toml, gen-000001.toml, ...).
        #[arg(long)]
        count: usize,
        /// Directory to write them into: created if missing; refused if it holds anything,
        /// unless --force.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the random draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Let campaigns of markets paying in these currencies (e.g. EUR,GBP) be priced in them;
        /// serving those files needs their rates under [currencies] in precis.toml [default: USD only].
        #[arg(long, value_delimiter = ',')]
        currencies: Vec<String>,
        /// Write into a directory that is not empty (files of the same name are replaced, others kept).
        #[arg(long)]
        force: bool,
    },
    /// Audience packages: build one from the event log, or grow one by lookalike.
    Audience {
        #[command(subcommand)]
        command: AudienceCommand,
    },
}

/// `precis audience ...`: audience packages made offline.
#[derive(Subcommand)]
enum AudienceCommand {
    /// Write a retargeting package: the users who clicked CAMPAIGN in the last DAYS days (with
    /// --not-converted, minus those who converted on it), as precis' keyed user hashes.
    Build {
        /// Event log directory to read.
        #[arg(long)]
        from_logs: PathBuf,
        /// The campaign whose clickers to take.
        #[arg(long)]
        clicked: String,
        /// Leave out users who converted on the campaign.
        #[arg(long)]
        not_converted: bool,
        /// How far back to look.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// The package file to write (e.g. audiences/retarget.txt); replaced atomically.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the SIZE profiled users whose tags are most like a seed package's (not in the seed)
    /// as a package of user ids.
    Expand {
        /// The seed package (`# keys: raw`, `sha256` or `uid`).
        #[arg(long)]
        seed: PathBuf,
        /// Directory of bulk profile files (*.jsonl, *.csv) holding the population.
        #[arg(long)]
        profiles: PathBuf,
        /// How many users to write.
        #[arg(long)]
        size: usize,
        /// The package file to write (`# keys: uid`).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Configuration file; used when present if not named [default: precis.toml].
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration file with `flags` on top.
    fn load(&self, flags: &Flags) -> anyhow::Result<Config> {
        let (path, required) = match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from("precis.toml"), false),
        };
        Ok(Config::load(&path, required, flags)?)
    }
}

/// Logs to stderr, as text or JSON lines; `RUST_LOG` filters (default `info`).
fn init_logs(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        init_logs(LogFormat::Text);
    }
    let result = match cli.command {
        Command::Serve {
            config,
            flags,
            simulate_from,
        } => config.load(&flags).and_then(|config| {
            init_logs(config.log_format);
            let clock = simulate_from.map_or(Clock::System, Clock::simulated);
            serve(config, clock)
        }),
        Command::Check { config, paths } => config
            .load(&Flags::default())
            .and_then(|config| check(&config, paths)),
        Command::Report {
            config,
            campaigns,
            logs,
            from,
            to,
            by,
            format,
        } => config.load(&Flags::default()).and_then(|config| {
            let campaigns = campaigns.unwrap_or(config.campaigns.clone());
            report(
                &config,
                &campaigns,
                &logs,
                report::Window { from, to },
                by,
                format,
            )
        }),
        Command::GenCampaigns {
            count,
            out,
            seed,
            currencies,
            force,
        } => gen_campaigns(count, &out, seed, &currencies, force),
        Command::Audience {
            command:
                AudienceCommand::Build {
                    from_logs,
                    clicked,
                    not_converted,
                    days,
                    out,
                },
        } => {
            let select = precis::audience::Retarget {
                clicked,
                since: precis::audience::since(Utc::now(), days),
                not_converted,
            };
            audience_build(&from_logs, &select, &out)
        }
        Command::Audience {
            command:
                AudienceCommand::Expand {
                    seed,
                    profiles,
                    size,
                    out,
                },
        } => audience_expand(&seed, &profiles, size, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("precis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(config: &Config, mut paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    if paths.is_empty() {
        paths.push(config.campaigns.clone());
    }
    let rates = config.rates().map_err(anyhow::Error::msg)?;
    let files = reload::campaign_files(&paths).context("cannot list campaign files")?;
    // The taxonomy of the first directory checked (else the configured one), and its packages.
    let dir = paths
        .iter()
        .find(|p| p.is_dir())
        .unwrap_or(&config.campaigns);
    let sources = reload::Sources::load(dir, &reload::audience_dir(dir), None, &Default::default());
    let names = sources.audiences.names();
    let context = precis::campaign::Context {
        rates: &rates,
        taxonomy: sources.taxonomy.as_deref(),
        audiences: Some(&names),
    };
    let (loaded, mut refused) = reload::compile(&files, &Default::default(), &context);
    refused.extend(sources.refused);
    for error in &refused {
        println!("{error}");
    }
    for error in &sources.audiences.refused {
        println!("{error}");
    }
    let problems: usize = refused.iter().map(|e| e.diagnostics.len()).sum::<usize>()
        + sources.audiences.refused.len();
    if problems > 0 {
        println!(
            "{problems} error(s) in {} of {} file(s)",
            refused.len() + sources.audiences.refused.len(),
            files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let active = loaded.values().filter(|l| l.campaign.active).count();
    let mut checked_against = Vec::new();
    if let Some(taxonomy) = &sources.taxonomy {
        checked_against.push(format!("a taxonomy of {} tags", taxonomy.tags().len()));
    }
    if !names.is_empty() {
        checked_against.push(format!("{} audience package(s)", names.len()));
    }
    let against = match checked_against.is_empty() {
        true => String::new(),
        false => format!("; checked against {}", checked_against.join(" and ")),
    };
    println!(
        "ok: {} campaign file(s), {active} active, {} paused{against}",
        loaded.len(),
        loaded.len() - active
    );
    Ok(ExitCode::SUCCESS)
}

fn audience_build(
    logs: &Path,
    select: &precis::audience::Retarget,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    // Replaced whole: a watching bidder never reads half a package.
    let built = precis::durable::replace(out, |file| precis::audience::build(logs, select, file))
        .with_context(|| format!("cannot write {}", out.display()))?;
    if built.skipped.lines > 0 {
        eprintln!("precis: {}", built.skipped);
    }
    println!("wrote {} user(s) to {}", built.users, out.display());
    Ok(ExitCode::SUCCESS)
}

fn gen_campaigns(
    count: usize,
    out: &Path,
    seed: u64,
    currencies: &[String],
    force: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(bad) = currencies
        .iter()
        .find(|c| precis::pricing::Currency::parse(c).is_none())
    {
        anyhow::bail!("`{bad}` is not an ISO-4217 currency code");
    }
    let generator = precis_generate::Generator::new(seed).with_currencies(currencies);
    let started = std::time::Instant::now();
    let written = precis_generate::write_dir(&generator, count, out, force)?;
    precis::generate::write_taxonomy(out)?;
    println!(
        "wrote {} campaign file(s) ({:.1} MB) to {} in {:.2} s (seed {seed})",
        written.files,
        written.bytes as f64 / 1e6,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn audience_expand(
    seed: &Path,
    profiles: &Path,
    size: usize,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let seed = precis::audience::load(seed)?;
    if seed.form == precis::audience::KeyForm::Precis {
        anyhow::bail!(
            "{}: a `# keys: precis` package holds secret-keyed hashes, which profiles (keyed by user id) cannot be matched with: seed with raw, sha256 or uid keys",
            seed.path.display()
        );
    }
    let expanded = precis::lookalike::expand_dir(&seed, profiles, size, out)
        .with_context(|| format!("cannot expand into {}", out.display()))?;
    for problem in &expanded.problems {
        eprintln!("precis: skipped {problem}");
    }
    println!(
        "wrote {} user(s) to {}: the lookalikes of {} seed users among {} profile lines",
        expanded.written,
        out.display(),
        seed.users(),
        expanded.lines
    );
    Ok(ExitCode::SUCCESS)
}

fn report(
    config: &Config,
    campaigns: &Path,
    logs: &Path,
    window: report::Window,
    by: report::By,
    format: report::Format,
) -> anyhow::Result<ExitCode> {
    let (groups, skipped) = report::read(logs, by, window)?;
    let mut out = std::io::stdout().lock();
    report::write(&mut out, format, by, &groups)
        .and_then(|()| out.flush())
        .context("cannot write the report")?;
    // KPI shortfalls: after the table; on stderr for csv and json, which stay exactly their fields.
    if by == report::By::Campaign && campaigns.is_dir() {
        let rates = config.rates().map_err(anyhow::Error::msg)?;
        let files = reload::campaign_files(&[campaigns.to_owned()])
            .context("cannot list campaign files")?;
        let context = precis::campaign::Context {
            rates: &rates,
            taxonomy: None,
            audiences: None,
        };
        let (loaded, _) = reload::compile(&files, &Default::default(), &context);
        let mut alerts = Vec::new();
        for loaded in loaded.values() {
            let campaign = &loaded.campaign;
            if let Some(totals) = groups.get(&report::GroupKey::Campaign(campaign.id.clone())) {
                let found = learning::shortfalls(campaign, &totals.counts(), &rates);
                alerts.extend(found.into_iter().map(|a| format!("{}: {a}", campaign.id)));
            }
        }
        if !alerts.is_empty() {
            let text = format!(
                "KPI alerts:\n{}\n",
                alerts
                    .iter()
                    .map(|a| format!("  {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            match format {
                report::Format::Table => {
                    writeln!(out, "\n{text}").context("cannot write the report")?
                }
                _ => eprint!("{text}"),
            }
        }
    }
    if skipped.lines > 0 {
        eprintln!("precis: {skipped}");
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(config: Config, clock: Clock) -> anyhow::Result<ExitCode> {
    let admin_token = config.admin_token();
    if admin_token.is_none() && !config.admin_listen.ip().is_loopback() {
        anyhow::bail!(
            "admin_listen {} is not a loopback address: set admin_token (or PRECIS_ADMIN_TOKEN) so that admin routes need it",
            config.admin_listen
        );
    }
    // Each connection is a file descriptor: allow as many as the hard limit lets.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < config.limits.max_connections as u64 => tracing::warn!(
            limit,
            "open files allowed: below [limits] max_connections, accept will fail first"
        ),
        Ok(limit) => tracing::info!(limit, "open files allowed"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    let clock = Arc::new(clock);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))
        };
        let (bid, admin) = (bind(config.listen).await?, bind(config.admin_listen).await?);
        let (local, admin_local) = (bid.local_addr()?, admin.local_addr()?);
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        };
        // Serving starts now: /healthz answers while campaigns load, /readyz says 503 until done.
        let metrics = Arc::new(Metrics::default());
        let ready = server::Ready::default();
        let ports = server::Ports {
            bid,
            admin,
            admin_token,
            limits: config.limits.clone(),
            cores: precis::http::Cores::start(config.workers)?,
        };
        let serving = tokio::spawn(server::serve(
            ports,
            metrics.clone(),
            ready.clone(),
            shutdown,
        ));
        tracing::info!("listening on {local}");
        tracing::info!("admin listening on {admin_local}");

        let Loaded {
            app,
            reload: trigger,
            profiles: profiles_trigger,
            watcher: _watcher,
        } = load(&config, clock.clone(), metrics, local)?;
        let profiles = app.profiles.clone();
        let _ = ready.set(app.clone());
        tracing::info!("ready: answering bids");

        let reprice_every = std::time::Duration::from_secs(config.learning.reprice_secs);
        let maintained = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(reprice_every);
            loop {
                every.tick().await;
                let app = maintained.clone();
                // Off the request threads: sweeps walk maps, repricing ranks every campaign.
                let _ = tokio::task::spawn_blocking(move || {
                    server::expire(&app, app.clock.now());
                    app.store.reprice();
                    release_freed_memory();
                })
                .await;
            }
        });
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading campaigns and profile files");
                trigger.poke();
                profiles_trigger.poke();
            }
        });
        let snapshot_file = config.profiles_snapshot();
        let snapshot_every = std::time::Duration::from_secs(config.profiles.snapshot_secs);
        let (saved, saved_clock, saved_file) =
            (profiles.clone(), clock.clone(), snapshot_file.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(snapshot_every);
            every.tick().await;
            let mut written = saved.changes();
            loop {
                every.tick().await;
                let changes = saved.changes();
                if changes == written {
                    continue;
                }
                let (store, clock, file) = (saved.clone(), saved_clock.clone(), saved_file.clone());
                let result =
                    tokio::task::spawn_blocking(move || save_profiles(&store, &file, clock.now()))
                        .await;
                if matches!(result, Ok(Ok(()))) {
                    written = changes;
                }
            }
        });
        serving.await?;
        // Requests are finished: write out every event they accepted, and the bids still waiting
        // for a win, whose reservations the next start takes over.
        let recorder = app.recorder.clone();
        tokio::task::spawn_blocking(move || recorder.log.close(std::time::Duration::from_secs(30)))
            .await?;
        let holds_file = config.events.dir.join(HOLDS_FILE);
        let held = app
            .store
            .pacer()
            .save_holds(&holds_file)
            .with_context(|| format!("cannot write {}", holds_file.display()))?;
        let now = clock.now();
        tokio::task::spawn_blocking(move || save_profiles(&profiles, &snapshot_file, now))
            .await??;
        tracing::info!(
            held,
            "stopped; event log flushed and synced, reservations saved"
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// What [`load`] starts: the application and what keeps its files live.
struct Loaded {
    app: Arc<App>,
    /// Reloads the campaigns (with their taxonomy and audience packages).
    reload: reload::Trigger,
    /// Re-applies the bulk profile files.
    profiles: reload::Trigger,
    /// Watches the directories.
    watcher: reload::Watch,
}

/// Loads the campaigns, replays the event log into learning, pacing and frequency, takes back
/// the reservations saved at the last shutdown, reads the profiles (snapshot, then bulk files)
/// and starts watching the campaign, audience and profile directories.
fn load(
    config: &Config,
    clock: Arc<Clock>,
    metrics: Arc<Metrics>,
    local: SocketAddr,
) -> anyhow::Result<Loaded> {
    let rates = config.rates().map_err(anyhow::Error::msg)?;
    let learning = &config.learning;
    let priors = Priors {
        impressions: learning.prior_impressions,
        clicks: learning.prior_clicks,
    };
    let pacing = &config.pacing;
    let feedback = Feedback {
        learned: Arc::new(Learned::new(priors)),
        pacer: Arc::new(Pacer::new(pacing.hold_secs, pacing.step_secs)),
        exposures: Arc::new(Exposures::new(pacing.max_users, pacing.hold_secs)),
    };
    let store = Store::open(
        &config.campaigns,
        rates,
        feedback.learned.clone(),
        feedback.pacer.clone(),
    )
    .with_context(|| {
        format!(
            "cannot read campaign directory {}",
            config.campaigns.display()
        )
    })?;
    let store = Arc::new(store);
    log_reload(&Ok(store.snapshot()));
    // What the log says was learned, spent and shown, then the bids still waiting for a win.
    let recorder = Arc::new(recorder(
        &config.events,
        feedback.clone(),
        &store.snapshot(),
        clock.now(),
    )?);
    let holds_file = config.events.dir.join(HOLDS_FILE);
    let held = feedback
        .pacer
        .load_holds(&holds_file)
        .with_context(|| format!("cannot read {}", holds_file.display()))?;
    tracing::info!(held, "budget reservations restored");
    // Spend just replayed is in the accounts; rank again so budgets see it from the first bid.
    store.reprice();
    let profiles = Arc::new(open_profiles(config, clock.now()));
    let (feeding, fed_at) = (profiles.clone(), clock.clone());
    let profiles_trigger = reload::debounced(move || {
        if let Err(e) = feeding.feed.reload(&feeding, fed_at.now()) {
            tracing::error!("cannot read the profile directory: {e}");
        }
    });
    let counted = metrics.clone();
    let (trigger, watcher) = reload::spawn(
        store.clone(),
        move |result| {
            counted.reloaded(result.is_ok());
            log_reload(result);
        },
        vec![(config.profiles.dir.clone(), profiles_trigger.clone())],
    )
    .context("cannot watch the campaign directory")?;
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let app = Arc::new(App {
        store,
        metrics,
        urls: Urls {
            public: public.trim_end_matches('/').to_owned(),
        },
        limits: config.limits.clone(),
        recorder,
        exposures: feedback.exposures,
        clock,
        profiles,
        max_batch_bytes: config.profiles.max_batch_bytes,
    });
    Ok(Loaded {
        app,
        reload: trigger,
        profiles: profiles_trigger,
        watcher,
    })
}

/// The profile store: the snapshot read back (a damaged one is set aside and the store starts
/// empty), then the bulk files applied over it.
fn open_profiles(config: &Config, now: DateTime<Utc>) -> Profiles {
    let profiles = Profiles::new(
        config.profiles.max_users,
        profiles::bulk::Feed::new(config.profiles.dir.clone()),
    );
    let file = config.profiles_snapshot();
    match profiles::snapshot::load(&profiles, &file, now) {
        Ok(users) => tracing::info!(users, file = %file.display(), "profile snapshot loaded"),
        Err(e) => {
            let aside = file.with_extension("snapshot.bad");
            let moved = std::fs::rename(&file, &aside);
            tracing::error!(
                "cannot load the profile snapshot {}: {e}; starting with no profiles ({})",
                file.display(),
                match moved {
                    Ok(()) => format!("the file was moved to {}", aside.display()),
                    Err(e) => format!("and cannot move it aside: {e}"),
                }
            );
        }
    }
    match profiles.feed.reload(&profiles, now) {
        Ok(updates) => tracing::info!(updates, users = profiles.users(), "profile files applied"),
        Err(e) => tracing::error!("cannot read the profile directory: {e}"),
    }
    profiles
}

/// Writes the profile snapshot, logging the outcome.
fn save_profiles(profiles: &Profiles, file: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
    let users = profiles::snapshot::save(profiles, file, now)
        .with_context(|| format!("cannot write the profile snapshot {}", file.display()))
        .inspect_err(|e| tracing::error!("{e:#}"))?;
    tracing::info!(users, file = %file.display(), "profile snapshot written");
    Ok(())
}

/// Hands the memory freed since the last call back to the system: mimalloc returns free pages on
/// its own after a short delay, but a thread's heap that goes idle after a burst (10,000
/// connections opened and closed) keeps them until it allocates again; this collects them. Off
/// the request threads.
fn release_freed_memory() {
    // SAFETY: mi_collect only walks and releases mimalloc's own free lists and pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Where open reservations are kept between a shutdown and the next start (in the events dir).
const HOLDS_FILE: &str = "holds.json";

/// The event log and the recorder in front of it, with the events already logged remembered and
/// fed back (`snapshot` has the campaigns they belong to).
fn recorder(
    config: &precis::config::Events,
    feedback: Feedback,
    snapshot: &reload::Snapshot,
    now: DateTime<Utc>,
) -> anyhow::Result<Recorder> {
    let keys = match config.secrets() {
        (Some(current), previous) => {
            Keys::new(current.as_bytes(), previous.as_deref().map(str::as_bytes)).map_err(|e| {
                anyhow::anyhow!("events secret: {e} (at least {MIN_SECRET_LEN} bytes)")
            })?
        }
        (None, _) => {
            tracing::warn!(
                "no events secret (PRECIS_SECRET or [events] secret): using a random one, so event URLs of bids made before a restart will be refused after it"
            );
            let mut random = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
                .context("cannot read /dev/urandom for a random events secret")?;
            Keys::new(&random, None)?
        }
    };
    let log = EventLog::open(Settings {
        dir: config.dir.clone(),
        queue: config.queue,
        max_file_bytes: config.max_file_mb.saturating_mul(1 << 20),
        sync_every: std::time::Duration::from_millis(config.sync_ms),
    })
    .with_context(|| format!("cannot open the event log in {}", config.dir.display()))?;
    let policy = Policy {
        token_ttl_secs: config.token_ttl_secs,
        log_bids_every: config.log_bids_every,
        max_orders_per_click: config.max_orders_per_click,
    };
    let recorder = Recorder::new(log, keys, policy, feedback);
    let replayed = recorder.replay(&config.dir, now, |id| snapshot.campaign(id).map(|c| &**c))?;
    tracing::info!(replayed, dir = %config.dir.display(), "event log open");
    Ok(recorder)
}

fn log_reload(result: &std::io::Result<Arc<reload::Snapshot>>) {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_and_flag_is_well_formed() {
        // clap checks names, ids and defaults only when a command is built: every flag of
        // `serve` (one per precis.toml key) must have its own id, or `precis serve` panics.
        super::Cli::command().debug_assert();
    }
}
