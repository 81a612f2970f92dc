//! Headless Chromium, for pages precis serves or writes: what the browser made of a page after
//! its script ran, and every message it logged (console messages, blocked fetches, errors).

use std::process::Command;

/// The DOM of `url` after `virtual_ms` of virtual time (timers fire at once, fetches are
/// awaited), and the console lines the browser logged (`CONSOLE` lines of its log: any message
/// of the page's, and every fetch its Content-Security-Policy blocked).
pub fn browse(url: &str, virtual_ms: u32) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().expect("temp dir");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium: install it (`apt-get install chromium`, as .ci/run does)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium: {}\n{stderr}",
        output.status
    );
    let console = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(str::to_owned)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}
