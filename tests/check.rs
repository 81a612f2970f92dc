//! `precis check`: exit 0 and a one-line `ok:` summary for good files; exit 1 and one
//! `path:line:col: message` line per problem, each pointing at the right file and line, for bad ones.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Campaign, check};

fn good() -> Campaign {
    Campaign::cpm(2.0).banner(300, 250)
}

/// A temporary directory holding these files.
fn dir_with(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
        + 1
}

/// One `path:line:col: message` diagnostic.
#[derive(Debug)]
struct Diagnostic {
    path: PathBuf,
    line: usize,
    col: usize,
    message: String,
}

fn diagnostics(stdout: &str) -> Vec<Diagnostic> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ':');
            let (path, line, col, message) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some(Diagnostic {
                path: PathBuf::from(path),
                line: line.parse().ok()?,
                col: col.parse().ok()?,
                message: message.strip_prefix(' ')?.to_owned(),
            })
        })
        .collect()
}

/// Runs `precis check PATHS...` in `dir` with no config, asserts it fails (exit 1), and returns
/// its stdout and the diagnostics in it.
fn check_failing(dir: &Path, paths: &[&Path]) -> (String, Vec<Diagnostic>) {
    let output = check(dir, None, paths);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let found = diagnostics(&out);
    (out, found)
}

#[test]
fn good_files_pass_with_a_one_line_summary() {
    let dir = dir_with(&[
        ("active.toml", good().toml()),
        ("paused.toml", good().top(r#"status = "paused""#).toml()),
        ("README.md", "not a campaign".to_owned()),
        (".hidden.toml", "not even TOML [".to_owned()),
    ]);
    let output = check(dir.path(), None, &[dir.path()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim_end(), "ok: 2 campaign file(s), 1 active, 1 paused");

    // A file named directly is checked too; with no path, `campaigns` in the working directory.
    let output = check(dir.path(), None, &[&dir.path().join("active.toml")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("ok: 1 campaign file(s)"));
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("campaigns")).unwrap();
    std::fs::write(cwd.path().join("campaigns/one.toml"), good().toml()).unwrap();
    let output = check(cwd.path(), None, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("ok: 1 campaign file(s), 1 active"));
}

/// A broken file: its name, its text, the text of the line the error must point at (or the
/// first line of the block it must point into), and a piece of the message.
struct Broken {
    name: &'static str,
    text: String,
    at: &'static str,
    /// The error may point anywhere from `at` down to this line's text (a table's span).
    through: Option<&'static str>,
    message: &'static str,
}

fn broken_files() -> Vec<Broken> {
    vec![
        Broken {
            name: "unknown-key.toml",
            text: Campaign::priced("model = \"cpm\"\ncpm = 2.0\nbudget = 100.0")
                .banner(300, 250)
                .toml(),
            at: "budget",
            through: None,
            message: "unknown key `budget` in [pricing]",
        },
        Broken {
            name: "wrong-type.toml",
            text: Campaign::priced("model = \"cpm\"\ncpm = \"2.0\"")
                .banner(300, 250)
                .toml(),
            at: "cpm = \"2.0\"",
            through: None,
            message: "`cpm` must be a number, like 2.5, not the text \"2.0\": remove the quotes",
        },
        Broken {
            name: "time-zone.toml",
            text: good().top(r#"timezone = "Mars/Olympus""#).toml(),
            at: "Mars/Olympus",
            through: None,
            message: "unknown time zone `Mars/Olympus`",
        },
        Broken {
            name: "dates.toml",
            text: good()
                .top("start = 2026-03-01")
                .top("end = 2026-02-01")
                .toml(),
            at: "end = ",
            through: None,
            message: "`end` is before `start`",
        },
        Broken {
            name: "hours.toml",
            text: good().target("hours = [[9, 12], [20, 25]]").toml(),
            at: "hours = ",
            through: None,
            message: "hours [20, 25] must be [from, to)",
        },
        Broken {
            name: "banner-size.toml",
            text: Campaign::cpm(2.0)
                .creative(
                    "id = \"sizeless\"\nformat = \"banner\"\nadm = \"<img>\"\nlanding = \"https://a.example/\"",
                )
                .toml(),
            at: "[[creative]]",
            through: Some("landing = "),
            message: "banner creative `sizeless` needs a size",
        },
        Broken {
            name: "empty-adm.toml",
            text: Campaign::cpm(2.0)
                .creative(
                    "id = \"blank\"\nformat = \"banner\"\nw = 300\nh = 250\nadm = \"  \"\nlanding = \"https://a.example/\"",
                )
                .toml(),
            at: "adm = ",
            through: None,
            message: "creative `blank` has an empty `adm`",
        },
        Broken {
            name: "cpc-without-ctr.toml",
            text: Campaign::priced("model = \"cpc\"\ncpc = 0.5\nmax_cpm = 5.0")
                .banner(300, 250)
                .toml(),
            at: "[pricing]",
            through: Some("max_cpm = "),
            message: "model \"cpc\" needs `ctr`",
        },
        Broken {
            name: "budget.toml",
            text: format!("{}\n[budget]\ndaily = -500.0\n", good().toml()),
            at: "daily = ",
            through: None,
            message: "`daily` must be a positive number, not -500",
        },
    ]
}

#[test]
fn each_problem_is_reported_at_its_file_and_line() {
    let broken = broken_files();
    let mut files: Vec<(&str, String)> = broken.iter().map(|b| (b.name, b.text.clone())).collect();
    files.push(("fine.toml", good().toml()));
    let dir = dir_with(&files);

    let (out, found) = check_failing(dir.path(), &[dir.path()]);
    for b in &broken {
        let path = dir.path().join(b.name);
        let first = line_of(&b.text, b.at);
        let last = b.through.map_or(first, |t| line_of(&b.text, t));
        let hit = found
            .iter()
            .find(|d| d.path == path && d.message.contains(b.message));
        let Some(d) = hit else {
            panic!("no `{}` error for {}:\n{out}", b.message, path.display());
        };
        assert!(
            (first..=last).contains(&d.line) && d.col >= 1,
            "{}: error at line {} col {}, expected line {first}..={last}\n{}\n{out}",
            b.name,
            d.line,
            d.col,
            b.text
        );
    }
    assert!(
        !found.iter().any(|d| d.path.ends_with("fine.toml")),
        "the good file is not reported:\n{out}"
    );
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(&format!(
            "in {} of {} file(s)",
            broken.len(),
            broken.len() + 1
        )),
        "{out}"
    );
    // Every other line is a diagnostic.
    assert_eq!(found.len(), out.lines().count() - 1, "{out}");
}

#[test]
fn each_broken_file_fails_on_its_own() {
    for b in broken_files() {
        let dir = dir_with(&[(b.name, b.text.clone())]);
        let path = dir.path().join(b.name);
        let output = check(dir.path(), None, &[&path]);
        let out = stdout(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {out}", b.name);
        assert!(
            out.starts_with(&format!("{}:", path.display())),
            "{}: {out}",
            b.name
        );
    }
}

#[test]
fn a_campaign_id_used_twice_is_reported_at_both_files() {
    let shoes = good().top(r#"id = "shoes""#).toml();
    let dir = dir_with(&[("a.toml", shoes.clone()), ("b.toml", shoes)]);
    let (out, found) = check_failing(dir.path(), &[dir.path()]);
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    let reported: Vec<_> = found
        .iter()
        .map(|d| (d.path.clone(), d.line, d.col, d.message.clone()))
        .collect();
    let says = |other: &Path| {
        format!(
            "campaign id `shoes` is also used by {}: both files are refused until one of them changes its `id`",
            other.display()
        )
    };
    assert_eq!(
        reported,
        [(a.clone(), 1, 1, says(&b)), (b.clone(), 1, 1, says(&a))],
        "{out}"
    );
}

#[test]
fn size_limits_come_from_the_config_file_and_links_out_of_the_directory_are_refused() {
    let padded = good().top(&format!("# {}", "x".repeat(3000))).toml();
    let markup = format!("<img src=\"https://cdn.example/{}.png\">", "a".repeat(300));
    let heavy = Campaign::cpm(2.0)
        .creative(&format!(
            "id = \"heavy\"\nformat = \"banner\"\nw = 300\nh = 250\nadm = '{markup}'\n\
             landing = \"https://advertiser.example/\""
        ))
        .toml();
    let root = dir_with(&[("elsewhere.toml", good().toml())]);
    let campaigns = root.path().join("campaigns");
    std::fs::create_dir(&campaigns).expect("campaign dir");
    std::fs::write(campaigns.join("padded.toml"), &padded).expect("write");
    std::fs::write(campaigns.join("heavy.toml"), &heavy).expect("write");
    let link = campaigns.join("linked.toml");
    std::os::unix::fs::symlink("../elsewhere.toml", &link).expect("link");

    // Within the default limits, only the link is refused.
    let (out, found) = check_failing(root.path(), &[&campaigns]);
    let target = std::fs::canonicalize(root.path().join("elsewhere.toml")).expect("canonical");
    let outside = format!(
        "a link to {}, outside the campaign directory: links are followed only within it (copy the file in instead)",
        target.display()
    );
    let reported: Vec<_> = found
        .iter()
        .map(|d| (d.path.clone(), d.line, d.col, d.message.clone()))
        .collect();
    assert_eq!(reported, [(link.clone(), 1, 1, outside.clone())], "{out}");

    let config = root.path().join("precis.toml");
    std::fs::write(
        &config,
        "[reload]\nmax_file_bytes = 2048\nmax_adm_bytes = 256\n",
    )
    .expect("write config");
    let output = check(root.path(), Some(&config), &[&campaigns]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let reported: Vec<_> = diagnostics(&out)
        .into_iter()
        .map(|d| (d.path, d.line, d.col, d.message))
        .collect();
    assert_eq!(
        reported,
        [
            (
                campaigns.join("heavy.toml"),
                line_of(&heavy, "adm = "),
                7,
                format!(
                    "creative `heavy`: `adm` is {} bytes, over the limit of 256 ([reload] max_adm_bytes): every bid carries it, so host images and video elsewhere and link to them",
                    markup.len()
                )
            ),
            (link, 1, 1, outside),
            (
                campaigns.join("padded.toml"),
                1,
                1,
                format!(
                    "the file is {} bytes or more, over the limit of 2048 for a campaign file ([reload] max_file_bytes): it was not read",
                    padded.len()
                )
            ),
        ],
        "{out}"
    );
}

#[test]
fn all_problems_of_one_file_are_reported_at_once() {
    let text = good()
        .top(r#"timezone = "Nowhere/Special""#)
        .target("hours = [[5, 3]]")
        .target("age = [40, 20]")
        .toml();
    let dir = dir_with(&[("many.toml", text.clone())]);
    let (out, found) = check_failing(dir.path(), &[dir.path()]);
    let lines: Vec<usize> = found.iter().map(|d| d.line).collect();
    for needle in ["Nowhere/Special", "hours = ", "age = "] {
        assert!(lines.contains(&line_of(&text, needle)), "{needle}: {out}");
    }
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("3 error(s) in 1 of 1 file(s)"),
        "{out}"
    );
}

#[test]
fn currencies_come_from_the_config_file() {
    let euro = Campaign::priced("model = \"cpm\"\ncpm = 2.0\ncurrency = \"EUR\"")
        .banner(300, 250)
        .toml();
    let dir = dir_with(&[("euro.toml", euro.clone())]);
    let path = dir.path().join("euro.toml");

    let (out, found) = check_failing(dir.path(), &[&path]);
    assert!(
        found
            .iter()
            .any(|d| d.message.contains("no exchange rate for `EUR`")
                && d.line == line_of(&euro, "currency = ")),
        "{out}"
    );

    let config = dir.path().join("rates.toml");
    std::fs::write(&config, "[currencies]\nEUR = 0.9\n").unwrap();
    let output = check(dir.path(), Some(&config), &[&path]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_missing_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing: &Path = &dir.path().join("nope");
    let output = check(dir.path(), None, &[missing]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("precis:"), "{stderr}");
}

#[test]
fn a_reader_that_stops_reading_ends_the_output_without_a_panic() {
    // `precis check | head -1` on a directory with thousands of problems: the pipe closes after the
    // first lines, and precis stops writing there, quietly.
    let files: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("c{i:03}.toml"),
                format!("{}\nstray_key = 1\n", good().toml()),
            )
        })
        .collect();
    let named: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let dir = dir_with(&named);
    let mut child = std::process::Command::new(common::PRECIS)
        .arg("check")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("precis runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("precis ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}
