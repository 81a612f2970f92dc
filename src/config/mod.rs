//! Configuration: `precis.toml` (optional), overridden by command-line flags ([`Flags`]: one flag
//! per key, `--SECTION-KEY` for keys in a section), secrets also from the environment.
//!
//! Read once at start; the running bidder never re-reads it (campaigns, not configuration, are what
//! people edit while it runs). Unknown keys are errors, as in campaign files. Flags are merged into
//! the file's table before it is read, so a flag is checked exactly as the key it stands for.
//!
//! Each key is declared once, below: its doc comment, type, default and flag. The structs, their
//! defaults, the flags and their help are made from that declaration (by `keys.rs`); a key is
//! never restated elsewhere in the code.

mod keys;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::book::store::Loading;
use crate::campaign;
use crate::campaign::pricing::{Currency, Rates};
use crate::diagnostic::{Diagnostic, FileError, for_people, path_at};
use keys::{Setting, settings};
use toml::de::DeTable;

settings! {
    /// The whole of `precis.toml`.
    pub struct Config {
        /// Address to serve exchanges on, loopback unless an operator chooses otherwise; port 0
        /// picks a free port.
        listen: Listen = Listen(SocketAddr::from(([127, 0, 0, 1], 8080))), flag "ADDR";
        /// Address of the admin routes (/status, /admin/*); the bid port never serves them.
        admin_listen: Listen = Listen(SocketAddr::from(([127, 0, 0, 1], 8081))), flag "ADDR";
        /// Another name the admin port is reached by (e.g. `precis-admin.internal`, behind a
        /// proxy): its `Host` is accepted besides the admin address (and `localhost` on loopback).
        admin_host: Option<String> = None, flag "HOST";
        /// Bearer token every admin request must carry, when set; PRECIS_ADMIN_TOKEN overrides it.
        /// Required when admin_listen is not loopback.
        admin_token: Option<String> = None, secret;
        /// The bid port's TLS certificate chain (PEM); with `tls_key`, the bid port speaks HTTPS.
        tls_cert: Option<PathBuf> = None, flag "FILE";
        /// The private key (PEM) of `tls_cert`.
        tls_key: Option<PathBuf> = None, flag "FILE";
        /// Base of the URLs precis puts in bids (win and billing notices, clicks).
        public_url: Option<String> = None, flag "URL", shown "http://LISTEN";
        /// Campaign directory.
        campaigns: PathBuf = PathBuf::from("campaigns"), flag "DIR";
        /// Log lines as text or JSON.
        log_format: LogFormat = LogFormat::Text, flag "LOG_FORMAT";
        /// How a bid request without a bid is answered: `empty` (204 No Content) or `nbr` (200
        /// with an OpenRTB BidResponse holding only `id`, `nbr` and precis' reason in `ext`).
        no_bid: NoBidAnswer = NoBidAnswer::Empty, flag "ANSWER";
        /// Threads serving exchange connections, each with its own runtime; 0: one per core.
        workers: usize = 0, flag "N";
        /// Exchange rates: units of each currency per US dollar (USD is always known). A flag
        /// gives one as CODE=RATE (e.g. EUR=0.92) and may be repeated; each replaces the rate of
        /// that currency in `[currencies]`.
        currencies: BTreeMap<String, f64> = BTreeMap::new(), rates "currency";
        /// Exchanges that send encrypted clearing prices (`[[exchange]]`: `name`, `e_key`,
        /// `i_key`, the keys in base64 as the exchange gives them); each key may instead come from
        /// PRECIS_EXCHANGE_<NAME>_E_KEY / _I_KEY, which override the file.
        exchange: Vec<ExchangeKeys> = Vec::new(), secret;
    }

    /// Protection against slow or oversized clients.
    [limits] pub struct Limits {
        /// Largest request body accepted; larger ones get 413.
        max_body_bytes: usize = 256 * 1024, flag "BYTES", above 0;
        /// Time a client has to send its request headers before the connection is closed.
        header_timeout_ms: u64 = 2_000, flag "MS";
        /// Time a client has to send its request body; slower ones get 408.
        body_timeout_ms: u64 = 2_000, flag "MS";
        /// Open connections on the bid port at most; one more is accepted and closed at once (and
        /// counted).
        max_connections: usize = 16_384, flag "N", above 0;
        /// Bid requests being read or computed at once; one more gets 204 at once (shed).
        max_in_flight: usize = 1_024, flag "N", above 0;
        /// The longest a bid request may take, and its time when it carries no tmax.
        max_tmax_ms: u64 = 1_000, flag "MS", above 0;
        /// Kept off a request's tmax for the answer's way back to the exchange.
        tmax_margin_ms: u64 = 5, flag "MS";
    }

    /// How campaign files are read, at reload and by `precis check`.
    [reload] pub struct ReloadConfig {
        /// A changed campaign file is loaded only once its size and modification time have stood
        /// still this long (and the directory's list of files too); until then its last good
        /// version keeps serving. 0: load whatever is there.
        quiet_ms: u64 = 500, flag "MS";
        /// Campaign files larger than this are refused without being read.
        max_file_bytes: u64 = campaign::Limits::default().max_file_bytes, flag "BYTES", above 0;
        /// A creative whose markup (adm) is larger than this refuses its campaign file.
        max_adm_bytes: usize = campaign::Limits::default().max_adm_bytes, flag "BYTES", above 0;
    }

    /// The measurement loop: event log and event tokens.
    [events] pub struct Events {
        /// Event log directory.
        dir: PathBuf = PathBuf::from("logs"), flag "DIR";
        /// Events waiting for the writer before event routes answer 503.
        queue: usize = 65_536, flag "N", above 0;
        /// Size at which a log file is closed and the next one started.
        max_file_mb: u64 = 256, flag "MB", above 0;
        /// Group commit window: the least time between two fsyncs of the log, and so the longest
        /// an event notice waits for its fsync to start (it is answered once its line is on disk).
        sync_ms: u64 = 2, flag "MS", above 0;
        /// How long after its bid an event is accepted (its token stays valid).
        token_ttl_secs: u32 = 86_400, flag "SECS", above 0;
        /// Log one bid line in this many bids (1: every bid; 0: none).
        log_bids_every: u64 = 1, flag "N";
        /// Conversions one click may bring.
        max_orders_per_click: u32 = 3, flag "N", above 0;
        /// The largest order amount a conversion may report, USD (converted to the campaign's
        /// currency), for campaigns that set no `max_order_value` and are not CPS.
        max_order_value: f64 = 100_000.0, flag "USD", above 0;
        /// Events remembered at most so that each counts once (about 26 bytes each); past it,
        /// those whose tokens expire first are forgotten and their tokens refused.
        max_dedup_keys: usize = 100_000_000, flag "N", above 0;
        /// How often the state snapshot (state.snapshot in dir) is brought up to the log while
        /// serving; it is also written at shutdown.
        snapshot_secs: u64 = 300, flag "SECS", above 0;
        /// Log files of hours older than this many days are removed once the state snapshot has
        /// read them; 0: kept.
        keep_days: u32 = 0, flag "DAYS";
        /// The oldest log files are removed, once the state snapshot has read them, while the log
        /// is larger than this; 0: no limit.
        keep_gb: u64 = 0, flag "GB";
        /// Signs event tokens; PRECIS_SECRET overrides it. At least 16 bytes.
        secret: Option<String> = None, secret;
        /// Also accepted while rotating secrets; PRECIS_SECRET_PREVIOUS overrides it.
        previous_secret: Option<String> = None, secret;
    }

    /// How measured clicks and conversions feed back into prices.
    [learning] pub struct Learning {
        /// A campaign's prior CTR weighs as much as this many measured impressions.
        prior_impressions: f64 = 1_000.0, flag "N", above 0;
        /// A campaign's prior CVR weighs as much as this many measured clicks.
        prior_clicks: f64 = 100.0, flag "N", above 0;
        /// How often campaigns are re-ranked at their learned prices.
        reprice_secs: u64 = 10, flag "SECS", above 0;
    }

    /// Budgets and frequency caps: how long reservations wait, how often pacing re-plans, how
    /// many users frequency remembers.
    [pacing] pub struct PacingConfig {
        /// How long a bid's price stays reserved waiting for its win notice (and the bid counts
        /// toward its user's frequency cap waiting for its impression) before it is released.
        hold_secs: u32 = 60, flag "SECS", above 0;
        /// How often even pacing re-plans a campaign's pass rate.
        step_secs: u32 = 10, flag "SECS", above 0;
        /// Users whose exposures frequency caps remember; past this, the least recently seen are
        /// forgotten.
        max_users: usize = 2_000_000, flag "N", above 0;
        /// Seeds even pacing's random pass-rate draw: request thread n draws from seed + n, so a
        /// run can be replayed. Unset: each thread seeds itself at random.
        seed: Option<u64> = None, flag "N", shown "random";
    }

    /// The profile store ([`crate::audience::profiles`]): where its bulk files and snapshot
    /// live, and its bounds.
    [profiles] pub struct ProfilesConfig {
        /// Bulk profile files (*.jsonl, *.csv), applied at start and whenever they change.
        dir: PathBuf = PathBuf::from("profiles"), flag "DIR";
        /// The profile snapshot, read at start, written at shutdown and every snapshot_secs.
        snapshot: Option<PathBuf> = None, flag "FILE",
            shown "profiles.snapshot in the event log directory";
        /// How often the snapshot is written while the bidder runs (when profiles changed).
        snapshot_secs: u64 = 300, flag "SECS", above 0;
        /// Users the profile store holds at most; updates for new users past it are refused.
        max_users: usize = 20_000_000, flag "N", above 0;
        /// Largest body POST /users/batch accepts.
        max_batch_bytes: usize = 16 << 20, flag "BYTES", above 0;
    }

    /// What precis may do with personal data ([`crate::request::privacy`]).
    [privacy] pub struct PrivacyConfig {
        /// precis' vendor id in the IAB Global Vendor List: under GDPR, personal data is used
        /// only when the TCF consent string gives this vendor consent (with purposes 1, 3 and 4).
        /// Unset: no personal data under GDPR.
        vendor_id: Option<u32> = None, flag "ID";
    }
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` resolved once when the configuration is
/// read (`localhost:8080`; an IPv4 address is preferred when the name has both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Listen, String> {
        if let Ok(addr) = text.parse() {
            return Ok(Listen(addr));
        }
        let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
            .map_err(|e| {
                format!("`{text}` is not an address to listen on (HOST:PORT or IP:PORT): {e}")
            })?
            .collect();
        let first = resolved.iter().find(|a| a.is_ipv4()).or(resolved.first());
        first
            .copied()
            .map(Listen)
            .ok_or_else(|| format!("`{text}` names no address"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Listen, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl Setting for Listen {
    type Flag = Listen;
}

/// How a bid request without a bid is answered (exchanges differ in what they expect).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NoBidAnswer {
    /// 204 No Content.
    #[default]
    Empty,
    /// 200 with `{"id": REQUEST_ID, "nbr": CODE, "ext": {"reason": REASON}}`.
    Nbr,
}

impl Setting for NoBidAnswer {
    type Flag = NoBidAnswer;
}

/// An exchange's price keys as written under `[[exchange]]` (see [`Config::exchanges`]).
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeKeys {
    /// How logs and metrics name it; letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// The encryption key, base64.
    #[serde(default)]
    pub e_key: Option<String>,
    /// The integrity key, base64.
    #[serde(default)]
    pub i_key: Option<String>,
}

impl std::fmt::Debug for ExchangeKeys {
    /// Never shows the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeKeys")
            .field("name", &self.name)
            .finish_non_exhaustive()
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

impl Setting for LogFormat {
    type Flag = LogFormat;
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A mistake in the file, at `path:line:col`.
    #[error("{0}")]
    File(FileError),
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
        // The file on its own first, so that a mistake in it is shown where it is written.
        if let Err(e) = toml::from_str::<Config>(&text) {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim_end();
            let keys = DeTable::parse(&text).map(|t| path_at(t.get_ref(), &span));
            let message = for_people(message, &keys.unwrap_or_default());
            let diagnostic = Diagnostic::at(&text, span.start, message);
            return Err(ConfigError::File(FileError {
                path: path.to_owned(),
                diagnostics: vec![diagnostic],
            }));
        }
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let flags = flags
            .0
            .clone()
            .map_err(|e| invalid(format!("flags: {e}")))?;
        overlay(&mut table, flags);
        let config = Config::deserialize(table).map_err(|e| invalid(e.to_string()))?;
        config.rates().map_err(&invalid)?;
        config.exchanges().map_err(&invalid)?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Values that would stop the bidder working, refused at start.
    fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key go together: set both for HTTPS, or neither".into());
        }
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
        match KEYS.iter().find_map(|key| key.refuses(self)) {
            Some(refusal) => Err(refusal),
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
    /// The exchanges whose encrypted prices precis reads, keys from the environment
    /// (`PRECIS_EXCHANGE_<NAME>_E_KEY`, `_I_KEY`, NAME upper-cased with `.` and `-` as `_`) taking
    /// precedence over the file's. A missing or unreadable key is an error naming the exchange.
    pub fn exchanges(&self) -> Result<crate::price::Exchanges, String> {
        let mut exchanges = Vec::new();
        let mut names = std::collections::HashSet::new();
        for keys in &self.exchange {
            let name = &keys.name;
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if name.is_empty() || !name.chars().all(plain) {
                return Err(format!(
                    "exchange: `{name}` must be a name of letters, digits, `.`, `_` and `-`"
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("exchange: `{name}` is named twice"));
            }
            let env = name.to_ascii_uppercase().replace(['.', '-'], "_");
            let key = |which: &str, file: &Option<String>| {
                env_secret(&format!(
                    "PRECIS_EXCHANGE_{env}_{}",
                    which.to_ascii_uppercase()
                ))
                .or_else(|| file.clone())
                .ok_or_else(|| {
                    format!(
                        "exchange `{name}` has no `{which}`: set it, or PRECIS_EXCHANGE_{env}_{}",
                        which.to_ascii_uppercase()
                    )
                })
            };
            let (e_key, i_key) = (key("e_key", &keys.e_key)?, key("i_key", &keys.i_key)?);
            exchanges.push(
                crate::price::Exchange::new(name, &e_key, &i_key).map_err(|e| e.to_string())?,
            );
        }
        Ok(crate::price::Exchanges::new(exchanges))
    }

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
/// in a process listing): the value given replaces the file's. Defaults are the file's. Holds the
/// values given as the table of `precis.toml` they replace keys of, or why a value given cannot
/// be one (an integer past TOML's), which [`Config::load`] reports as it reports the file's.
#[derive(Debug, Clone)]
pub struct Flags(Result<toml::Table, String>);

impl Default for Flags {
    fn default() -> Self {
        Flags(Ok(toml::Table::new()))
    }
}

impl clap::FromArgMatches for Flags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Flags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    /// The flags given replace those held, key by key.
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        let given = keys::given_table(KEYS, matches);
        if let Ok(table) = &mut self.0 {
            match given {
                Ok(given) => overlay(table, given),
                Err(unrepresentable) => self.0 = Err(unrepresentable),
            }
        }
        Ok(())
    }
}

impl clap::Args for Flags {
    fn augment_args(command: clap::Command) -> clap::Command {
        keys::flags(KEYS, command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        keys::flags(KEYS, command)
    }
}

impl ReloadConfig {
    /// How the store reads campaign files.
    pub fn loading(&self) -> Loading {
        Loading {
            quiet: Duration::from_millis(self.quiet_ms),
            limits: campaign::Limits {
                max_file_bytes: self.max_file_bytes,
                max_adm_bytes: self.max_adm_bytes,
            },
        }
    }
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
        assert!(config.listen.0.ip().is_loopback());
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

    /// The reference's table of keys (docs/reference.md), row by row: each key (`[section] key`) with its flag and default
    /// cells; a row naming two keys (`[events] secret`, `previous_secret`) gives both.
    fn readme_keys() -> Vec<(String, String, String)> {
        let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");
        let readme = std::fs::read_to_string(readme).unwrap();
        let (_, table) = readme
            .split_once("\n## Configuration: `precis.toml`\n")
            .expect("docs/reference.md has a configuration section");
        let table = table.split("\n## ").next().unwrap_or_default();
        let mut keys = Vec::new();
        for row in table.lines().filter_map(|row| row.strip_prefix("| `")) {
            let cells: Vec<&str> = row.splitn(4, " | ").collect();
            let [names, flag, default, _meaning] = cells[..] else {
                panic!("a row of four cells: {row}");
            };
            let mut section = None;
            for name in names.split(", ") {
                let name = name.trim_matches('`');
                let name = match name.strip_prefix('[').and_then(|n| n.split_once(']')) {
                    // `[currencies]`: a table, itself a top-level key.
                    Some((table, "")) => table,
                    Some((in_section, name)) => {
                        section = Some(in_section);
                        name.trim()
                    }
                    None => name,
                };
                let title = match section {
                    Some(section) => format!("[{section}] {name}"),
                    None => name.to_owned(),
                };
                keys.push((title, flag.to_owned(), default.to_owned()));
            }
        }
        keys
    }

    #[test]
    fn the_reference_lists_every_key_with_its_flag_and_default() {
        use clap::CommandFactory;
        let command = Serve::command();
        let readme = readme_keys();
        let listed: Vec<&str> = readme.iter().map(|(key, _, _)| key.as_str()).collect();
        let declared: Vec<String> = KEYS.iter().map(|key| key.title()).collect();
        assert_eq!(
            listed, declared,
            "the reference's keys, in the order of the flags"
        );
        for (key, (title, flag, default)) in KEYS.iter().zip(&readme) {
            match key.long() {
                Some(long) => {
                    let named = [format!("`--{long}`"), format!("`--{long} ")];
                    assert!(named.iter().any(|n| flag.starts_with(n)), "{title}: {flag}");
                    assert!(
                        command.get_arguments().any(|a| a.get_long() == Some(&long)),
                        "{title}: no --{long}"
                    );
                }
                None => {
                    // Secrets come from the file or the environment, never from a flag.
                    assert!(flag.starts_with("env `PRECIS_"), "{title}: {flag}");
                    let as_flag = key.name.replace('_', "-");
                    let flagged =
                        |a: &clap::Arg| a.get_long().is_some_and(|l| l.ends_with(&as_flag));
                    assert!(!command.get_arguments().any(flagged), "{title} has a flag");
                }
            }
            // A default that is a value is written as in precis.toml.
            let literal = match (key.default)() {
                _ if key.shown.is_some() => None,
                Some(toml::Value::String(text)) => Some(format!("`\"{text}\"`")),
                _ => key.shown_default().map(|value| format!("`{value}`")),
            };
            if let Some(literal) = literal {
                assert!(
                    default.starts_with(&literal),
                    "{title}: {default}, not {literal}"
                );
            }
        }
    }

    #[test]
    fn listen_addresses_may_be_host_names() {
        let config =
            load("listen = \"localhost:8090\"\nadmin_listen = \"127.0.0.1:8091\"").unwrap();
        assert_eq!(config.listen.0, SocketAddr::from(([127, 0, 0, 1], 8090)));
        assert_eq!(
            config.admin_listen.0,
            SocketAddr::from(([127, 0, 0, 1], 8091))
        );
        let error = load("listen = \"localhost\"").unwrap_err().to_string();
        assert!(
            error.contains("precis.toml:1:10: `localhost` is not an address to listen on"),
            "{error}"
        );
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
            (
                "tls_cert = \"cert.pem\"",
                "tls_cert and tls_key go together",
            ),
            (
                "[events]\nmax_file_gb = 1",
                "precis.toml:2:1: unknown key `max_file_gb` in [events]: did you mean `max_file_mb`?",
            ),
            (
                "workers = \"2\"",
                "precis.toml:1:11: `workers` must be a whole number, like 300, not the text \"2\": remove the quotes",
            ),
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
            "--workers=2",
            "--profiles-dir=people",
            "--profiles-snapshot=people.snapshot",
            "--profiles-max-users=24",
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
        assert_eq!(config.workers, 2);
        let p = &config.profiles;
        assert_eq!(p.dir, PathBuf::from("people"));
        assert_eq!(p.snapshot, Some(PathBuf::from("people.snapshot")));
        assert_eq!(p.max_users, 24);

        let error = Config::load(&path, true, &flags(&["--events-queue=0"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("[events] queue must be above 0"), "{error}");
        let error = Config::load(
            &path,
            true,
            &flags(&["--events-max-file-mb=18446744073709551615"]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("flags: u64 value was too large"), "{error}");
        let error = Config::load(&path, true, &flags(&["--currency=EUR=-1"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be a positive number"), "{error}");
    }

    #[test]
    fn exchanges_need_a_plain_unique_name_and_both_keys_in_base64() {
        const KEY: &str = "skU7Ax_NL5pPAFyKdkfZjZz2-VhIN8bjj1rVFOaJ_5o=";
        let exchange =
            |name: &str, keys: &str| format!("[[exchange]]\nname = \"{name}\"\n{keys}\n");
        let both = format!("e_key = \"{KEY}\"\ni_key = \"{KEY}\"");
        let two = exchange("adx", &both) + &exchange("other.one", &both);
        let names: Vec<String> = load(&two)
            .unwrap()
            .exchanges()
            .unwrap()
            .names()
            .map(str::to_owned)
            .collect();
        assert_eq!(names, ["adx", "other.one"]);
        let refused = [
            (exchange("ad x", &both), "`ad x` must be a name of letters"),
            (exchange("", &both), "`` must be a name of letters"),
            (
                exchange("adx", &both) + &exchange("adx", &both),
                "`adx` is named twice",
            ),
            (
                exchange("adx", &format!("e_key = \"{KEY}\"")),
                "exchange `adx` has no `i_key`: set it, or PRECIS_EXCHANGE_ADX_I_KEY",
            ),
            (
                exchange("ad-x.2", &format!("i_key = \"{KEY}\"")),
                "PRECIS_EXCHANGE_AD_X_2_E_KEY",
            ),
            (
                exchange(
                    "adx",
                    &format!("e_key = \"not base64!\"\ni_key = \"{KEY}\""),
                ),
                "exchange `adx`: `e_key` must be the key in base64",
            ),
        ];
        for (text, expected) in refused {
            let error = load(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            // The keys never show in the error.
            assert!(!error.contains(KEY), "{error}");
        }
        // Nor in debug output.
        let config = load(&two).unwrap();
        assert!(!format!("{config:?}").contains(KEY));
    }
}
