//! The keys of a bidder at start: the events secret (configured, or else made at first start and
//! kept in the event log directory) and the user key, kept there since the first start.
//!
//! - `events.secret`: made only when no secret is configured (`PRECIS_SECRET`, `[events]
//!   secret`): 32 random bytes as 64 hex digits, which are the secret (so `PRECIS_SECRET=$(cat
//!   logs/events.secret)` signs alike). Event URLs of bids made before a restart stay valid.
//! - `user.key`: the key of user hashes ([`crate::token::Keys`]), derived from the signing secret
//!   at the first start and kept, so that rotating the secret leaves frequency caps, purchase
//!   suppression and `precis` packages as they were.
//!
//! Each is made once, atomically, readable by its owner only ([`crate::files::create_private`]).
//! A damaged one is an error that says what to do, never replaced: every event URL sent out and
//! every user hash in the log depends on it. This module never logs a key.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::Events;
use crate::files;
use crate::token::{Keys, TokenError};

/// The events secret made when none is configured, in the event log directory.
pub const SECRET_FILE: &str = "events.secret";

/// The user key, in the event log directory.
pub const USER_KEY_FILE: &str = "user.key";

/// Bytes of a key made here: 32, written as 64 hex digits and a newline.
const KEY_BYTES: usize = 32;

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("events secret: {0} (at least {min} bytes)", min = crate::token::MIN_SECRET_LEN)]
    Secret(TokenError),
    #[error("cannot read /dev/urandom for a new events secret")]
    Random(#[source] std::io::Error),
    #[error("cannot read or make {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged ({found}; it should hold 64 hex digits): restore it from a backup. Deleting it makes a new one at the next start, and then {what}"
    )]
    Damaged {
        path: PathBuf,
        found: String,
        what: &'static str,
    },
}

/// What is lost when a key file is replaced, said in its error.
const SECRET_LOST: &str =
    "every event URL already sent out (wins, impressions, clicks, conversions) is refused";
const USER_KEY_LOST: &str =
    "every user's frequency caps, purchase suppression and `precis` packages start over";

/// The signing keys of `events`: the configured secret, else the one kept in `events.dir`
/// (made at the first start); user hashes keyed by the user key kept there (made at the first
/// start from the secret then in use). Blocks on the disk.
pub fn keys(events: &Events) -> Result<Keys, KeysError> {
    let (configured, previous) = events.secrets();
    keys_in(&events.dir, configured, previous)
}

fn keys_in(
    dir: &Path,
    configured: Option<String>,
    previous: Option<String>,
) -> Result<Keys, KeysError> {
    let current = match configured {
        Some(secret) => secret,
        None => {
            let secret = Kept {
                path: dir.join(SECRET_FILE),
                name: "events secret (none configured: PRECIS_SECRET or [events] secret)",
                lost: SECRET_LOST,
            };
            // The secret is the file's text, its hex digits (so that it can be configured as is).
            hex(&secret.read_or_make(|| {
                let mut random = [0u8; KEY_BYTES];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
                    .map_err(KeysError::Random)?;
                Ok(random)
            })?)
        }
    };
    let keys = Keys::new(current.as_bytes(), previous.as_deref().map(str::as_bytes))
        .map_err(KeysError::Secret)?;
    let user_key = Kept {
        path: dir.join(USER_KEY_FILE),
        name: "user key (keys user hashes, whichever secret signs)",
        lost: USER_KEY_LOST,
    };
    let user_key = user_key.read_or_make(|| Ok(keys.user_key_of_current()))?;
    keys.with_user_key(&user_key).map_err(KeysError::Secret)
}

/// A key kept in a file of its own.
struct Kept {
    path: PathBuf,
    /// What it is, for the log.
    name: &'static str,
    /// What replacing it loses, for its errors.
    lost: &'static str,
}

impl Kept {
    /// The key in the file (written as 64 hex digits), made with `make` when there is no such
    /// file yet.
    fn read_or_make(
        &self,
        make: impl FnOnce() -> Result<[u8; KEY_BYTES], KeysError>,
    ) -> Result<[u8; KEY_BYTES], KeysError> {
        let (path, name) = (&self.path, self.name);
        if let Some(key) = self.read()? {
            tracing::info!(file = %path.display(), "{name}: read");
            return Ok(key);
        }
        let key = make()?;
        match files::create_private(path, format!("{}\n", hex(&key)).as_bytes()) {
            Ok(()) => {
                tracing::warn!(
                    file = %path.display(),
                    "{name}: made and kept (mode 0600); keep the file with the event log (back it up, move it with the bidder): were it lost, {}",
                    self.lost
                );
                Ok(key)
            }
            // Another process made it first: theirs is the one.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => match self.read()? {
                Some(key) => Ok(key),
                None => Err(self.io(e)),
            },
            Err(e) => Err(self.io(e)),
        }
    }

    /// The key in the file; `None` when there is no file.
    fn read(&self) -> Result<Option<[u8; KEY_BYTES]>, KeysError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let key = parse(&bytes).map_err(|found| KeysError::Damaged {
            path: self.path.clone(),
            found,
            what: self.lost,
        })?;
        warn_when_readable_by_others(&self.path);
        Ok(Some(key))
    }

    fn io(&self, source: std::io::Error) -> KeysError {
        KeysError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The key a key file's 64 hex digits (a final newline allowed) write, or what was found
/// instead.
fn parse(bytes: &[u8]) -> Result<[u8; KEY_BYTES], String> {
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let nibble = |digit: u8| char::from(digit).to_digit(16).map(|n| n as u8);
    if text.len() == 2 * KEY_BYTES && text.iter().all(u8::is_ascii_hexdigit) {
        let mut key = [0u8; KEY_BYTES];
        for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (nibble(pair[0]).unwrap_or(0) << 4) | nibble(pair[1]).unwrap_or(0);
        }
        Ok(key)
    } else if text.iter().all(u8::is_ascii_hexdigit) {
        Err(format!("{} hex digits", text.len()))
    } else {
        Err(format!("{} bytes, not all hex digits", bytes.len()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key file others may read is a leaked key: say so (it still serves).
fn warn_when_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "key file readable by others: chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, secret: Option<&str>, previous: Option<&str>) -> Result<Keys, KeysError> {
        keys_in(dir, secret.map(str::to_owned), previous.map(str::to_owned))
    }

    #[test]
    fn without_a_secret_one_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let first = keys(&logs, None, None).expect("made");
        let again = keys(&logs, None, None).expect("read");
        let secret = std::fs::read_to_string(logs.join(SECRET_FILE)).expect("kept");
        assert_eq!(secret.len(), 65, "{secret:?}");
        // The file is the secret: configured, it signs as the kept one does.
        let configured = keys(&logs, Some(secret.trim_end()), None).expect("configured");
        let claims = crate::token::Claims {
            purpose: crate::token::Purpose::Win,
            issued: 1_767_225_600,
            bid: "b".into(),
            request: "r".into(),
            imp: "1".into(),
            campaign: "c".into(),
            creative: "k".into(),
            bid_price: 1.0,
            cur: "USD".into(),
            user: None,
            country: None,
            device: None,
            os: None,
        };
        let token = first.sign(&claims);
        assert_eq!(token, again.sign(&claims));
        assert_eq!(token, configured.sign(&claims));
        assert_eq!(first.user_hash("u"), again.user_hash("u"));
    }

    #[test]
    fn a_rotation_keeps_the_user_key_of_the_first_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = "the first secret, long enough";
        let new = "the second secret, long enough";
        let first = keys(dir.path(), Some(old), None).expect("first");
        let rotating = keys(dir.path(), Some(new), Some(old)).expect("rotating");
        let rotated = keys(dir.path(), Some(new), None).expect("rotated");
        // The user key kept is the first secret's own ([`Keys::new`]'s), hex in the file.
        let own = Keys::new(old.as_bytes(), None).expect("keys");
        assert_eq!(first.user_hash("u"), own.user_hash("u"));
        let kept = std::fs::read_to_string(dir.path().join(USER_KEY_FILE)).expect("kept");
        assert_eq!(kept, format!("{}\n", hex(&own.user_key_of_current())));
        assert_eq!(first.user_hash("u"), rotating.user_hash("u"));
        assert_eq!(first.user_hash("u"), rotated.user_hash("u"));
        assert!(
            !dir.path().join(SECRET_FILE).exists(),
            "a configured secret is never written"
        );
    }

    #[test]
    fn a_damaged_key_file_is_an_error_that_says_what_to_do_and_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (file, damaged) in [
            (SECRET_FILE, "0123abcd\n"),
            (USER_KEY_FILE, ""),
            (SECRET_FILE, &format!("{}zz\n", "0".repeat(62))),
        ] {
            let path = dir.path().join(file);
            std::fs::write(&path, damaged).expect("write");
            let e = keys(dir.path(), None, None)
                .expect_err("damaged")
                .to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("restore it from a backup"), "{e}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), damaged);
            std::fs::remove_file(&path).expect("remove");
        }
    }
}
