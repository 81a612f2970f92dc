//! The end-to-end harness: runs the real `precis` binary on a loopback port with campaign files
//! written into a temporary directory, and talks HTTP to it.
//!
//! Each test builds its own [`Server`] (its own process, port and directory), so tests never share
//! state. Nothing here asserts on timing: waiting for a change is polling until a deadline
//! ([`Server::eventually`]), and only reaching the deadline fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tempfile::TempDir;

pub mod browser;
pub mod fifo;
pub mod hostile;
pub mod wire;

/// The binary under test.
pub const PRECIS: &str = env!("CARGO_BIN_EXE_precis");

/// How long anything may take before a test gives up: generous, because the machine is shared.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often [`Server::eventually`] looks again.
const POLL: Duration = Duration::from_millis(50);

/// A running `precis serve` on `127.0.0.1:<free port>`, killed when dropped.
pub struct Server {
    /// The temporary root: `campaigns/` and, when given, `precis.toml`. Also the process' cwd.
    root: TempDir,
    child: Child,
    exit: Option<ExitStatus>,
    /// The bid port.
    pub addr: SocketAddr,
    /// The admin port (`--admin-listen 127.0.0.1:0`).
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
    client: Client<HttpConnector, Full<Bytes>>,
    launch: Launch,
}

/// What to start a [`Server`] with.
#[derive(Default)]
pub struct Setup {
    campaigns: Vec<(String, String)>,
    /// Files written before start, by path relative to the server's directory.
    files: Vec<(String, String)>,
    config: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    fifos: Vec<String>,
}

/// What [`Setup`] waits for the process to log before handing over the [`Server`].
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// Both ports.
    Listening,
    /// Both ports, and `ready: answering bids`.
    Ready,
}

/// How `precis serve` is run in a server's directory: kept so that it can be run again there.
struct Launch {
    config: Option<PathBuf>,
    args: Vec<String>,
    /// Environment variables set for the process, on top of the test's (minus the secrets).
    env: Vec<(String, String)>,
}

/// The variables that hold the events secrets: never inherited from the test's environment.
const SECRET_VARS: [&str; 2] = ["PRECIS_SECRET", "PRECIS_SECRET_PREVIOUS"];

impl Setup {
    /// The repository's sample as `cargo run --release -- serve` serves it on a fresh clone: its
    /// `precis.toml` (the harness' flags still pick the ports and directories), `campaigns/` and
    /// `audiences/`.
    pub fn sample() -> Setup {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = std::fs::read_to_string(root.join("precis.toml")).expect("precis.toml");
        let files = |dir: &str| {
            let mut files: Vec<(String, String)> = std::fs::read_dir(root.join(dir))
                .unwrap_or_else(|e| panic!("{dir}/: {e}"))
                .map(|entry| {
                    let path = entry.expect("a directory entry").path();
                    let name = path.file_name().expect("a name").to_string_lossy().into();
                    (name, std::fs::read_to_string(&path).expect("a sample file"))
                })
                .collect();
            files.sort();
            files
        };
        let setup = files("campaigns")
            .into_iter()
            .fold(Setup::default().config(&config), |setup, (name, text)| {
                setup.campaign(&name, text)
            });
        files("audiences")
            .into_iter()
            .fold(setup, |setup, (name, text)| setup.audience(&name, &text))
    }

    /// A campaign file `name` (e.g. `shoes.toml`) in the campaign directory.
    pub fn campaign(mut self, name: &str, text: impl Into<String>) -> Setup {
        self.campaigns.push((name.to_owned(), text.into()));
        self
    }

    /// Campaign files `(name, text)`, as [`Setup::campaign`] one by one.
    pub fn campaigns<S: Into<String>>(
        self,
        campaigns: impl IntoIterator<Item = (&'static str, S)>,
    ) -> Setup {
        campaigns
            .into_iter()
            .fold(self, |setup, (name, text)| setup.campaign(name, text))
    }

    /// A file written into the server's directory before it starts, e.g. `profiles/a.jsonl`.
    pub fn file(mut self, path: &str, text: &str) -> Setup {
        self.files.push((path.to_owned(), text.to_owned()));
        self
    }

    /// An audience package file `name` (e.g. `fans.txt`) in `audiences/`, next to the campaigns.
    pub fn audience(self, name: &str, text: &str) -> Setup {
        self.file(&format!("audiences/{name}"), text)
    }

    /// A `precis.toml` passed with `--config`.
    pub fn config(mut self, toml: &str) -> Setup {
        self.config = Some(toml.to_owned());
        self
    }

    /// An extra command-line argument for `precis serve`.
    pub fn arg(mut self, arg: &str) -> Setup {
        self.args.push(arg.to_owned());
        self
    }

    /// An environment variable for `precis serve`, e.g. `PRECIS_SECRET`.
    pub fn env(mut self, name: &str, value: &str) -> Setup {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A named pipe made before start, by path relative to the server's directory: whoever opens
    /// it waits for the other end (see [`fifo`]).
    pub fn fifo(mut self, path: &str) -> Setup {
        self.fifos.push(path.to_owned());
        self
    }

    /// Writes the files, spawns the binary and waits for it to log its ports and that it is ready.
    pub fn start(self) -> Server {
        self.start_until(Until::Ready)
    }

    /// Writes the files, spawns the binary and waits only for it to log its ports: campaigns may
    /// still be loading (see [`Server::wait_ready`]).
    pub fn start_loading(self) -> Server {
        self.start_until(Until::Listening)
    }

    fn start_until(self, until: Until) -> Server {
        let root = tempfile::tempdir().expect("temp dir");
        let campaigns = root.path().join("campaigns");
        std::fs::create_dir(&campaigns).expect("campaign dir");
        for (name, text) in &self.campaigns {
            std::fs::write(campaigns.join(name), text).expect("write campaign");
        }
        for (path, text) in &self.files {
            let path = root.path().join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create file's directory");
            }
            std::fs::write(path, text).expect("write file");
        }
        for path in &self.fifos {
            fifo::make(&root.path().join(path));
        }
        backdate_campaigns(&campaigns);
        let config = self.config.map(|config| {
            let path = root.path().join("precis.toml");
            std::fs::write(&path, config).expect("write config");
            path
        });
        let launch = Launch {
            config,
            args: self.args,
            env: self.env,
        };
        let log = Arc::new(Mutex::new(String::new()));
        let (child, addr, admin) = launch.spawn(root.path(), &log, until);
        Server {
            root,
            child,
            exit: None,
            addr,
            admin,
            log,
            client: Client::builder(TokioExecutor::new()).build_http(),
            launch,
        }
    }
}

impl Launch {
    /// Spawns `precis serve` in `root` and waits for it to log its ports (and, `until` it is
    /// ready, that it is): the bid and admin addresses. Its stderr is appended to `log`, for
    /// failure messages, and drained so the process never blocks on a full pipe.
    fn spawn(
        &self,
        root: &Path,
        log: &Arc<Mutex<String>>,
        until: Until,
    ) -> (Child, SocketAddr, SocketAddr) {
        let mut command = Command::new(PRECIS);
        command
            .current_dir(root)
            .env("RUST_LOG", "info")
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--campaigns")
            .arg(root.join("campaigns"));
        for name in SECRET_VARS {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn precis");

        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            let (mut bid, mut admin) = (None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The port is the digits after the address, in text and JSON logs alike.
                let port = |line: &str| {
                    let (_, rest) = line.split_once("listening on 127.0.0.1:")?;
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u16>().ok()
                };
                if line.contains("admin listening on") {
                    admin = admin.or(port(&line));
                } else if line.contains("listening on") {
                    bid = bid.or(port(&line));
                }
                let arrived = until == Until::Listening || line.contains("ready: answering bids");
                if arrived
                    && let (Some(bid), Some(admin)) = (bid, admin)
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send((bid, admin));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (bid, admin) = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(ports) => ports,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "precis did not log `listening on 127.0.0.1:PORT`, `admin listening on 127.0.0.1:PORT` and `ready` (exit: {status:?}); stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        (child, loopback(bid), loopback(admin))
    }
}

impl Server {
    pub fn setup() -> Setup {
        Setup::default()
    }

    /// A server with these campaign files and no configuration file.
    pub fn start<S: Into<String>>(
        campaigns: impl IntoIterator<Item = (&'static str, S)>,
    ) -> Server {
        Setup::default().campaigns(campaigns).start()
    }

    /// A server with these campaign files and this `precis.toml`.
    pub fn start_configured<S: Into<String>>(
        config: &str,
        campaigns: impl IntoIterator<Item = (&'static str, S)>,
    ) -> Server {
        Setup::default().config(config).campaigns(campaigns).start()
    }

    /// The server's directory (its cwd): relative paths of its configuration start here.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn campaign_dir(&self) -> PathBuf {
        self.root.path().join("campaigns")
    }

    pub fn campaign_path(&self, name: &str) -> PathBuf {
        self.campaign_dir().join(name)
    }

    /// Replaces (or creates) a campaign file in one step: written beside it under a hidden name,
    /// which the bidder ignores, then renamed over it, so no reload ever sees half a file.
    pub fn write_campaign(&self, name: &str, text: &str) {
        replace(&self.campaign_dir(), name, text);
    }

    /// The audience package directory: `audiences` next to the campaigns.
    pub fn audience_dir(&self) -> PathBuf {
        self.root.path().join("audiences")
    }

    /// Replaces (or creates) an audience package file in one step, as [`Server::write_campaign`].
    pub fn write_audience(&self, name: &str, text: &str) {
        replace(&self.audience_dir(), name, text);
    }

    pub fn remove_campaign(&self, name: &str) {
        std::fs::remove_file(self.campaign_path(name)).expect("remove campaign");
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process' resident memory (`VmRSS` of `/proc/PID/status`), in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/PID/status:\n{status}"));
        kb * 1024
    }

    /// Sends a signal (`"HUP"`, `"TERM"`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.exited().await
    }

    /// Waits for the process to exit (after a signal sent with [`Server::signal`]).
    pub async fn exited(&mut self) -> ExitStatus {
        // Graceful shutdown may wait for open connections: allow it more than its drain time.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "precis did not exit after SIGTERM; stderr:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exited_yet(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait")?;
        self.exit = Some(status);
        Some(status)
    }

    /// Waits until the process has logged a line containing `text`; fails after [`DEADLINE`].
    pub async fn until_logged(&self, text: &str) {
        self.eventually(&format!("`{text}` in the log"), async || {
            if self.log().contains(text) {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        })
        .await
    }

    /// Stops the server with SIGTERM (it must exit 0), then runs it again in the same directory,
    /// as it was started but with the environment variables `env` set (an empty value unsets
    /// one for precis). The port changes; the campaign and log directories stay.
    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        if self.exit.is_none() {
            self.stop().await;
        }
        for (name, value) in env {
            self.launch.env.retain(|(n, _)| n != name);
            self.launch
                .env
                .push(((*name).to_owned(), (*value).to_owned()));
        }
        let (child, addr, admin) = self.launch.spawn(self.root.path(), &self.log, Until::Ready);
        self.child = child;
        self.addr = addr;
        self.admin = admin;
        self.exit = None;
    }

    /// The server's event log directory (the default `logs`, relative to its directory).
    pub fn logs_dir(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// Every line of every event log file, parsed, in file-name order.
    pub fn logged_events(&self) -> Vec<Value> {
        self.log_files()
            .iter()
            .flat_map(|path| {
                let text = std::fs::read_to_string(path).expect("read a log file");
                text.lines()
                    .map(|line| parse_json(line.as_bytes()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `precis report --logs <logs> --format json --by BY`, run in the server's directory: its
    /// rows. The report must succeed and skip nothing.
    pub fn report(&self, by: &str) -> Vec<Value> {
        let output = Command::new(PRECIS)
            .current_dir(self.root.path())
            .arg("report")
            .arg("--logs")
            .arg(self.logs_dir())
            .args(["--format", "json", "--by", by])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run precis report");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "precis report failed: {stderr}");
        assert!(stderr.is_empty(), "precis report complained: {stderr}");
        match parse_json(&output.stdout) {
            Value::Array(rows) => rows,
            other => panic!("the JSON report is not a list: {other}"),
        }
    }

    /// Sends SIGTERM and asserts a clean exit (status 0).
    pub async fn stop(&mut self) {
        let status = self.terminate().await;
        assert!(status.success(), "exit {status}; stderr:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Any request with a JSON body; the answer's status, headers and whole body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        self.send(method, path, "application/json", body).await
    }

    /// Any request with a body of `content_type`; the answer's status, headers and whole body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let request = Request::builder()
            .method(method.clone())
            .uri(self.url(path))
            .header("content-type", content_type);
        self.exchange(request, method, path, body).await
    }

    /// A request to the admin port, with `Authorization: Bearer TOKEN` when `token` is given.
    pub async fn admin_request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        self.admin_send(method, path, token, Bytes::new()).await
    }

    /// A request with a JSON body to the admin port (e.g. the profile API), optionally with a token.
    pub async fn admin_send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.admin))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.exchange(request, method, path, body).await
    }

    /// `POST path` on the admin port, without a token.
    pub async fn admin_post(&self, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.admin_request(Method::POST, path, None).await
    }

    /// `GET path` on the admin port, without a token.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.admin_request(Method::GET, path, None).await
    }

    /// A request to the bid port that may go unanswered (the server is stopping): the status and
    /// body, or `None` when the connection was refused or closed without an answer.
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Option<(StatusCode, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(self.url(path))
            .body(Full::new(body.into()))
            .expect("request");
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let status = response.status();
            Some((
                status,
                response.into_body().collect().await.ok()?.to_bytes(),
            ))
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .ok()
            .flatten()
    }

    /// Sends the bid request `request` when the server may be gone: `None` when it did not
    /// answer, else its first bid, if it bid.
    pub async fn try_bid(&self, request: &str) -> Option<Option<Value>> {
        let (status, body) = self
            .try_request(Method::POST, "/openrtb2/bid", request.to_owned())
            .await?;
        Some((status == StatusCode::OK).then(|| bids(&parse_json(&body))[0].clone()))
    }

    /// Sends `request` with `body`; `method` and `path` name it in failure messages.
    async fn exchange(
        &self,
        request: hyper::http::request::Builder,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let request = request.body(Full::new(body.into())).expect("request");
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts.status, parts.headers, body))
        };
        match tokio::time::timeout(Duration::from_secs(30), exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => panic!("{method} {path}: {e:?}; precis stderr:\n{}", self.log()),
            Err(_) => panic!(
                "{method} {path}: no answer in 30 s; stderr:\n{}",
                self.log()
            ),
        }
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> (StatusCode, HeaderMap, Bytes) {
        self.request(Method::POST, path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.request(Method::GET, path, Bytes::new()).await
    }

    /// Posts a bid request: `Some(response)` on 200, `None` on 204; anything else fails the test.
    pub async fn bid(&self, request: &Value) -> Option<Value> {
        let (status, headers, body) = self.post("/openrtb2/bid", request.to_string()).await;
        match status {
            StatusCode::OK => {
                assert_eq!(
                    headers.get("content-type").map(|v| v.as_bytes()),
                    Some(&b"application/json"[..]),
                    "a bid is JSON"
                );
                Some(parse_json(&body))
            }
            StatusCode::NO_CONTENT => {
                assert!(body.is_empty(), "204 with a body: {body:?}");
                None
            }
            other => panic!(
                "bid request answered {other}: {}\nrequest: {request}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// The campaign id (`cid`) of the single bid the request gets, or `None` for no bid.
    pub async fn winner(&self, request: &Value) -> Option<String> {
        let response = self.bid(request).await?;
        let bids = bids(&response);
        assert_eq!(bids.len(), 1, "one imp, one bid: {response}");
        Some(str_of(&bids[0], "cid").to_owned())
    }

    /// `(cid, price)` of the single bid the request gets, or `None` for no bid.
    pub async fn winner_and_price(&self, request: &Value) -> Option<(String, f64)> {
        let response = self.bid(request).await?;
        let bids = bids(&response);
        assert_eq!(bids.len(), 1, "one imp, one bid: {response}");
        Some((str_of(&bids[0], "cid").to_owned(), price_of(&bids[0])))
    }

    /// `GET /status` (on the admin port) as JSON.
    pub async fn status(&self) -> Value {
        let (status, _, body) = self.admin_get("/status").await;
        assert_eq!(status, StatusCode::OK, "/status");
        parse_json(&body)
    }

    /// `GET /metrics`, parsed: each series (name with labels, as written) to its value.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        // The admin port's: the operator's view, with each campaign's series.
        let (status, _, body) = self.admin_get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "/metrics");
        parse_prometheus(&String::from_utf8_lossy(&body))
    }

    /// `precis_bid_requests_total{outcome="..."}`.
    pub async fn outcome_count(&self, outcome: &str) -> f64 {
        self.metric(&format!(
            "precis_bid_requests_total{{outcome=\"{outcome}\"}}"
        ))
        .await
    }

    /// One series of `/metrics`, e.g. `precis_events_total{kind="win"}`; fails when it is missing.
    pub async fn metric(&self, series: &str) -> f64 {
        let metrics = self.metrics().await;
        *metrics
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in /metrics: {metrics:?}"))
    }

    /// Polls `probe` every 50 ms until it gives a value; fails after [`DEADLINE`], saying `what`
    /// it waited for and the last thing it saw.
    pub async fn eventually<T>(
        &self,
        what: &str,
        probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        self.eventually_every(POLL, what, probe).await
    }

    /// [`Server::eventually`], looking again `every` so long.
    pub async fn eventually_every<T>(
        &self,
        every: Duration,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match probe().await {
                Ok(value) => return value,
                Err(seen) if Instant::now() >= deadline => panic!(
                    "gave up after {DEADLINE:?} waiting for {what}; last saw: {seen}\nprecis stderr:\n{}",
                    self.log()
                ),
                Err(_) => tokio::time::sleep(every).await,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `dir/name` beside it under a hidden name, which the bidder ignores, then renames it over
/// the file, so no reload ever sees half of it.
fn replace(dir: &Path, name: &str, text: &str) {
    let staging = dir.join(format!(".{name}.partial"));
    std::fs::write(&staging, text).expect("write file");
    std::fs::rename(&staging, dir.join(name)).expect("rename file");
}

/// Dates the campaign directory and its files a minute back, as files a deployment left before
/// start: the bidder loads a file only once it has stood still for its quiet period, and these are
/// complete, so its first load need not wait. Pipes are left alone (opening one would wait for
/// the bidder).
fn backdate_campaigns(dir: &Path) {
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    let entries = std::fs::read_dir(dir).expect("list campaigns");
    let files = entries
        .map(|e| e.expect("campaign entry").path())
        .filter(|path| path.is_file() || path.is_dir());
    for path in files.chain([dir.to_owned()]) {
        let file = std::fs::File::open(&path).expect("open to date");
        file.set_modified(minute_ago).expect("date file");
    }
}

/// Parses Prometheus text exposition: `name{labels} value` lines, comments skipped.
pub fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a metric line: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in metric line: {line:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

pub fn parse_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The bids of a response's only seat.
pub fn bids(response: &Value) -> &[Value] {
    response["seatbid"][0]["bid"]
        .as_array()
        .unwrap_or_else(|| panic!("no seatbid[0].bid: {response}"))
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {value}"))
}

pub fn price_of(bid: &Value) -> f64 {
    bid["price"]
        .as_f64()
        .unwrap_or_else(|| panic!("no numeric price in {bid}"))
}

/// Prices are rounded to micro-units by the bidder; compare with room for that.
pub fn assert_price(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-5,
        "price {actual}, expected {expected}"
    );
}

/// A bid request with these imps, and id `req-1`.
pub fn request(imps: Vec<Value>) -> Value {
    json!({ "id": "req-1", "imp": imps })
}

pub fn banner_imp(id: &str, w: u32, h: u32) -> Value {
    json!({ "id": id, "banner": { "w": w, "h": h } })
}

pub fn video_imp(id: &str) -> Value {
    json!({
        "id": id,
        "video": {
            "mimes": ["video/mp4"], "protocols": [2, 3, 7],
            "minduration": 5, "maxduration": 30, "w": 640, "h": 360
        }
    })
}

pub fn native_imp(id: &str) -> Value {
    json!({ "id": id, "native": { "request": "{\"ver\":\"1.2\",\"assets\":[]}", "ver": "1.2" } })
}

/// A one-imp banner request.
pub fn banner_request(w: u32, h: u32) -> Value {
    request(vec![banner_imp("1", w, h)])
}

/// `base` with the top-level fields of `extra` added (or replaced).
pub fn with(mut base: Value, extra: Value) -> Value {
    let (Value::Object(base_map), Value::Object(extra)) = (&mut base, extra) else {
        panic!("with() merges JSON objects");
    };
    base_map.extend(extra);
    base
}

/// `request` with these fields set on its first imp.
pub fn with_imp(mut request: Value, extra: Value) -> Value {
    let imp = request["imp"][0].take();
    request["imp"][0] = with(imp, extra);
    request
}

/// A campaign file, built up key by key and rendered with [`Campaign::toml`].
#[derive(Clone)]
pub struct Campaign {
    top: Vec<String>,
    adomain: Vec<String>,
    pricing: Vec<String>,
    targeting: Vec<String>,
    exclude: Vec<String>,
    creatives: Vec<String>,
}

impl Campaign {
    /// A CPM campaign with no creative yet.
    pub fn cpm(cpm: f64) -> Campaign {
        Campaign::priced(&format!("model = \"cpm\"\ncpm = {cpm:?}"))
    }

    /// A campaign whose `[pricing]` table holds these lines.
    pub fn priced(pricing: &str) -> Campaign {
        Campaign {
            top: Vec::new(),
            adomain: vec!["advertiser.example".to_owned()],
            pricing: pricing.lines().map(str::to_owned).collect(),
            targeting: Vec::new(),
            exclude: Vec::new(),
            creatives: Vec::new(),
        }
    }

    /// A top-level line, e.g. `status = "paused"` or `id = "x"`.
    pub fn top(mut self, line: &str) -> Campaign {
        self.top.push(line.to_owned());
        self
    }

    pub fn adomain(mut self, domains: &[&str]) -> Campaign {
        self.adomain = domains.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    /// A line in `[targeting]`, e.g. `countries = ["US"]`.
    pub fn target(mut self, line: &str) -> Campaign {
        self.targeting.push(line.to_owned());
        self
    }

    /// A line in `[targeting.exclude]`.
    pub fn exclude(mut self, line: &str) -> Campaign {
        self.exclude.push(line.to_owned());
        self
    }

    /// A banner creative `b{w}x{h}`.
    pub fn banner(self, w: u32, h: u32) -> Campaign {
        self.banner_to(w, h, "https://advertiser.example/landing")
    }

    /// A banner creative `b{w}x{h}` whose click leads to `landing`.
    pub fn banner_to(self, w: u32, h: u32, landing: &str) -> Campaign {
        self.creative(&format!(
            "id = \"b{w}x{h}\"\nformat = \"banner\"\nw = {w}\nh = {h}\n\
             adm = '<a href=\"${{CLICK_URL}}\"><img src=\"https://cdn.advertiser.example/{w}x{h}.png\"></a>'\n\
             landing = \"{landing}\""
        ))
    }

    /// A video creative `video`: a 30 s MP4 in VAST 3.0, with no size (players scale).
    pub fn video(self) -> Campaign {
        self.creative(
            "id = \"video\"\nformat = \"video\"\nmime = \"video/mp4\"\nduration = 30\nvast = \"3.0\"\n\
             adm = '<VAST version=\"3.0\"><Ad id=\"1\"><InLine><AdSystem>precis</AdSystem></InLine></Ad></VAST>'\n\
             landing = \"https://advertiser.example/video\"",
        )
    }

    /// A native creative `native`.
    pub fn native(self) -> Campaign {
        self.creative(
            "id = \"native\"\nformat = \"native\"\n\
             adm = '{\"native\":{\"link\":{\"url\":\"${CLICK_URL}\"},\"assets\":[]}}'\n\
             landing = \"https://advertiser.example/native\"",
        )
    }

    /// A `[[creative]]` table with these lines.
    pub fn creative(mut self, lines: &str) -> Campaign {
        self.creatives.push(lines.to_owned());
        self
    }

    pub fn toml(&self) -> String {
        let quoted: Vec<String> = self.adomain.iter().map(|d| format!("\"{d}\"")).collect();
        let mut out = String::new();
        for line in &self.top {
            out += &format!("{line}\n");
        }
        out += &format!("adomain = [{}]\n\n[pricing]\n", quoted.join(", "));
        for line in &self.pricing {
            out += &format!("{line}\n");
        }
        if !self.targeting.is_empty() || !self.exclude.is_empty() {
            out += "\n[targeting]\n";
            for line in &self.targeting {
                out += &format!("{line}\n");
            }
        }
        if !self.exclude.is_empty() {
            out += "\n[targeting.exclude]\n";
            for line in &self.exclude {
                out += &format!("{line}\n");
            }
        }
        for creative in &self.creatives {
            out += &format!("\n[[creative]]\n{creative}\n");
        }
        out
    }
}

impl From<Campaign> for String {
    fn from(campaign: Campaign) -> String {
        campaign.toml()
    }
}

impl From<&Campaign> for String {
    fn from(campaign: &Campaign) -> String {
        campaign.toml()
    }
}

/// Runs `precis check [--config CONFIG] PATHS...` in `cwd`: its exit status, stdout and stderr.
pub fn check(cwd: &Path, config: Option<&Path>, paths: &[&Path]) -> Output {
    let mut command = Command::new(PRECIS);
    command.current_dir(cwd).arg("check");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(paths)
        .stdin(Stdio::null())
        .output()
        .expect("run precis check")
}

impl Server {
    /// [`Server::restart`] with the command-line flag `flag` (e.g. `--simulate-from`) given
    /// `value` this time: its previous value is replaced, or the flag added. A simulated clock
    /// resumes where it stood this way.
    pub async fn restart_with_flag(&mut self, flag: &str, value: &str) {
        let args = &mut self.launch.args;
        match args.iter().position(|a| a == flag) {
            Some(at) if at + 1 < args.len() => args[at + 1] = value.to_owned(),
            _ => {
                args.retain(|a| !a.starts_with(&format!("{flag}=")));
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        self.restart(&[]).await;
    }
}

/// A time written in RFC 3339.
pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

/// `t` as `/admin/clock` and `--simulate-from` take it (`Z`, not `+00:00`, which a query would
/// read as a space).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Moves the server's simulated clock to `t`.
pub async fn advance(server: &Server, t: DateTime<Utc>) {
    let (status, _, body) = server
        .admin_post(&format!("/admin/clock?now={}", rfc3339(t)))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "clock to {t}: {}",
        String::from_utf8_lossy(&body)
    );
    let now = parse_json(&body)["now"]
        .as_str()
        .map(|now| now.parse::<DateTime<Utc>>().expect("an RFC 3339 `now`"));
    assert_eq!(
        now,
        Some(t),
        "the clock answered {}",
        String::from_utf8_lossy(&body)
    );
}

/// The path and query of a URL precis made: what to ask whichever address the server has now.
pub fn local(url: &str) -> String {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("not a loopback URL: {url}"));
    let start = rest.find('/').unwrap_or_else(|| panic!("no path: {url}"));
    rest[start..].to_owned()
}

impl Server {
    /// Sets the file size limit of the running process (`RLIMIT_FSIZE`, as `ulimit -f` would): a
    /// write past `bytes` in any file fails (EFBIG), as on a full disk. `None` lifts it.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let soft = bytes.unwrap_or(rlimit::INFINITY);
        let pid = i32::try_from(self.pid()).expect("a pid");
        rlimit::prlimit(
            pid,
            rlimit::Resource::FSIZE,
            Some((soft, rlimit::INFINITY)),
            None,
        )
        .expect("prlimit RLIMIT_FSIZE");
    }

    /// `GET /readyz` on the bid port: the status and the body.
    pub async fn readyz(&self) -> (StatusCode, String) {
        let (status, _, body) = self.get("/readyz").await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The event log's files, in file-name order.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.logs_dir())
            .expect("read the log directory")
            .map(|entry| entry.expect("log directory entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
    }

    /// Every line of every event log file that is an event, parsed, in file-name order, and how
    /// many lines were not (a line a crash cut short).
    pub fn logged_events_after_a_crash(&self) -> (Vec<Value>, usize) {
        let (mut events, mut broken) = (Vec::new(), 0);
        for path in self.log_files() {
            let text = std::fs::read_to_string(&path).expect("read a log file");
            for line in text.lines() {
                match serde_json::from_str::<Value>(line) {
                    Ok(event) if event["event"].is_string() => events.push(event),
                    _ => broken += 1,
                }
            }
        }
        (events, broken)
    }
}

/// The link in a bid's markup (`href="..."`, `${CLICK_URL}` expanded), as it stands there.
pub fn markup_link(adm: &str) -> &str {
    adm.split_once("href=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .unwrap_or_else(|| panic!("no link in adm: {adm}"))
        .0
}

/// The path and query of a bid's event URL `key` (`nurl`, `burl`) with `price` in place of
/// `${AUCTION_PRICE}`: what the exchange sends.
pub fn notice_path(bid: &Value, key: &str, price: &str) -> String {
    local(&str_of(bid, key).replace("${AUCTION_PRICE}", price))
}

/// A bid's event URLs, made local: `(win, impression, click)`, the win and impression priced at
/// 0.5 CPM.
pub fn event_urls(bid: &Value) -> (String, String, String) {
    let price = |url: &str| local(&url.replace("${AUCTION_PRICE}", "0.5"));
    let click = local(markup_link(str_of(bid, "adm")));
    (
        price(str_of(bid, "nurl")),
        price(str_of(bid, "burl")),
        click,
    )
}
