//! precis-load fails loudly instead of reporting a run that measured nothing: exit status 1 when
//! no request got an answer, and when `--out` cannot be written, before the run rather than after.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

const PRECIS_LOAD: &str = env!("CARGO_BIN_EXE_precis-load");

fn precis_load(args: &[&str]) -> Output {
    Command::new(PRECIS_LOAD)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run precis-load")
}

/// A loopback URL nothing listens on: a port bound, then let go.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/openrtb2/bid")
}

#[test]
fn a_run_in_which_nothing_was_answered_fails() {
    let out = tempfile::tempdir().expect("temp dir");
    let url = closed_url();
    let output = precis_load(&[
        "--url",
        &url,
        "--rate",
        "50",
        "--warmup",
        "0s",
        "--duration",
        "1s",
        "--timeout",
        "200ms",
        "--synthetic",
        "--out",
        out.path().to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no request got an answer"), "{stderr}");
    // What was measured is still written, for whoever investigates.
    assert!(out.path().join("summary.json").exists());
}

#[test]
fn an_out_directory_that_cannot_be_written_fails_before_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    let url = closed_url();
    let output = precis_load(&[
        "--url",
        &url,
        "--duration",
        "1s",
        "--synthetic",
        "--out",
        file.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--out"), "{stderr}");
    // Nothing ran: no summary was printed.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "", "{stderr}");
}
