//! Configuration: `precis.toml` (optional), overridden by command-line flags ([`Flags`]: one flag
//! per key, `--SECTION-KEY` for keys in a section), secrets also from the environment.
//!
//! Read once at start; the running bidder never re-reads it (campaigns, not configuration, are what
//! people edit while it runs). Unknown keys are errors, as in campaign files. Flags are merged into
//! the file's table before it is read, so a flag is checked exactly as the key it stands for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pricing::{Currency, Rates};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the bidder listens. Loopback unless an operator says otherwise.
    pub listen: SocketAddr,
    /// Where the admin routes (`/status`, `/admin/*`) listen; the bid port never serves them.
    pub admin_listen: SocketAddr,
    /// Bearer token every admin request must carry, when set; `PRECIS_ADMIN_TOKEN` overrides it.
    /// Required when `admin_listen` is not loopback.
    pub admin_token: Option<String>,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// Threads serving exchange connections, each with its own runtime; 0: one per core.
    pub workers: usize,
    /// Base of the URLs precis puts in bids (win/billing notices, clicks); default `http://{listen}`.
    pub public_url: Option<String>,
    /// The campaign directory.
    pub campaigns: PathBuf,
    /// Units of each currency per one US dollar, e.g. `EUR = 0.92`. USD is always known.
    pub currencies: BTreeMap<String, f64>,
    pub limits: Limits,
    pub events: Events,
    pub learning: Learning,
    pub pacing: PacingConfig,
    pub profiles: ProfilesConfig,
}

/// The profile store ([`crate::audience::profiles`]): where its bulk files and snapshot live, and its bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// Bulk profile files (`*.jsonl`, `*.csv`), applied at start and whenever they change.
    pub dir: PathBuf,
    /// The snapshot written at shutdown and every `snapshot_secs`, read at start
    /// [default: `profiles.snapshot` in the event log directory].
    pub snapshot: Option<PathBuf>,
    /// How often the snapshot is written while the bidder runs (when profiles changed).
    pub snapshot_secs: u64,
    /// Users the store holds at most; updates for new users past it are refused.
    pub max_users: usize,
    /// Largest body `POST /users/batch` accepts.
    pub max_batch_bytes: usize,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            dir: PathBuf::from("profiles"),
            snapshot: None,
            snapshot_secs: 300,
            max_users: 20_000_000,
            max_batch_bytes: 16 << 20,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Budgets and frequency caps: how long reservations wait, how often pacing re-plans, how many
/// users frequency remembers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// How long a bid's reservation waits for its win notice (and a bid counts toward its user's
    /// frequency cap while it waits for its impression) before it is released.
    pub hold_secs: u32,
    /// How often even pacing re-plans a campaign's pass rate.
    pub step_secs: u32,
    /// Users whose exposures frequency caps remember; past this, the least recently seen are
    /// forgotten.
    pub max_users: usize,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            hold_secs: 60,
            step_secs: 10,
            max_users: 2_000_000,
        }
    }
}

/// How measured clicks and conversions feed back into prices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Learning {
    /// A campaign's prior CTR weighs as much as this many measured impressions.
    pub prior_impressions: f64,
    /// A campaign's prior CVR weighs as much as this many measured clicks.
    pub prior_clicks: f64,
    /// How often campaigns are re-ranked at their learned prices.
    pub reprice_secs: u64,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            prior_impressions: 1_000.0,
            prior_clicks: 100.0,
            reprice_secs: 10,
        }
    }
}

/// The measurement loop: event log and event tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    /// Directory of the event log.
    pub dir: PathBuf,
    /// Events waiting for the writer before event endpoints answer 503.
    pub queue: usize,
    /// Size at which a log file is closed and the next one started.
    pub max_file_mb: u64,
    /// How often the log is flushed and fsynced.
    pub sync_ms: u64,
    /// How long an event token stays valid after its bid.
    pub token_ttl_secs: u32,
    /// Log one bid line in this many bids (1: every bid; 0: none).
    pub log_bids_every: u64,
    /// How many conversions one click may bring.
    pub max_orders_per_click: u32,
    /// Signs event tokens; `PRECIS_SECRET` overrides it. At least 16 bytes.
    pub secret: Option<String>,
    /// Also accepted while rotating secrets; `PRECIS_SECRET_PREVIOUS` overrides it.
    pub previous_secret: Option<String>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            dir: PathBuf::from("logs"),
            queue: 65_536,
            max_file_mb: 256,
            sync_ms: 1_000,
            token_ttl_secs: 86_400,
            log_bids_every: 1,
            max_orders_per_click: 3,
            secret: None,
            previous_secret: None,
        }
    }
}

impl Events {
    /// The signing secret and the previous one, the environment taking precedence over the file.
    pub fn secrets(&self) -> (Option<String>, Option<String>) {
        (
            env_secret("PRECIS_SECRET").or_else(|| self.secret.clone()),
            env_secret("PRECIS_SECRET_PREVIOUS").or_else(|| self.previous_secret.clone()),
        )
    }
}

/// A secret from the environment; an empty variable counts as unset.
fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers before the connection is closed.
    pub header_timeout_ms: u64,
    /// Time a client has to send its request body; slower ones get 408.
    pub body_timeout_ms: u64,
    /// Open connections at most; one more is accepted and closed at once (and counted).
    pub max_connections: usize,
    /// Bid requests being read or computed at once; one more gets 204 at once (`shed`).
    pub max_in_flight: usize,
    /// The longest a bid request may take, and its time when it carries no `tmax`.
    pub max_tmax_ms: u64,
    /// Kept off a request's `tmax` for the answer's way back to the exchange.
    pub tmax_margin_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token: None,
            log_format: LogFormat::Text,
            workers: 0,
            public_url: None,
            campaigns: PathBuf::from("campaigns"),
            currencies: BTreeMap::new(),
            limits: Limits::default(),
            events: Events::default(),
            learning: Learning::default(),
            pacing: PacingConfig::default(),
            profiles: ProfilesConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            header_timeout_ms: 2_000,
            body_timeout_ms: 2_000,
            max_connections: 16_384,
            max_in_flight: 1_024,
            max_tmax_ms: 1_000,
            tmax_margin_ms: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads `path` with `flags` on top. When `required` is false a missing file means the
    /// defaults (and the flags).
    pub fn load(path: &Path, required: bool, flags: &Flags) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let flags = toml::Table::try_from(flags).map_err(|e| invalid(format!("flags: {e}")))?;
        overlay(&mut table, flags);
        let config = Config::deserialize(table).map_err(|e| invalid(e.to_string()))?;
        config.rates().map_err(&invalid)?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Values that would stop the bidder working, refused at start.
    fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url {
            // Bids carry it as it is, in URLs and in markup (see `openrtb::response`).
            let plain = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '<' | '>');
            let scheme = url.starts_with("http://") || url.starts_with("https://");
            if !scheme || !url.chars().all(plain) {
                return Err(format!(
                    "public_url must be an http:// or https:// URL without spaces, quotes, \
                     backslashes or angle brackets, not `{url}`"
                ));
            }
        }
        let e = &self.events;
        let l = &self.learning;
        let positive = [
            ("[events] queue", e.queue as f64),
            ("[events] max_file_mb", e.max_file_mb as f64),
            ("[events] sync_ms", e.sync_ms as f64),
            ("[events] token_ttl_secs", e.token_ttl_secs.into()),
            (
                "[events] max_orders_per_click",
                e.max_orders_per_click.into(),
            ),
            ("[learning] prior_impressions", l.prior_impressions),
            ("[learning] prior_clicks", l.prior_clicks),
            ("[learning] reprice_secs", l.reprice_secs as f64),
            ("[limits] max_body_bytes", self.limits.max_body_bytes as f64),
            (
                "[limits] max_connections",
                self.limits.max_connections as f64,
            ),
            ("[limits] max_in_flight", self.limits.max_in_flight as f64),
            ("[limits] max_tmax_ms", self.limits.max_tmax_ms as f64),
            ("[pacing] hold_secs", self.pacing.hold_secs.into()),
            ("[pacing] step_secs", self.pacing.step_secs.into()),
            ("[pacing] max_users", self.pacing.max_users as f64),
            (
                "[profiles] snapshot_secs",
                self.profiles.snapshot_secs as f64,
            ),
            ("[profiles] max_users", self.profiles.max_users as f64),
            (
                "[profiles] max_batch_bytes",
                self.profiles.max_batch_bytes as f64,
            ),
        ];
        match positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            Some((name, value)) => Err(format!("{name} must be above 0, not {value}")),
            None => Ok(()),
        }
    }

    /// The admin token, the environment (`PRECIS_ADMIN_TOKEN`) taking precedence over the file.
    pub fn admin_token(&self) -> Option<String> {
        env_secret("PRECIS_ADMIN_TOKEN").or_else(|| self.admin_token.clone())
    }

    /// The currency table, checked.
    pub fn rates(&self) -> Result<Rates, String> {
        let mut rates = Vec::new();
        for (code, &rate) in &self.currencies {
            let currency = Currency::parse(code)
                .ok_or_else(|| format!("currencies: `{code}` is not an ISO-4217 code"))?;
            if currency == Currency::USD {
                return Err(
                    "currencies: rates are units per USD, so USD is always 1 and takes no entry"
                        .into(),
                );
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "currencies: {code} = {rate} must be a positive number of {code} per USD"
                ));
            }
            rates.push((currency, rate));
        }
        Ok(Rates::new(rates))
    }
}

impl Config {
    /// Where the profile snapshot is kept: as configured, else beside the event log.
    pub fn profiles_snapshot(&self) -> PathBuf {
        self.profiles
            .snapshot
            .clone()
            .unwrap_or_else(|| self.events.dir.join("profiles.snapshot"))
    }
}

/// `over`'s keys replace `base`'s; tables are merged key by key.
fn overlay(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => overlay(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A flag for every key of `precis.toml` but the secrets (which belong in the environment, not
/// in a process listing): the value given replaces the file's. Defaults are the file's.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct Flags {
    /// Address to serve exchanges on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the admin routes (/status, /admin/*) [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Base URL put in win, billing and click URLs [default: http://LISTEN].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Campaign directory [default: campaigns].
    #[arg(long, value_name = "DIR")]
    pub campaigns: Option<PathBuf>,
    /// Log lines as text or JSON [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Threads serving exchange connections; 0: one per core [default: 0].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// An exchange rate, CODE=UNITS per USD (e.g. EUR=0.92); repeat for more. Replaces the rate
    /// of that currency in [currencies].
    #[arg(long = "currency", value_name = "CODE=RATE", value_parser = rate)]
    #[serde(rename = "currencies", serialize_with = "as_table")]
    pub currencies: Vec<(String, f64)>,
    #[command(flatten)]
    pub limits: LimitsFlags,
    #[command(flatten)]
    pub events: EventsFlags,
    #[command(flatten)]
    pub learning: LearningFlags,
    #[command(flatten)]
    pub pacing: PacingFlags,
    #[command(flatten)]
    pub profiles: ProfilesFlags,
}

/// `[limits]` as flags.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct LimitsFlags {
    /// Largest request body accepted; larger get 413 [default: 262144].
    #[arg(long = "limits-max-body-bytes", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Time to send request headers before the connection is closed [default: 2000].
    #[arg(long = "limits-header-timeout-ms", value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Time to send a request body before 408 [default: 2000].
    #[arg(long = "limits-body-timeout-ms", value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// Open connections on the bid port at most; more are closed at once [default: 16384].
    #[arg(long = "limits-max-connections", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Bid requests read or computed at once; more get 204 at once [default: 1024].
    #[arg(long = "limits-max-in-flight", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Longest time a bid request may take, and its time without tmax [default: 1000].
    #[arg(long = "limits-max-tmax-ms", value_name = "MS")]
    pub max_tmax_ms: Option<u64>,
    /// Kept off a request's tmax for the answer's way back [default: 5].
    #[arg(long = "limits-tmax-margin-ms", value_name = "MS")]
    pub tmax_margin_ms: Option<u64>,
}

/// `[events]` as flags (the secrets come from the file or the environment only).
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct EventsFlags {
    /// Event log directory [default: logs].
    #[arg(long = "events-dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Events waiting for the writer before event routes answer 503 [default: 65536].
    #[arg(long = "events-queue", value_name = "N")]
    pub queue: Option<usize>,
    /// Size at which a log file is closed and the next started [default: 256].
    #[arg(long = "events-max-file-mb", value_name = "MB")]
    pub max_file_mb: Option<u64>,
    /// How often the log is flushed and fsynced [default: 1000].
    #[arg(long = "events-sync-ms", value_name = "MS")]
    pub sync_ms: Option<u64>,
    /// How long after its bid an event is accepted [default: 86400].
    #[arg(long = "events-token-ttl-secs", value_name = "SECS")]
    pub token_ttl_secs: Option<u32>,
    /// Log one bid line in this many bids, 0 for none [default: 1].
    #[arg(long = "events-log-bids-every", value_name = "N")]
    pub log_bids_every: Option<u64>,
    /// Conversions one click may bring [default: 3].
    #[arg(long = "events-max-orders-per-click", value_name = "N")]
    pub max_orders_per_click: Option<u32>,
}

/// `[learning]` as flags.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct LearningFlags {
    /// A prior ctr weighs as much as this many impressions [default: 1000].
    #[arg(long = "learning-prior-impressions", value_name = "N")]
    pub prior_impressions: Option<f64>,
    /// A prior cvr weighs as much as this many clicks [default: 100].
    #[arg(long = "learning-prior-clicks", value_name = "N")]
    pub prior_clicks: Option<f64>,
    /// How often campaigns are re-ranked at learned prices [default: 10].
    #[arg(long = "learning-reprice-secs", value_name = "SECS")]
    pub reprice_secs: Option<u64>,
}

/// `[pacing]` as flags.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct PacingFlags {
    /// How long a bid's price stays reserved waiting for its win [default: 60].
    #[arg(long = "pacing-hold-secs", value_name = "SECS")]
    pub hold_secs: Option<u32>,
    /// How often even pacing re-plans pass rates [default: 10].
    #[arg(long = "pacing-step-secs", value_name = "SECS")]
    pub step_secs: Option<u32>,
    /// Users frequency caps remember [default: 2000000].
    #[arg(long = "pacing-max-users", value_name = "N")]
    pub max_users: Option<usize>,
}

/// `[profiles]` as flags.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct ProfilesFlags {
    /// Bulk profile files (*.jsonl, *.csv) [default: profiles].
    #[arg(id = "profiles-dir", long = "profiles-dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The profile snapshot [default: profiles.snapshot in the event log directory].
    #[arg(
        id = "profiles-snapshot",
        long = "profiles-snapshot",
        value_name = "FILE"
    )]
    pub snapshot: Option<PathBuf>,
    /// How often the snapshot is written while profiles change [default: 300].
    #[arg(
        id = "profiles-snapshot-secs",
        long = "profiles-snapshot-secs",
        value_name = "SECS"
    )]
    pub snapshot_secs: Option<u64>,
    /// Users the profile store holds at most [default: 20000000].
    #[arg(
        id = "profiles-max-users",
        long = "profiles-max-users",
        value_name = "N"
    )]
    pub max_users: Option<usize>,
    /// Largest body POST /users/batch accepts [default: 16777216].
    #[arg(
        id = "profiles-max-batch-bytes",
        long = "profiles-max-batch-bytes",
        value_name = "BYTES"
    )]
    pub max_batch_bytes: Option<usize>,
}

/// `CODE=RATE`.
fn rate(text: &str) -> Result<(String, f64), String> {
    let (code, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not CODE=RATE"))?;
    let rate = rate
        .trim()
        .parse()
        .map_err(|_| format!("`{rate}` is not a number"))?;
    Ok((code.trim().to_owned(), rate))
}

fn as_table<S: serde::Serializer>(rates: &[(String, f64)], out: S) -> Result<S::Ok, S::Error> {
    out.collect_map(rates.iter().map(|(code, rate)| (code, rate)))
}

impl Limits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precis.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path, true, &Flags::default())
    }

    #[test]
    fn the_sample_config_loads() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/precis.toml");
        let config = Config::load(Path::new(sample), true, &Flags::default()).unwrap();
        assert!(
            config
                .rates()
                .unwrap()
                .knows(Currency::parse("EUR").unwrap())
        );
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn every_key_of_the_sample_config_is_also_a_flag() {
        use clap::CommandFactory;
        let command = Serve::command();
        let has_flag = |name: &str| command.get_arguments().any(|a| a.get_long() == Some(name));
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/precis.toml");
        let table: toml::Table = toml::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
        let mut names = Vec::new();
        for (key, value) in &table {
            match value {
                // Exchange rates are one repeatable `--currency CODE=RATE`.
                toml::Value::Table(_) if key == "currencies" => names.push("currency".to_owned()),
                toml::Value::Table(section) => names.extend(
                    section
                        .keys()
                        // Secrets belong in the environment, never in a process listing.
                        .filter(|k| !k.contains("secret"))
                        .map(|k| format!("{key}-{k}")),
                ),
                _ => names.push(key.clone()),
            }
        }
        let missing: Vec<String> = names
            .iter()
            .map(|n| n.replace('_', "-"))
            .filter(|n| !has_flag(n))
            .collect();
        assert!(names.len() > 25, "the sample lists the keys: {names:?}");
        assert_eq!(missing, Vec::<String>::new(), "keys without a serve flag");
    }

    #[test]
    fn values_that_would_stop_the_bidder_are_refused_at_start() {
        for (text, says) in [
            (
                "[events]\nmax_file_mb = 0",
                "[events] max_file_mb must be above 0",
            ),
            ("[events]\nqueue = 0", "[events] queue must be above 0"),
            (
                "[learning]\nprior_impressions = 0",
                "[learning] prior_impressions must be above 0",
            ),
            (
                "[learning]\nprior_clicks = -1",
                "[learning] prior_clicks must be above 0",
            ),
            ("[currencies]\nUSD = 1.0", "USD is always 1"),
            ("[currencies]\nEUR = 0", "must be a positive number"),
            (
                "public_url = \"https://bid.example/\\\"x\"",
                "public_url must be an http:// or https:// URL",
            ),
            (
                "public_url = \"bid.example\"",
                "public_url must be an http://",
            ),
            ("[events]\nmax_file_gb = 1", "unknown field `max_file_gb`"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert!(load("").is_ok());
    }

    /// The flags alone, as `precis serve` takes them.
    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        flags: Flags,
    }

    /// Flags for every key, parsed as `precis serve` parses them.
    fn flags(args: &[&str]) -> Flags {
        let args = std::iter::once("serve").chain(args.iter().copied());
        <Serve as clap::Parser>::try_parse_from(args).unwrap().flags
    }

    #[test]
    fn flags_override_the_file_key_by_key_and_are_checked_like_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precis.toml");
        std::fs::write(
            &path,
            "campaigns = \"from-file\"\n[events]\nqueue = 7\nsync_ms = 5\n[currencies]\nEUR = 0.9\nGBP = 0.8\n",
        )
        .unwrap();
        let all = flags(&[
            "--listen=127.0.0.1:9000",
            "--admin-listen=127.0.0.1:9001",
            "--public-url=https://bid.example",
            "--log-format=json",
            "--currency=EUR=0.95",
            "--limits-max-body-bytes=1000",
            "--limits-header-timeout-ms=11",
            "--limits-body-timeout-ms=12",
            "--events-dir=elsewhere",
            "--events-queue=13",
            "--events-max-file-mb=14",
            "--events-token-ttl-secs=15",
            "--events-log-bids-every=16",
            "--events-max-orders-per-click=17",
            "--learning-prior-impressions=18",
            "--learning-prior-clicks=19",
            "--learning-reprice-secs=20",
            "--pacing-hold-secs=21",
            "--pacing-step-secs=22",
            "--pacing-max-users=23",
        ]);
        let config = Config::load(&path, true, &all).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(config.public_url.as_deref(), Some("https://bid.example"));
        assert_eq!(config.log_format, LogFormat::Json);
        // Not given as a flag: the file's value stays, in a section a flag also changed.
        assert_eq!(config.campaigns, PathBuf::from("from-file"));
        assert_eq!(config.events.sync_ms, 5);
        assert_eq!(config.currencies["EUR"], 0.95);
        assert_eq!(config.currencies["GBP"], 0.8);
        let l = &config.limits;
        assert_eq!(
            (l.max_body_bytes, l.header_timeout_ms, l.body_timeout_ms),
            (1000, 11, 12)
        );
        let e = &config.events;
        assert_eq!(e.dir, PathBuf::from("elsewhere"));
        assert_eq!(
            (
                e.queue,
                e.max_file_mb,
                e.token_ttl_secs,
                e.log_bids_every,
                e.max_orders_per_click
            ),
            (13, 14, 15, 16, 17)
        );
        let l = &config.learning;
        assert_eq!(
            (l.prior_impressions, l.prior_clicks, l.reprice_secs),
            (18.0, 19.0, 20)
        );
        let p = &config.pacing;
        assert_eq!((p.hold_secs, p.step_secs, p.max_users), (21, 22, 23));

        let error = Config::load(&path, true, &flags(&["--events-queue=0"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("[events] queue must be above 0"), "{error}");
        let error = Config::load(&path, true, &flags(&["--currency=EUR=-1"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be a positive number"), "{error}");
    }
}
