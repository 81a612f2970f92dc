//! The `precis` command: `serve` runs the bidder, `check` validates campaign files, `explain` says
//! why a request gets no bid, `report` sums the event log, `gen-campaigns` writes test campaigns,
//! `audience build|expand` makes packages.
//! Each command parses its flags and calls the library ([`precis::bidder::run`] serves); this is
//! the binary edge, where errors become `anyhow` reports and exit codes, and nowhere else.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use precis::auction::explain;
use precis::audience::retarget::{self, Retarget};
use precis::audience::{self, KeyForm, lookalike};
use precis::book::store;
use precis::clock::Clock;
use precis::config::{Config, Flags, LogFormat};
use precis::measure::{exposure, report};
use precis::request::openrtb;
use precis::token::Keys;

/// A line on standard output; failing to write it (a closed pipe) is an error, not a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).context("cannot write to standard output")?
    };
}

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
    /// Why a bid request gets (or does not get) a bid: for each imp, every campaign's outcome,
    /// the bid or the first check it fails with the values compared, as a bidder that has just
    /// started on the campaign directory would answer (nothing spent, no one seen). The running
    /// bidder answers the same with its spend and caps at POST /admin/explain on the admin port.
    Explain {
        #[command(flatten)]
        config: ConfigArgs,
        /// The bid request (OpenRTB JSON); `-` reads standard input.
        request: PathBuf,
        /// Only this campaign's outcome (the winner is still decided among all).
        #[arg(long)]
        campaign: Option<String>,
        /// The time to judge flights and hours at (RFC 3339, or a date) [default: now].
        #[arg(long, value_parser = report::parse_time)]
        at: Option<DateTime<Utc>>,
        /// `text` for people, `json` as /admin/explain answers.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
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
        /// How the rows are printed (html: one self-contained page).
        #[arg(long, value_enum, default_value_t = report::Output::Table)]
        format: report::Output,
        /// Instead of totals per group: users by how many impressions they saw (1 … 10+), with
        /// their clicks, CTR, orders and CVR per exposure count.
        #[arg(long, conflicts_with = "by")]
        frequency: bool,
        /// With --frequency: this campaign's events only.
        #[arg(long, requires = "frequency")]
        campaign: Option<String>,
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

/// How `precis explain` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExplainFormat {
    Text,
    Json,
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
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(precis::bidder::run(config, clock))?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Check { config, paths } => config
            .load(&Flags::default())
            .and_then(|config| check(&config, paths)),
        Command::Explain {
            config,
            request,
            campaign,
            at,
            format,
        } => config
            .load(&Flags::default())
            .and_then(|config| explain(&config, &request, campaign.as_deref(), at, format)),
        Command::Report {
            logs,
            from,
            to,
            format,
            frequency: true,
            campaign,
            ..
        } => frequency_report(
            &logs,
            report::Period { from, to },
            campaign.as_deref(),
            format,
        ),
        Command::Report {
            config,
            campaigns,
            logs,
            from,
            to,
            by,
            format,
            ..
        } => config.load(&Flags::default()).and_then(|config| {
            let campaigns = campaigns.unwrap_or(config.campaigns.clone());
            report(
                &config,
                &campaigns,
                &logs,
                report::Period { from, to },
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
            let select = Retarget {
                clicked,
                since: retarget::since(Utc::now(), days),
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
        // The reader went away (`precis check | head`): the output ends there, quietly.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("precis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a pipe nobody reads any more.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn check(config: &Config, mut paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    if paths.is_empty() {
        paths.push(config.campaigns.clone());
    }
    let rates = config.rates().map_err(anyhow::Error::msg)?;
    let checked = store::check(
        &paths,
        &config.campaigns,
        &rates,
        config.reload.loading().limits,
    )
    .context("cannot list campaign files")?;
    for error in &checked.refused {
        say!("{error}");
    }
    let problems: usize = checked.refused.iter().map(|e| e.diagnostics.len()).sum();
    if problems > 0 {
        say!(
            "{problems} error(s) in {} of {} file(s)",
            checked.refused.len(),
            checked.files
        );
        return Ok(ExitCode::FAILURE);
    }
    let (loaded, active) = (
        checked.loaded.len(),
        checked
            .loaded
            .values()
            .filter(|l| l.campaign.active)
            .count(),
    );
    let mut against = Vec::new();
    if let Some(taxonomy) = &checked.taxonomy {
        against.push(format!("a taxonomy of {} tags", taxonomy.tags().len()));
    }
    let packages = checked.audiences.names().len();
    if packages > 0 {
        against.push(format!("{packages} audience package(s)"));
    }
    let against = match against.is_empty() {
        true => String::new(),
        false => format!("; checked against {}", against.join(" and ")),
    };
    say!(
        "ok: {loaded} campaign file(s), {active} active, {} paused{against}",
        loaded - active
    );
    Ok(ExitCode::SUCCESS)
}

fn audience_build(
    logs: &Path,
    select: &precis::audience::retarget::Retarget,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    // Replaced whole: a watching bidder never reads half a package.
    let built = precis::files::replace(out, |file| {
        precis::audience::retarget::build(logs, select, file)
    })
    .with_context(|| format!("no package written to {}", out.display()))?;
    if built.skipped.lines > 0 {
        eprintln!("precis: {}", built.skipped);
    }
    say!("wrote {} user(s) to {}", built.users, out.display());
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
        .find(|c| precis::campaign::pricing::Currency::parse(c).is_none())
    {
        anyhow::bail!("`{bad}` is not an ISO-4217 currency code");
    }
    let generator = precis_generate::Generator::new(seed).with_currencies(currencies);
    let started = std::time::Instant::now();
    let written = precis_generate::write_dir(&generator, count, out, force)?;
    precis::generate::write_taxonomy(out)?;
    say!(
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
    let seed = audience::load(seed)?;
    if seed.form == KeyForm::Precis {
        anyhow::bail!(
            "{}: a `# keys: precis` package holds secret-keyed hashes, which profiles (keyed by user id) cannot be matched with: seed with raw, sha256 or uid keys",
            seed.path.display()
        );
    }
    let expanded = lookalike::expand_dir(&seed, profiles, size, out)
        .with_context(|| format!("cannot expand into {}", out.display()))?;
    for problem in &expanded.problems {
        eprintln!("precis: skipped {problem}");
    }
    say!(
        "wrote {} user(s) to {}: the lookalikes of {} seed users among {} profile lines",
        expanded.written,
        out.display(),
        seed.users(),
        expanded.lines
    );
    Ok(ExitCode::SUCCESS)
}

fn frequency_report(
    logs: &Path,
    window: report::Period,
    campaign: Option<&str>,
    format: report::Output,
) -> anyhow::Result<ExitCode> {
    let (frequency, skipped) = exposure::read(logs, window, campaign)?;
    let title = match campaign {
        Some(id) => format!("Frequency: {id}"),
        None => "Frequency: every campaign".to_owned(),
    };
    let mut out = std::io::stdout().lock();
    exposure::write(&mut out, format, &frequency, &title)
        .and_then(|()| out.flush())
        .context("cannot write the report")?;
    if skipped.lines > 0 {
        eprintln!("precis: {skipped}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `precis explain`: the request against the configured campaign directory.
fn explain(
    config: &Config,
    path: &Path,
    campaign: Option<&str>,
    at: Option<DateTime<Utc>>,
    format: ExplainFormat,
) -> anyhow::Result<ExitCode> {
    let body = match path.to_str() {
        Some("-") => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).map(|_| body)
        }
        _ => std::fs::read(path),
    }
    .with_context(|| format!("cannot read {}", path.display()))?;
    let request = openrtb::decode(&body).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a bid request precis can read: {e}",
            path.display()
        )
    })?;
    let rates = config.rates().map_err(anyhow::Error::msg)?;
    let dir = &config.campaigns;
    let limits = config.reload.loading().limits;
    let checked = store::check(std::slice::from_ref(dir), dir, &rates, limits)
        .with_context(|| format!("cannot list campaign files in {}", dir.display()))?;
    for error in &checked.refused {
        eprintln!("precis: refused, not explained: {error}");
    }
    if let Some(id) = campaign
        && !checked.loaded.values().any(|l| l.campaign.id == id)
    {
        anyhow::bail!("no campaign `{id}` in {}", dir.display());
    }
    // Users keyed as the bidder keys them when its secret is configured; without one, packages
    // of precis' own user hashes cannot match here.
    let secret = (config.events.secrets().0).unwrap_or_else(|| "no secret configured".into());
    let keys = Keys::new(secret.as_bytes(), None).map_err(anyhow::Error::msg)?;
    let now = at.unwrap_or_else(Utc::now);
    let vendor = config.privacy.vendor_id;
    let explained = explain::offline(&checked, &rates, &keys, vendor, &request, now, campaign);
    let mut out = std::io::stdout().lock();
    match format {
        ExplainFormat::Text => explained.write_text(&mut out),
        ExplainFormat::Json => serde_json::to_writer_pretty(&mut out, &explained)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    }
    .context("cannot write the explanation")?;
    Ok(ExitCode::SUCCESS)
}

fn report(
    config: &Config,
    campaigns: &Path,
    logs: &Path,
    window: report::Period,
    by: report::By,
    format: report::Output,
) -> anyhow::Result<ExitCode> {
    let (groups, skipped) = report::read(logs, by, window)?;
    let mut out = std::io::stdout().lock();
    report::write(&mut out, format, by, &groups)
        .and_then(|()| out.flush())
        .context("cannot write the report")?;
    // KPI shortfalls: after the table; on stderr for csv and json, which stay exactly their fields.
    if by == report::By::Campaign && campaigns.is_dir() {
        let rates = config.rates().map_err(anyhow::Error::msg)?;
        let compiled = store::compile_dir(campaigns, &rates, config.reload.loading().limits)
            .context("cannot list campaign files")?;
        let alerts = report::kpi_alerts(&groups, compiled.iter().map(|c| &**c), &rates);
        if !alerts.is_empty() {
            let lines: Vec<String> = alerts.iter().map(|a| format!("  {a}")).collect();
            let text = format!("KPI alerts:\n{}\n", lines.join("\n"));
            match format {
                report::Output::Table => {
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
