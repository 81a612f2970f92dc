//! `precis audience expand` end to end: on a generated population with a planted group, the
//! command writes exactly the library's expansion of half the group (the seed), best first, which
//! finds the other half far better than chance (the library's own tests pin how much better: the
//! figure in docs/reference.md).

#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::Command;

use common::PRECIS;
use precis::audience::lookalike::{expand, planted, planted_key};
use precis::request::user::UserId;

#[test]
fn the_expansion_of_a_seed_finds_the_rest_of_its_planted_group() {
    let dir = tempfile::tempdir().unwrap();
    let planted = planted(3, 20_000);
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let mut lines =
        std::io::BufWriter::new(std::fs::File::create(profiles.join("pop.jsonl")).unwrap());
    let mut keys = HashMap::new();
    for (n, (user, tags)) in planted.profiles.iter().enumerate() {
        let line = serde_json::json!({ "user": planted_key(n), "tags": tags });
        writeln!(lines, "{line}").unwrap();
        keys.insert(*user, planted_key(n));
    }
    lines.flush().unwrap();
    let seed: Vec<&str> = planted.seed.iter().map(|u| keys[u].as_str()).collect();
    let seed_file = dir.path().join("buyers.txt");
    std::fs::write(&seed_file, format!("# keys: raw\n{}\n", seed.join("\n"))).unwrap();
    let out = dir.path().join("buyers-lal.txt");
    let size = planted.held_out.len();

    let output = Command::new(PRECIS)
        .args(["audience", "expand", "--seed"])
        .arg(&seed_file)
        .arg("--profiles")
        .arg(&profiles)
        .args(["--size", &size.to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run precis audience expand");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# keys: uid\n"), "{text}");
    let found: Vec<UserId> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| UserId(u64::from_str_radix(l, 16).unwrap_or_else(|_| panic!("not a uid: {l}"))))
        .collect();
    assert_eq!(found.len(), size);
    let seed: HashSet<UserId> = planted.seed.iter().copied().collect();
    assert!(
        found.iter().all(|u| !seed.contains(u)),
        "the seed is not its own lookalike"
    );
    let library: Vec<UserId> = expand(&planted.profiles, |u| seed.contains(&u), size)
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    assert_eq!(
        found, library,
        "the command writes the library's expansion, best first"
    );
    let held_out: HashSet<UserId> = planted.held_out.iter().copied().collect();
    let precision = found.iter().filter(|u| held_out.contains(u)).count() as f64 / size as f64;
    let random = size as f64 / (planted.profiles.len() - seed.len()) as f64;
    assert!(
        precision > 20.0 * random,
        "precision {precision}, random {random}"
    );
}
