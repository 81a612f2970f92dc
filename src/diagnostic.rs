//! Problems in the files people edit (campaign files, the taxonomy, audience packages), each at
//! the place it is written, printed as compilers print them: `path:line:col: message`.
//!
//! A leaf every file format reports through; `precis check`, the reload log and `/status` show
//! what it holds. Positions are 1-based: a problem with a whole line has no column (`path:line:`),
//! a problem with the whole file neither (`path:`). It never reads a file itself.
//!
//! Messages speak to the people who edit the files, not in Rust types: [`for_people`] rewrites
//! what the TOML reader says ("invalid type: string \"2.5\", expected f64") into what to write
//! ("`cpm` must be a number, like 2.5, not the text \"2.5\": remove the quotes"), with a "did you
//! mean" for a misspelt key ([`closest`]).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One problem in a file, at a 1-based line and column (0: the whole line; line 0: the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A problem at byte `offset` of `source`.
    pub fn at(source: &str, offset: usize, message: String) -> Diagnostic {
        let offset = offset.min(source.len());
        let before = &source[..source.floor_char_boundary(offset)];
        Diagnostic {
            line: before.matches('\n').count() + 1,
            col: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            message,
        }
    }
}

/// Why a file was refused: every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileError {
    /// One problem at `line` and `col` of `path` (see [`Diagnostic`] for what 0 means).
    pub fn at(path: &Path, line: usize, col: usize, message: String) -> FileError {
        FileError {
            path: path.to_owned(),
            diagnostics: vec![Diagnostic { line, col, message }],
        }
    }
}

impl fmt::Display for FileError {
    /// One `path:line:col: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            for place in [d.line, d.col].into_iter().take_while(|&n| n > 0) {
                write!(f, ":{place}")?;
            }
            write!(f, ": {}", d.message)?;
        }
        Ok(())
    }
}

/// What the TOML reader said about the entry at `path` (see [`path_at`]), said for the person
/// who edits the file. Messages it does not know pass unchanged.
pub fn for_people(message: &str, path: &[String]) -> String {
    // The key the value belongs to; an unknown key is named by its table.
    let up = if message.starts_with("unknown field ") {
        2
    } else {
        1
    };
    let key = (path.len().checked_sub(up)).and_then(|i| path.get(i));
    said(message, key.map(String::as_str))
}

/// [`for_people`], of the value of `key` (or of its table).
fn said(message: &str, key: Option<&str>) -> String {
    let named = key.map_or("this value".to_owned(), |k| format!("`{k}`"));
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let wanted = kind(expected);
        let found = match found.strip_prefix("string ") {
            Some(text) => {
                let unquoted = text.trim_matches('"');
                let number = unquoted.trim().parse::<f64>().is_ok();
                if number && wanted.contains("number") {
                    format!("the text {text}: remove the quotes")
                } else {
                    format!("the text {text}")
                }
            }
            None => found
                .replace("integer", "the number")
                .replace("floating point", "the number")
                .replace("sequence", "a list")
                .replace("map", "a table"),
        };
        return format!("{named} must be {wanted}, not {found}");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = found.trim_matches('`');
        let choices: Vec<&str> = (expected.trim_start_matches("one of "))
            .split(", ")
            .map(|c| c.trim_matches('`'))
            .filter(|c| !c.is_empty())
            .collect();
        let hint = if choices.contains(&found.to_lowercase().as_str()) {
            ": write it in lower case".to_owned()
        } else {
            closest(found, choices.iter().copied())
                .map(|c| format!(": did you mean `{c}`?"))
                .unwrap_or_default()
        };
        return format!(
            "{named} must be one of {} (found `{found}`){hint}",
            choices.join(", ")
        );
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = found.trim_matches('`');
        let keys = (expected.trim_start_matches("one of "))
            .split(", ")
            .map(|c| c.trim_matches('`'))
            .filter(|c| !c.is_empty());
        let place = key.map_or(String::new(), |k| format!(" in [{k}]"));
        return match closest(found, keys.clone()) {
            Some(near) => format!("unknown key `{found}`{place}: did you mean `{near}`?"),
            None => format!(
                "unknown key `{found}`{place}; the keys here are {}",
                keys.collect::<Vec<_>>().join(", ")
            ),
        };
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        let field = field.trim_matches('`');
        return match key {
            Some(k) => format!("[{k}] needs `{field}`"),
            None => format!("the file needs `{field}`"),
        };
    }
    message.to_owned()
}

/// The keys from the top down to the entry `span` lies in (on its key, its value, or nested in it):
/// `["pricing", "model"]`; a table of an array of tables counts as its key (`["creative", "landing"]`).
pub fn path_at(table: &DeTable<'_>, span: &Range<usize>) -> Vec<String> {
    if span.is_empty() {
        return Vec::new(); // The whole file.
    }
    let within = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
    for (written, value) in table.iter() {
        let key = written.get_ref().to_string();
        let inner = match value.get_ref() {
            DeValue::Table(t) => path_at(t, span),
            DeValue::Array(items) => (items.iter())
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(t) => Some(path_at(t, span)),
                    _ => None,
                })
                .find(|p| !p.is_empty())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if !inner.is_empty() {
            return [vec![key], inner].concat();
        }
        if within(written.span()) || within(value.span()) {
            return vec![key];
        }
    }
    Vec::new()
}

/// The serde name of an expected type, as a campaign manager writes such a value.
fn kind(expected: &str) -> String {
    match expected {
        "f64" | "f32" => "a number, like 2.5".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number, like 300".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "a borrowed string" => "text in quotes, like \"abc\"".into(),
        "a sequence" => "a list in brackets, like [\"a\", \"b\"]".into(),
        other if other.starts_with("struct ") || other == "a map" => "a table".into(),
        other => other.into(),
    }
}

/// The candidate `word` most likely misspells: within a quarter of its length in edits (at least
/// two), the closest first.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let budget = (word.chars().count() / 4).max(2);
    candidates
        .into_iter()
        .map(|c| (edits(c, word), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance of two words, by characters.
pub fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readers_messages_are_said_in_campaign_terms() {
        let say = |m: &str, k: Option<&str>| said(m, k);
        assert_eq!(
            say(r#"invalid type: string "2.5", expected f64"#, Some("cpm")),
            r#"`cpm` must be a number, like 2.5, not the text "2.5": remove the quotes"#
        );
        assert_eq!(
            say("invalid type: integer `300`, expected a string", Some("id")),
            "`id` must be text in quotes, like \"abc\", not the number `300`"
        );
        assert_eq!(
            say(
                "unknown variant `CPM`, expected one of `cpm`, `cpc`, `cps`",
                Some("model")
            ),
            "`model` must be one of cpm, cpc, cps (found `CPM`): write it in lower case"
        );
        assert_eq!(
            say(
                "unknown variant `cmp`, expected one of `cpm`, `cpc`, `cps`",
                Some("model")
            ),
            "`model` must be one of cpm, cpc, cps (found `cmp`): did you mean `cpm`?"
        );
        assert_eq!(
            say(
                "unknown field `targetting`, expected one of `id`, `pricing`, `targeting`",
                None
            ),
            "unknown key `targetting`: did you mean `targeting`?"
        );
        assert_eq!(
            say(
                "unknown field `zzz`, expected one of `daily`, `total`",
                Some("budget")
            ),
            "unknown key `zzz` in [budget]; the keys here are daily, total"
        );
        assert_eq!(
            say("missing field `landing`", Some("creative")),
            "[creative] needs `landing`"
        );
        assert_eq!(say("something else", None), "something else");
        // An unknown key is named by its table; a wrong value by its own key.
        let path = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(
            for_people(
                "unknown field `dialy`, expected one of `daily`",
                &path(&["budget", "dialy"])
            ),
            "unknown key `dialy` in [budget]: did you mean `daily`?"
        );
        assert_eq!(
            for_people(
                "invalid type: string \"x\", expected f64",
                &path(&["budget", "daily"])
            ),
            "`daily` must be a number, like 2.5, not the text \"x\""
        );
    }

    #[test]
    fn a_problem_prints_as_much_of_its_place_as_it_has() {
        let at = |line, col| FileError::at(Path::new("c/a.toml"), line, col, "bad".into());
        assert_eq!(at(3, 7).to_string(), "c/a.toml:3:7: bad");
        assert_eq!(at(3, 0).to_string(), "c/a.toml:3: bad");
        assert_eq!(at(0, 0).to_string(), "c/a.toml: bad");
    }

    #[test]
    fn an_offset_becomes_a_line_and_a_column_in_characters() {
        let d = Diagnostic::at("a = 1\nbé = x\n", 11, String::new());
        assert_eq!((d.line, d.col), (2, 5));
    }
}
