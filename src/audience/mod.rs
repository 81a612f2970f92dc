//! Audience packages: named lists of users (`audiences/NAME.txt` or `.csv`) that campaigns and
//! creatives target or exclude. The packages precis makes itself are built beside: [`retarget`]
//! from its own event log, [`lookalike`] from profiles; [`profiles`] holds its own tags per user.
//!
//! A package is loaded once per change of its file (off the request path, by [`crate::book::store`])
//! into a compact [`Set`] of ids; the bid path only asks [`Library::get`] and [`Package::has`],
//! which read immutable data and never allocate, lock or touch disk. A file with one bad line is
//! refused whole (with `path:line`) and its last good version keeps serving. This module never
//! keeps a raw user key: keys become [`UserId`]s (or are already precis' keyed hashes) as they are
//! read.

pub mod lookalike;
pub mod profiles;
pub mod retarget;
mod set;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use set::Set;

use crate::diagnostic::FileError;
use crate::forms::valid_id;
use crate::request::user::UserId;

/// How a package file writes its user keys: the `# keys: FORM` header (default `raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The key as requests carry it (`user.id`, `buyeruid` or the device's ifa).
    Raw,
    /// 64 hex digits: the SHA-256 of the raw key.
    Sha256,
    /// 16 hex digits: a [`UserId`] as it displays (what `precis audience expand` writes).
    Uid,
    /// 16 hex digits: the event log's secret-keyed user hash (what `precis audience build` writes);
    /// matched against the request's keyed hash, so only under the secret that wrote it.
    Precis,
}

impl KeyForm {
    pub const NAMES: [(&'static str, KeyForm); 4] = [
        ("raw", KeyForm::Raw),
        ("sha256", KeyForm::Sha256),
        ("uid", KeyForm::Uid),
        ("precis", KeyForm::Precis),
    ];

    pub fn name(self) -> &'static str {
        KeyForm::NAMES
            .iter()
            .find(|(_, form)| *form == self)
            .map_or("raw", |(name, _)| name)
    }

    /// The id of one key written in this form; `None` when it is not one.
    fn read(self, key: &str) -> Option<u64> {
        let hex16 = |k: &str| {
            (k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(k, 16).ok())
                .flatten()
        };
        match self {
            KeyForm::Raw => (key.len() <= MAX_KEY_BYTES && !key.chars().any(char::is_control))
                .then(|| UserId::of_key(key).0),
            KeyForm::Sha256 => UserId::from_sha256_hex(key).map(|id| id.0),
            KeyForm::Uid | KeyForm::Precis => hex16(key),
        }
    }
}

/// Raw keys longer than this are not user ids (a line of something else pasted in).
const MAX_KEY_BYTES: usize = 512;
/// Longest line of a package file read (a CSV row may carry more than its key).
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// One loaded package.
#[derive(Debug)]
pub struct Package {
    /// The file stem: what campaigns name it by.
    pub name: String,
    pub path: PathBuf,
    pub form: KeyForm,
    set: Set,
}

/// The request's user as packages know them: each computed only if a package asks.
pub struct Member<'a> {
    /// The [`UserId`] of the request's user key.
    pub id: &'a dyn Fn() -> Option<UserId>,
    /// The request's secret-keyed user hash ([`crate::token::Keys::user_hash`]).
    pub keyed: &'a dyn Fn() -> Option<u64>,
}

impl Package {
    /// Whether the user is in the package; never, for a request without a user key.
    pub fn has(&self, user: &Member) -> bool {
        let key = match self.form {
            KeyForm::Precis => (user.keyed)(),
            _ => (user.id)().map(|id| id.0),
        };
        key.is_some_and(|k| self.set.contains(k))
    }

    /// Whether the package holds this id (packages keyed by [`UserId`]; never a `precis` one).
    pub fn contains(&self, id: UserId) -> bool {
        self.form != KeyForm::Precis && self.set.contains(id.0)
    }

    pub fn users(&self) -> usize {
        self.set.len()
    }

    /// Heap bytes its set takes.
    pub fn bytes(&self) -> usize {
        self.set.bytes()
    }
}

/// How package files end: `NAME.txt` or `NAME.csv`.
const PACKAGE_FILES: &[&str] = &[".txt", ".csv"];

/// Loads one package file (see docs/reference.md for the format). Streams the file: memory is the set
/// plus 8 bytes per line while it is built.
pub fn load(path: &Path) -> Result<Package, FileError> {
    // A problem on a whole line (or with the whole file, line 0).
    let fail = |line: usize, message: String| FileError::at(path, line, 0, message);
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if !valid_id(&name) {
        return Err(fail(
            0,
            format!(
                "`{name}` is not a package name (letters, digits, '.', '_', '-'): rename the file"
            ),
        ));
    }
    let csv = path.extension().is_some_and(|e| e == "csv");
    let file = std::fs::File::open(path).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut form = KeyForm::Raw;
    let mut ids = Vec::new();
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        // Bounded: a file without line breaks is refused, not read whole into one line.
        match (&mut reader).take(MAX_LINE_BYTES).read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => number += 1,
            Err(e) => return Err(fail(number + 1, format!("cannot read: {e}"))),
        }
        if line.len() as u64 == MAX_LINE_BYTES && !line.ends_with('\n') {
            return Err(fail(
                number,
                format!("a line of over {MAX_LINE_BYTES} bytes: not one user key"),
            ));
        }
        let text = line.trim();
        if let Some(comment) = text.strip_prefix('#') {
            if let Some(value) = comment.trim().strip_prefix("keys:") {
                let value = value.trim();
                if !ids.is_empty() {
                    return Err(fail(
                        number,
                        "`# keys:` must come before the first key".into(),
                    ));
                }
                form = KeyForm::NAMES
                    .iter()
                    .find(|(n, _)| *n == value)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| {
                        fail(
                            number,
                            format!("unknown key form `{value}` (raw, sha256, uid or precis)"),
                        )
                    })?;
            }
            continue;
        }
        let key = if csv {
            let first = text.split(',').next().unwrap_or_default().trim();
            let first = first.trim_matches('"').trim();
            if ids.is_empty()
                && ["user", "key", "id"].contains(&first.to_ascii_lowercase().as_str())
            {
                continue; // The header row.
            }
            first
        } else {
            text
        };
        if key.is_empty() {
            if csv && !text.is_empty() {
                return Err(fail(number, "the first column is empty".into()));
            }
            continue;
        }
        match form.read(key) {
            Some(id) => ids.push(id),
            None => {
                let shown: String = key.chars().take(40).collect();
                return Err(fail(
                    number,
                    format!("`{shown}` is not a {} key{}", form.name(), form_hint(form)),
                ));
            }
        }
    }
    Ok(Package {
        name,
        path: path.to_owned(),
        form,
        set: Set::from_ids(ids),
    })
}

fn form_hint(form: KeyForm) -> &'static str {
    match form {
        KeyForm::Raw => " (at most 512 bytes, no control characters)",
        KeyForm::Sha256 => " (64 hex digits)",
        KeyForm::Uid | KeyForm::Precis => " (16 hex digits)",
    }
}

/// What identifies a file's version without reading it: length and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

#[derive(Debug, Clone)]
struct Loaded {
    package: Arc<Package>,
    stamp: Option<Stamp>,
}

/// Every package of the audience directory, as of one reload.
#[derive(Debug, Clone, Default)]
pub struct Library {
    packages: BTreeMap<String, Loaded>,
    /// Files refused in this reload. A refused file may still serve its last good version.
    pub refused: Vec<FileError>,
}

impl Library {
    /// Loads the package files of `dir` (none when it does not exist), reusing `previous`'
    /// packages whose file has the same length and modification time, and falling back to them
    /// for files that fail.
    pub fn load(dir: &Path, previous: &Library) -> Library {
        let mut library = Library::default();
        let paths = match crate::files::list(dir, PACKAGE_FILES) {
            Ok(paths) => paths,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                library
                    .refused
                    .push(FileError::at(dir, 0, 0, format!("cannot list: {e}")));
                return Library {
                    packages: previous.packages.clone(),
                    ..library
                };
            }
        };
        for path in paths {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let last_good = previous
                .packages
                .get(&name)
                .filter(|l| l.package.path == path);
            let stamp = Stamp::of(&path);
            let loaded = match last_good.filter(|l| stamp.is_some() && l.stamp == stamp) {
                Some(same) => Some(same.clone()),
                None => match load(&path) {
                    Ok(package) => Some(Loaded {
                        package: Arc::new(package),
                        stamp,
                    }),
                    Err(error) => {
                        library.refused.push(error);
                        last_good.cloned()
                    }
                },
            };
            let Some(loaded) = loaded else { continue };
            if let Some(owner) = library.packages.get(&name) {
                let message = format!(
                    "package `{name}` is already loaded from {}",
                    owner.package.path.display()
                );
                library.refused.push(FileError::at(&path, 0, 0, message));
                continue;
            }
            library.packages.insert(name, loaded);
        }
        library
    }

    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name).map(|l| &*l.package)
    }

    /// The loaded packages, by name.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.values().map(|l| &*l.package)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.packages.keys().cloned().collect()
    }
}

/// The audience packages a campaign or a creative targets (`audiences_any`) and excludes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// The user must be in one of these (empty: anyone).
    pub any: Vec<String>,
    /// The user must be in none of these.
    pub none: Vec<String>,
}

impl Rule {
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.none.is_empty()
    }

    /// Whether the user passes. Without a user key, an include never holds and an exclude never
    /// vetoes. A package that is not loaded (its file was removed since the campaign was checked)
    /// holds no one, and, as an exclusion, vetoes every user with a key: it cannot vouch for them.
    pub fn holds(&self, library: &Library, user: &Member) -> bool {
        let included = self.any.is_empty()
            || self
                .any
                .iter()
                .any(|name| library.get(name).is_some_and(|p| p.has(user)));
        included
            && !self.none.iter().any(|name| match library.get(name) {
                Some(package) => package.has(user),
                None => (user.id)().is_some(),
            })
    }

    /// The package names it uses, includes and excludes.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.any.iter().chain(&self.none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn user(key: Option<&str>) -> (impl Fn() -> Option<UserId>, impl Fn() -> Option<u64>) {
        let key = key.map(str::to_owned);
        (move || key.as_deref().map(UserId::of_key), || None)
    }

    #[test]
    fn raw_sha256_and_csv_files_hold_the_same_users() {
        let dir = tempfile::tempdir().unwrap();
        let raw = write(
            dir.path(),
            "fans.txt",
            "# brand fans\nuser-1\n\n  user-2  \n",
        );
        let sha = write(
            dir.path(),
            "buyers.csv",
            "# keys: sha256\nuser,segment\nc6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b,sk2\n",
        );
        let fans = load(&raw).unwrap();
        assert_eq!((fans.name.as_str(), fans.users()), ("fans", 2));
        let buyers = load(&sha).unwrap();
        assert_eq!(buyers.form, KeyForm::Sha256);
        assert!(buyers.contains(UserId::of_key("user-1")));
        assert!(!buyers.contains(UserId::of_key("user-2")));
        let (id, keyed) = user(Some("user-2"));
        assert!(fans.has(&Member {
            id: &id,
            keyed: &keyed
        }));
        let (id, keyed) = user(None);
        assert!(!fans.has(&Member {
            id: &id,
            keyed: &keyed
        }));
    }

    #[test]
    fn one_bad_line_refuses_the_file_at_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "b.txt", "# keys: sha256\nnot-a-hash\n");
        let error = load(&bad).unwrap_err();
        assert_eq!(error.diagnostics[0].line, 2);
        assert!(
            error
                .to_string()
                .ends_with("b.txt:2: `not-a-hash` is not a sha256 key (64 hex digits)"),
            "{error}"
        );
        let form = write(dir.path(), "f.txt", "# keys: md5\nx\n");
        assert!(
            load(&form)
                .unwrap_err()
                .to_string()
                .contains(":1: unknown key form `md5`")
        );
        let late = write(dir.path(), "l.txt", "a\n# keys: uid\n");
        assert_eq!(load(&late).unwrap_err().diagnostics[0].line, 2);
        let name = write(dir.path(), "bad name.txt", "a\n");
        assert!(load(&name).is_err());
        let endless = write(dir.path(), "e.txt", &format!("a\n{}", "x".repeat(100_000)));
        let error = load(&endless).unwrap_err().to_string();
        assert!(
            error.ends_with("e.txt:2: a line of over 65536 bytes: not one user key"),
            "{error}"
        );
    }

    #[test]
    fn a_library_keeps_the_last_good_version_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fans.txt", "user-1\n");
        let first = Library::load(dir.path(), &Library::default());
        assert!(first.refused.is_empty());
        write(dir.path(), "fans.txt", "# keys: uid\nzz\n");
        let second = Library::load(dir.path(), &first);
        assert_eq!(second.refused.len(), 1);
        assert!(
            second
                .get("fans")
                .unwrap()
                .contains(UserId::of_key("user-1"))
        );
        let missing = Library::load(&dir.path().join("none"), &Library::default());
        assert!(missing.names().is_empty() && missing.refused.is_empty());
    }

    #[test]
    fn a_rule_includes_and_excludes_and_ignores_users_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fans.txt", "a\nb\n");
        write(dir.path(), "buyers.txt", "b\n");
        let library = Library::load(dir.path(), &Library::default());
        let rule = Rule {
            any: vec!["fans".into()],
            none: vec!["buyers".into()],
        };
        let passes = |key: Option<&str>, rule: &Rule| {
            let (id, keyed) = user(key);
            rule.holds(
                &library,
                &Member {
                    id: &id,
                    keyed: &keyed,
                },
            )
        };
        assert!(passes(Some("a"), &rule));
        assert!(!passes(Some("b"), &rule), "excluded");
        assert!(!passes(Some("c"), &rule), "not included");
        assert!(!passes(None, &rule), "no key never matches an include");
        let exclude_only = Rule {
            any: vec![],
            none: vec!["buyers".into()],
        };
        assert!(passes(None, &exclude_only), "no key never vetoes");
    }
}
