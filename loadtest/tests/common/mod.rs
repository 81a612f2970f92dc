//! The end-to-end harness: builds the bidder's programs (`precis`, the `stall-server` example),
//! starts them on loopback ports, runs the real `precis-load` binary against them and reads its
//! `summary.json`. precis-load does not link the bidder: its programs are built with cargo.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The binary under test.
pub const PRECIS_LOAD: &str = env!("CARGO_BIN_EXE_precis-load");

/// The workspace root: the bidder's package, its sample campaigns and configuration.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadtest/ sits in the workspace")
        .to_owned()
}

/// A program of the bidder's package: its binary or one of its examples.
pub enum Program {
    Bin(&'static str),
    Example(&'static str),
}

/// Builds `program` in the profile these tests were built in (beside precis-load, in the same
/// target directory) and answers its path.
pub fn build(program: Program) -> PathBuf {
    let dir = Path::new(PRECIS_LOAD)
        .parent()
        .expect("the binaries' directory");
    let (kind, name, path) = match program {
        Program::Bin(name) => ("--bin", name, dir.join(name)),
        Program::Example(name) => ("--example", name, dir.join("examples").join(name)),
    };
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(workspace())
        .args(["build", "--quiet", "-p", "precis", kind, name]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p precis {kind} {name} failed: {status}"
    );
    path
}

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Spawns `command` and waits for it to log `listening on ADDR` on stderr.
    pub fn start(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = log.clone();
        // Drains stderr for as long as the process lives, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((_, rest)) = line.split_once("listening on ")
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{command:?} did not log `listening on ADDR`; stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("not an address after `listening on`: {addr}"));
        Server { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `precis-load ARGS --out OUT`; it must succeed. Returns its `summary.json`.
pub fn precis_load(args: &[&str], out: &Path) -> Value {
    let output = Command::new(PRECIS_LOAD)
        .args(args)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run precis-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "precis-load {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("latency ms") && stdout.contains("p99"),
        "the human summary is on stdout: {stdout}"
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("summary.json is not JSON ({e}): {text}"))
}

/// A number in a JSON document, by path (`["latency_ms", "p99"]`); fails when absent.
pub fn number(value: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(value, |v, key| &v[key])
        .as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {value:#}"))
}
