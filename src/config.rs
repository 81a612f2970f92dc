//! Configuration: `precis.toml` (optional), overridden by command-line flags.
//!
//! Read once at start; the running bidder never re-reads it (campaigns, not configuration, are what
//! people edit while it runs). Unknown keys are errors, as in campaign files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::pricing::{Currency, Rates};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the bidder listens. Loopback unless an operator says otherwise.
    pub listen: SocketAddr,
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
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        (
            env("PRECIS_SECRET").or_else(|| self.secret.clone()),
            env("PRECIS_SECRET_PREVIOUS").or_else(|| self.previous_secret.clone()),
        )
    }
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
            public_url: None,
            campaigns: PathBuf::from("campaigns"),
            currencies: BTreeMap::new(),
            limits: Limits::default(),
            events: Events::default(),
            learning: Learning::default(),
            pacing: PacingConfig::default(),
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
    /// Reads `path`. When `required` is false a missing file means the defaults.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
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
        let config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        config.rates().map_err(&invalid)?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Values that would stop the bidder working, refused at start.
    fn check(&self) -> Result<(), String> {
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
        ];
        match positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            Some((name, value)) => Err(format!("{name} must be above 0, not {value}")),
            None => Ok(()),
        }
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
        Config::load(&path, true)
    }

    #[test]
    fn the_sample_config_loads() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/precis.toml");
        let config = Config::load(Path::new(sample), true).unwrap();
        assert!(
            config
                .rates()
                .unwrap()
                .knows(Currency::parse("EUR").unwrap())
        );
        assert!(config.listen.ip().is_loopback());
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
            ("[events]\nmax_file_gb = 1", "unknown field `max_file_gb`"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert!(load("").is_ok());
    }
}
