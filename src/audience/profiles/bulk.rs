//! Bulk profile files: `profiles/*.jsonl` and `profiles/*.csv`, applied to the store at start and
//! whenever they change, and the one reading of a profile update both they and the API share.
//!
//! A `.jsonl` line is `{"user": "RAW KEY", "tags": ["sports/running"], "ttl": "5m"}` (or
//! `"user_sha256": "<64 hex>"` instead of `user`; `ttl` optional, absent = long-term). A `.csv`
//! file starts with the header `user,tags,ttl` and has tags separated by `;`. A file that only grew
//! (lines appended, or new) has just its new lines applied. The tags files give are theirs: when a
//! file is rewritten or deleted (and at start, over the snapshot), every file is read again whole
//! and the file tags no line gives any more are dropped (`Profiles::settle`); the API's tags are
//! never touched. A line's ttl counts from its file's modification time (or the clock's now, if
//! earlier), so a restart does not extend it. A bad line is skipped and reported as
//! `path:line: message` in `/status`; the rest of the file applies. Files are read a block at a
//! time: memory does not grow with their size. Runs on a blocking thread,
//! never on the bid path; `/status` reads what the last file applied published, never waiting.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Origin, Profiles, Update, parse_ttl};
use crate::forms::tag_form;
use crate::request::facts::MAX_TAGS;
use crate::request::user::UserId;

/// One profile update as written in a `.jsonl` line and in the API's batch body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub user: Option<String>,
    pub user_sha256: Option<String>,
    pub tags: Vec<String>,
    pub ttl: Option<String>,
}

impl Line {
    pub fn update(&self) -> Result<Update, String> {
        let user = match (&self.user, &self.user_sha256) {
            (Some(key), None) => user_key(key)?,
            (None, Some(hex)) => UserId::from_sha256_hex(hex)
                .ok_or_else(|| format!("user_sha256 `{hex}` is not 64 hex digits"))?,
            _ => return Err("give one of `user` (the raw key) and `user_sha256`".into()),
        };
        update_of(
            user,
            self.tags.iter().map(String::as_str),
            self.ttl.as_deref(),
        )
    }
}

/// The id of a raw user key; an empty one is refused.
pub fn user_key(key: &str) -> Result<UserId, String> {
    if key.trim().is_empty() {
        return Err("the user key is empty".into());
    }
    Ok(UserId::of_key(key))
}

/// The longest tag accepted, in bytes (tag names are kept for as long as the bidder runs).
pub const MAX_TAG_BYTES: usize = 256;

/// An update of `user` with `tags` for `ttl` (none: long-term), checked: at least one tag, each
/// with some text and at most [`MAX_TAG_BYTES`], at most [`MAX_TAGS`] of them.
pub fn update_of<'a>(
    user: UserId,
    tags: impl IntoIterator<Item = &'a str>,
    ttl: Option<&str>,
) -> Result<Update, String> {
    let mut formed = Vec::new();
    for tag in tags {
        let tag = tag_form(tag).ok_or_else(|| format!("tag `{tag}` has no text"))?;
        if tag.len() > MAX_TAG_BYTES {
            return Err(format!(
                "a tag of {} bytes: at most {MAX_TAG_BYTES}",
                tag.len()
            ));
        }
        formed.push(tag);
    }
    if formed.is_empty() {
        return Err("no tags".into());
    }
    if formed.len() > MAX_TAGS {
        return Err(format!("{} tags: at most {MAX_TAGS}", formed.len()));
    }
    Ok(Update {
        user,
        tags: formed,
        ttl_secs: ttl.map(parse_ttl).transpose()?,
    })
}

/// The kinds of bulk file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileFormat {
    Jsonl,
    Csv,
}

/// The header a CSV profile file starts with.
const CSV_HEADER: &str = "user,tags,ttl";

impl FileFormat {
    pub fn of(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        match path.extension()?.to_str()? {
            "jsonl" => Some(FileFormat::Jsonl),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }

    /// One line of a file (not a CSV header). `Ok(None)`: a blank line.
    pub fn parse(self, line: &str) -> Result<Option<Update>, String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        match self {
            FileFormat::Jsonl => serde_json::from_str::<Line>(line)
                .map_err(|e| e.to_string())?
                .update()
                .map(Some),
            FileFormat::Csv => {
                let mut cells = line.splitn(3, ',');
                let user = user_key(cells.next().unwrap_or_default())?;
                let tags = cells.next().unwrap_or_default();
                let ttl = cells.next().map(str::trim).filter(|t| !t.is_empty());
                update_of(user, tags.split(';').filter(|t| !t.trim().is_empty()), ttl).map(Some)
            }
        }
    }
}

/// The bulk files in `dir`, sorted.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    crate::files::list(dir, &[".jsonl", ".csv"])
}

/// Every update of every bulk file in `dir`, bad lines skipped (and returned as problems): for
/// offline reading (`precis audience expand`).
pub fn read_all(dir: &Path) -> std::io::Result<(Vec<Update>, Vec<String>)> {
    let mut updates = Vec::new();
    let mut problems = Vec::new();
    for path in files(dir)? {
        let read = read_file(&path, &Seen::default(), |chunk| {
            updates.extend_from_slice(chunk)
        })?;
        problems.extend(read.map(|file| file.problems).unwrap_or_default());
    }
    Ok((updates, problems))
}

/// What has been applied of one file.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Bytes applied (whole lines), and the hash of those bytes: a file that still starts with
    /// them only grew.
    len: usize,
    hash: u64,
    /// Lines applied, for numbering the next ones.
    lines: usize,
    updates: usize,
    /// Bad lines skipped, and the first few of them.
    bad: usize,
    problems: Vec<String>,
}

/// Problems kept per file for `/status` (the count goes on).
const MAX_PROBLEMS: usize = 20;
/// Updates applied to the store at a time.
const CHUNK: usize = 10_000;

/// The bulk file directory and what was applied of each file.
#[derive(Debug, Default)]
pub struct Feed {
    dir: Option<PathBuf>,
    /// Each file's [`Seen`]; `None` before the first reload, which reads every file whole.
    seen: Mutex<Option<BTreeMap<PathBuf, Seen>>>,
    /// What `/status` shows, published as each file is applied.
    shown: ArcSwap<Vec<serde_json::Value>>,
}

/// What reading part of a file found.
struct Read {
    /// Bytes consumed (through the last line applied) and lines counted in them.
    consumed: usize,
    lines: usize,
    updates: usize,
    problems: Vec<String>,
    bad: usize,
}

/// Reads `bytes` (a file's content from line `first_line` on) line by line, handing updates to
/// `apply` in chunks. A last line without a newline that does not parse is left for later: a
/// writer may be half way through it.
fn read_lines(
    path: &Path,
    bytes: &[u8],
    first_line: usize,
    mut apply: impl FnMut(&[Update]),
) -> Read {
    let format = FileFormat::of(path).unwrap_or(FileFormat::Jsonl);
    let mut read = Read {
        consumed: 0,
        lines: 0,
        updates: 0,
        problems: Vec::new(),
        bad: 0,
    };
    let mut chunk = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, ended) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], true),
            None => (rest, false),
        };
        let number = first_line + read.lines + 1;
        let parsed = match std::str::from_utf8(line) {
            Err(_) => Err("not UTF-8 text".to_owned()),
            Ok(text) if number == 1 && format == FileFormat::Csv => {
                if text.trim().eq_ignore_ascii_case(CSV_HEADER) {
                    Ok(None)
                } else {
                    Err(format!(
                        "a CSV profile file starts with the header `{CSV_HEADER}`: nothing of it was applied"
                    ))
                }
            }
            Ok(text) => format.parse(text),
        };
        if parsed.is_err() && !ended {
            break;
        }
        match parsed {
            Ok(Some(update)) => chunk.push(update),
            Ok(None) => {}
            Err(message) => {
                read.bad += 1;
                if read.problems.len() < MAX_PROBLEMS {
                    read.problems
                        .push(format!("{}:{number}: {message}", path.display()));
                }
                // A CSV file without its header is refused whole.
                if number == 1 && format == FileFormat::Csv {
                    break;
                }
            }
        }
        if chunk.len() >= CHUNK {
            read.updates += chunk.len();
            apply(&chunk);
            chunk.clear();
        }
        let taken = line.len() + usize::from(ended);
        read.consumed += taken;
        read.lines += 1;
        rest = &rest[taken..];
    }
    read.updates += chunk.len();
    apply(&chunk);
    read
}

impl Feed {
    pub fn new(dir: PathBuf) -> Feed {
        Feed {
            dir: Some(dir),
            ..Feed::default()
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Applies what changed in the directory's files since the last call to `store`, as of `now`:
    /// the new lines of files that grew or are new; or, when a file was rewritten or deleted
    /// (and at the first call), every file whole, dropping the file tags no line gives any more.
    /// Returns how many updates it applied. A missing directory holds no files.
    pub fn reload(&self, store: &Profiles, now: DateTime<Utc>) -> std::io::Result<usize> {
        let Some(dir) = &self.dir else { return Ok(0) };
        let paths = match files(dir) {
            Ok(paths) => paths,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut state = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let first = state.is_none();
        let mut rebuild = match &*state {
            None => true,
            Some(seen) => seen.keys().any(|path| !paths.contains(path)),
        };
        let seen = state.get_or_insert_default();
        let mut applied = 0;
        for path in paths.iter().take_while(|_| !rebuild) {
            let before = seen.get(path).cloned().unwrap_or_default();
            match apply(store, path, &before, Origin::FILE, now) {
                Ok(Some((file, updates))) => {
                    seen.insert(path.clone(), file);
                    self.publish(seen);
                    applied += updates;
                }
                Ok(None) => {
                    rebuild = true;
                    break;
                }
                Err(e) => tracing::warn!("cannot read profile file {}: {e}", path.display()),
            }
        }
        if rebuild {
            if !first {
                tracing::info!("profile files rewritten or removed: reading them all again");
            }
            seen.clear();
            let mut unread = false;
            for path in &paths {
                match apply(store, path, &Seen::default(), Origin::REBUILD, now) {
                    Ok(Some((file, updates))) => {
                        seen.insert(path.clone(), file);
                        self.publish(seen);
                        applied += updates;
                    }
                    Ok(None) => unread = true,
                    Err(e) => {
                        tracing::warn!("cannot read profile file {}: {e}", path.display());
                        unread = true;
                    }
                }
            }
            if unread {
                // Its tags are not dropped for a read that failed: all are read again next time.
                tracing::warn!("a profile file could not be read: the next reload reads all again");
                self.publish(seen);
                *state = None;
                return Ok(applied);
            }
            store.settle();
        }
        self.publish(seen);
        Ok(applied)
    }

    /// Each file: lines and updates applied, and the bad lines skipped (the first few).
    fn publish(&self, seen: &BTreeMap<PathBuf, Seen>) {
        let shown = seen
            .iter()
            .map(|(path, file)| {
                serde_json::json!({
                    "path": path.display().to_string(),
                    "lines": file.lines,
                    "updates": file.updates,
                    "bad_lines": file.problems,
                })
            })
            .collect();
        self.shown.store(std::sync::Arc::new(shown));
    }

    /// What `/status` shows of the files: as of the last file applied (a reload in progress
    /// does not make it wait).
    pub fn status(&self) -> serde_json::Value {
        serde_json::Value::Array(self.shown.load().to_vec())
    }
}

/// Applies the lines of `path` after those `before` says were applied, from `origin`. Returns
/// what is now applied of the file and the updates applied, or `None` when the file no longer
/// starts with what was applied (it was rewritten).
fn apply(
    store: &Profiles,
    path: &Path,
    before: &Seen,
    origin: Origin,
    now: DateTime<Utc>,
) -> std::io::Result<Option<(Seen, usize)>> {
    // Ttls count from the file's last change, so reading it again does not extend them.
    let base = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_or(now, |modified| DateTime::<Utc>::from(modified).min(now));
    let mut refused_full = 0;
    let read = read_file(path, before, |chunk| {
        match store.apply_as(chunk, base, now, origin) {
            Ok(applied) => refused_full += applied.refused_full,
            Err(e) => tracing::warn!("profile file {}: {e}", path.display()),
        }
    })?;
    let Some(file) = read else { return Ok(None) };
    if refused_full > 0 {
        tracing::warn!(
            path = %path.display(),
            refused_full,
            "profile store full ([profiles] max_users): updates for new users skipped"
        );
    }
    let (updates, bad) = (file.updates - before.updates, file.bad - before.bad);
    if file.len > before.len || bad > 0 {
        tracing::info!(path = %path.display(), updates, bad_lines = bad, "profile file applied");
    }
    Ok(Some((file, updates)))
}

/// Bytes of a bulk file read at a time.
const BLOCK: usize = 1 << 20;
/// The longest line read: a file with a longer one is read up to it (a feed of something else).
const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads the lines of `path` after those `before` says were read, handing their updates to
/// `each` in chunks, a block at a time (memory: a block and a line, whatever the file's size).
/// Returns what is now read of the file, or `None` when it no longer starts with what was read.
fn read_file(
    path: &Path,
    before: &Seen,
    mut each: impl FnMut(&[Update]),
) -> std::io::Result<Option<Seen>> {
    let mut input = std::fs::File::open(path)?;
    let mut block = vec![0; BLOCK];
    let mut hasher = DefaultHasher::new();
    let mut left = before.len;
    while left > 0 {
        let n = input.read(&mut block[..left.min(BLOCK)])?;
        if n == 0 {
            return Ok(None);
        }
        hasher.write(&block[..n]);
        left -= n;
    }
    if before.len > 0 && hasher.finish() != before.hash {
        return Ok(None);
    }
    let mut file = before.clone();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = input.read(&mut block)?;
        let at_end = n == 0;
        pending.extend_from_slice(&block[..n]);
        // Whole lines only, but for the last one.
        let whole = match pending.iter().rposition(|&b| b == b'\n') {
            _ if at_end => pending.len(),
            Some(last) => last + 1,
            None if pending.len() > MAX_LINE_BYTES => {
                file.bad += 1;
                file.problems.push(format!(
                    "{}:{}: a line of over {MAX_LINE_BYTES} bytes: the file is read up to it",
                    path.display(),
                    file.lines + 1
                ));
                break;
            }
            None => continue,
        };
        let read = read_lines(path, &pending[..whole], file.lines, &mut each);
        hasher.write(&pending[..read.consumed]);
        file.len += read.consumed;
        file.lines += read.lines;
        file.updates += read.updates;
        file.bad += read.bad;
        for problem in &read.problems {
            tracing::warn!("skipped profile line {problem}");
        }
        let room = MAX_PROBLEMS.saturating_sub(file.problems.len());
        file.problems.extend(read.problems.into_iter().take(room));
        let stopped = read.consumed < whole;
        pending.drain(..read.consumed);
        if at_end || stopped {
            break;
        }
    }
    file.problems.truncate(MAX_PROBLEMS);
    file.hash = hasher.finish();
    Ok(Some(file))
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A store of 100 users, and the feed of bulk files in `dir`.
    fn store(dir: &Path) -> (Profiles, Feed) {
        (Profiles::new(100), Feed::new(dir.to_owned()))
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn tags_of(store: &Profiles, key: &str) -> Vec<String> {
        store.tag_names(key, now())
    }

    #[test]
    fn jsonl_and_csv_lines_become_updates_and_bad_lines_are_reported_by_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.jsonl"),
            "{\"user\": \"u1\", \"tags\": [\"Sports / Running\"]}\n\
             \n\
             {\"user\": \"u2\", \"tags\": [\"x\"], \"ttl\": \"5 minutes\"}\n\
             {\"user_sha256\": \"c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b\", \"tags\": [\"hashed\"], \"ttl\": \"5m\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.csv"),
            "user,tags,ttl\nu3,a;b/c,\nu4,,5m\nu5,z,2h",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.csv"), "u6,a,\n").unwrap();
        let (store, feed) = store(dir.path());
        assert_eq!(feed.reload(&store, now()).unwrap(), 4);
        assert_eq!(tags_of(&store, "u1"), ["sports/running"]);
        assert_eq!(tags_of(&store, "user-1"), ["hashed"]);
        assert_eq!(tags_of(&store, "u3"), ["a", "b/c"]);
        assert_eq!(
            tags_of(&store, "u5"),
            ["z"],
            "a last line without a newline"
        );
        assert!(tags_of(&store, "u6").is_empty(), "no CSV header: refused");
        let status = feed.status().to_string();
        for problem in [
            "a.jsonl:3: ttl `5 minutes`",
            "b.csv:3: no tags",
            "c.csv:1: ",
        ] {
            assert!(status.contains(problem), "{problem} in {status}");
        }
    }

    #[test]
    fn a_grown_file_has_only_its_new_lines_applied_and_a_half_written_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.jsonl");
        std::fs::write(
            &path,
            "{\"user\": \"u1\", \"tags\": [\"a\"]}\n{\"user\": \"u2\"",
        )
        .unwrap();
        let (store, feed) = store(dir.path());
        assert_eq!(feed.reload(&store, now()).unwrap(), 1);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b", \"tags\": [\"b\"]}\n").unwrap();
        assert_eq!(feed.reload(&store, now()).unwrap(), 1, "only the new line");
        assert_eq!(tags_of(&store, "u2"), ["b"]);
        assert_eq!(feed.reload(&store, now()).unwrap(), 0, "nothing changed");
        std::fs::write(&path, "{\"user\": \"u3\", \"tags\": [\"c\"]}\n").unwrap();
        assert_eq!(
            feed.reload(&store, now()).unwrap(),
            1,
            "rewritten: read again"
        );
        assert_eq!(tags_of(&store, "u3"), ["c"]);
    }

    fn api(store: &Profiles, key: &str, tags: &[&str], ttl: Option<u32>) {
        store.apply(&[Update::of(key, tags, ttl)], now()).unwrap();
    }

    #[test]
    fn a_line_or_file_removed_takes_its_tags_away_and_api_tags_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.csv"));
        std::fs::write(
            &a,
            "{\"user\": \"u1\", \"tags\": [\"a\", \"f\"]}\n{\"user\": \"u2\", \"tags\": [\"b\"]}\n",
        )
        .unwrap();
        std::fs::write(&b, "user,tags,ttl\nu3,c,\n").unwrap();
        let (store, feed) = store(dir.path());
        api(&store, "u1", &["a", "api"], Some(3_600));
        feed.reload(&store, now()).unwrap();
        assert_eq!(tags_of(&store, "u1"), ["a", "api", "f"], "`a` shows once");
        assert_eq!(
            store.live(UserId::of_key("u1"), now())[0].1,
            None,
            "the later expiry"
        );

        std::fs::write(&a, "{\"user\": \"u2\", \"tags\": [\"b\"]}\n").unwrap();
        feed.reload(&store, now()).unwrap();
        assert_eq!(
            tags_of(&store, "u1"),
            ["a", "api"],
            "the file's `f` went with its line"
        );
        let in_an_hour = now() + chrono::Duration::hours(1);
        assert_eq!(
            store.live(UserId::of_key("u1"), now())[0].1,
            Some(in_an_hour),
            "the API's `a` stays, with its own ttl"
        );
        assert_eq!(tags_of(&store, "u2"), ["b"]);
        assert_eq!(tags_of(&store, "u3"), ["c"], "the other file, read again");

        std::fs::remove_file(&b).unwrap();
        feed.reload(&store, now()).unwrap();
        assert!(tags_of(&store, "u3").is_empty(), "a deleted file's tags go");
        assert_eq!(store.users(), 2, "u3 had nothing else: forgotten");
        assert_eq!(feed.status().as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_user_at_the_tag_cap_gets_the_rewritten_files_tags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let line = |prefix: &str| {
            let tags: Vec<String> = (0..MAX_TAGS).map(|i| format!("{prefix}{i}")).collect();
            format!("user,tags,ttl\nu1,{},\n", tags.join(";"))
        };
        std::fs::write(&path, line("old")).unwrap();
        let (store, feed) = store(dir.path());
        feed.reload(&store, now()).unwrap();
        std::fs::write(&path, line("new")).unwrap();
        feed.reload(&store, now()).unwrap();
        let tags = tags_of(&store, "u1");
        assert_eq!(tags.len(), MAX_TAGS);
        assert!(tags.iter().all(|t| t.starts_with("new")), "{tags:?}");
    }

    #[test]
    fn big_files_are_read_a_block_at_a_time_and_an_endless_line_stops_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("user,tags,ttl\n");
        for i in 0..60_000 {
            text.push_str(&format!(
                "user-{i},interests/some-long-enough-tag-{},\n",
                i % 50
            ));
        }
        assert!(text.len() > 2 * BLOCK, "lines cross blocks");
        std::fs::write(&path, &text).unwrap();
        let (store, feed) = (Profiles::new(100_000), Feed::new(dir.path().to_owned()));
        assert_eq!(feed.reload(&store, now()).unwrap(), 60_000);
        assert_eq!(store.users(), 60_000);
        assert_eq!(
            tags_of(&store, "user-39999"),
            ["interests/some-long-enough-tag-49"]
        );

        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let endless = "x".repeat(MAX_LINE_BYTES + BLOCK);
        let tail = format!("late,a,\n{endless}\nlater,b,\n");
        std::io::Write::write_all(&mut file, tail.as_bytes()).unwrap();
        assert_eq!(feed.reload(&store, now()).unwrap(), 1, "only `late`");
        assert!(
            tags_of(&store, "later").is_empty(),
            "after the endless line"
        );
        let status = feed.status().to_string();
        assert!(status.contains("big.csv:60003: a line of over"), "{status}");
    }

    #[test]
    fn a_missing_directory_holds_no_files() {
        let (store, feed) = store(Path::new("/nonexistent/profiles"));
        assert_eq!(feed.reload(&store, now()).unwrap(), 0);
    }
}
