//! What operators deploy with (`deploy/`): the Prometheus alert rules and the Grafana dashboard
//! work against a real Prometheus scraping a real bidder, and the systemd unit is one systemd
//! accepts without a warning.
//!
//! Needs `promtool` and `prometheus` (Debian: `apt-get install prometheus`) and `systemd-analyze`
//! (Debian: `systemd`); `.ci/run` installs them when missing.

#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use bytes::Bytes;
use common::{PRECIS, Setup, parse_json};
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Runs a tool the deployment files are checked with; fails saying how to install it.
fn run(tool: &str, args: &[&str], package: &str) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): install it (`apt-get install {package}`, as .ci/run does)")
    })
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_are_valid_and_fire_when_their_unit_tests_say() {
    let rules = deploy("prometheus/alerts.yml");
    let check = run("promtool", &["check", "rules", path(&rules)], "prometheus");
    succeeded(&check, "promtool check rules");
    let tests = deploy("prometheus/alerts.test.yml");
    let test = run("promtool", &["test", "rules", path(&tests)], "prometheus");
    succeeded(&test, "promtool test rules");
    let config = deploy("prometheus/prometheus.yml");
    let check = run(
        "promtool",
        &["check", "config", path(&config)],
        "prometheus",
    );
    succeeded(&check, "promtool check config");
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("precis.service")).expect("deploy/precis.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/precis serve"),
        "{unit}"
    );
    // systemd checks that ExecStart names an executable: the binary under test stands in.
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("precis.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/precis", PRECIS)).expect("write unit");
    let verify = run("systemd-analyze", &["verify", path(&copy)], "systemd");
    succeeded(&verify, "systemd-analyze verify");
    // An unknown or misspelt key is only a warning: the unit must have none.
    assert_eq!(
        String::from_utf8_lossy(&verify.stderr),
        "",
        "systemd-analyze verify warned"
    );
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Every `precis_*` metric a text names, as exposed (histogram series by their family name).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("precis_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(family.to_owned());
    }
    names
}

/// The PromQL of every panel of the Grafana dashboard, with Grafana's variables as Grafana would
/// fill them for "all instances".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/precis.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<(String, String)> = panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            targets.into_iter().map(move |target| {
                let expr = target["expr"].as_str().expect("a PromQL expr");
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$instance", ".*");
                (title.clone(), expr)
            })
        })
        .collect();
    assert!(queries.len() >= 20, "{queries:?}");
    queries
}

/// A real Prometheus on a free loopback port, scraping `target` every second with the alert rules
/// loaded; killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        // The shipped configuration, pointed at the bidder under test and scraped faster.
        let shipped = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).expect("config");
        let config_text = shipped
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace("127.0.0.1:8081", &target.to_string())
            .replace(
                "- alerts.yml",
                &format!("- {}", path(&deploy("prometheus/alerts.yml"))),
            );
        assert!(config_text.contains(&target.to_string()), "{config_text}");
        std::fs::write(&config, config_text).expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path(&config)))
            .arg(format!(
                "--storage.tsdb.path={}",
                path(&dir.path().join("data"))
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus: install it (`apt-get install prometheus`, as .ci/run does)");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// `GET /api/v1/PATH?query=QUERY`: the answer's JSON, or what went wrong.
    async fn api(&self, path: &str, query: Option<&str>) -> Result<Value, String> {
        let mut url = format!("http://{}/api/v1/{path}", self.addr);
        if let Some(query) = query {
            url.push_str("?query=");
            url.push_str(&percent_encode(query));
        }
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let response = client.get(uri).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(parse_json(&body))
    }

    /// The series an instant query returns.
    async fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let answer = self.api("query", Some(query)).await?;
        answer["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{answer}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_metric_the_dashboard_and_alerts_use_and_runs_their_queries() {
    // The sample, as the README's first command serves it.
    let server = Setup::sample().start();
    // Some traffic, so that counters have moved.
    let request = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openrtb-corpus/iab26__spec-6.2.1-simple-banner.json"
    ))
    .expect("fixture");
    let (status, _, _) = server.post("/openrtb2/bid", request).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sample campaigns bid on the README's request"
    );

    // Every metric the alerts and the dashboard name is one the bidder exposes.
    let (status, _, body) = server.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let exposed = metric_names(&String::from_utf8_lossy(&body));
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("rules");
    let queries = dashboard_queries();
    let mut named = metric_names(&rules);
    for (_, expr) in &queries {
        named.extend(metric_names(expr));
    }
    let missing: Vec<_> = named.difference(&exposed).collect();
    assert!(missing.is_empty(), "named but not exposed: {missing:?}");
    assert!(named.len() >= 15, "{named:?}");

    // A real Prometheus scrapes the admin port with the shipped configuration and rules.
    let prometheus = Prometheus::start(server.admin);
    server
        .eventually("Prometheus to scrape precis", async || {
            let up = prometheus.query("up{job=\"precis\"} == 1").await?;
            let live = prometheus.query("precis_campaigns_live").await?;
            match (up.len(), live.first()) {
                (1, Some(live)) => Ok(live["value"][1].clone()),
                _ => Err(format!("up: {up:?}, live: {live:?}")),
            }
        })
        .await;
    for name in &named {
        let series = prometheus
            .query(&format!("{{__name__=~\"{name}(_bucket)?\"}}"))
            .await
            .expect("query");
        assert!(!series.is_empty(), "Prometheus has no {name}");
    }
    // Every dashboard query is PromQL Prometheus runs.
    for (title, expr) in &queries {
        let answer = prometheus.api("query", Some(expr)).await;
        assert!(answer.is_ok(), "panel {title:?}: {expr}: {answer:?}");
    }
    // Every alert rule loaded and evaluates without error, and none fires on a healthy bidder.
    let rules = server
        .eventually("the alert rules to be evaluated", async || {
            let answer = prometheus.api("rules", None).await?;
            let rules: Vec<Value> = answer["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = rules.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
            if rules.len() == 11 && evaluated {
                Ok(rules)
            } else {
                Err(format!("{answer}"))
            }
        })
        .await;
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_eq!(rule["state"], "inactive", "{rule}");
    }
}
