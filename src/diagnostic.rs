//! Problems in the files people edit (campaign files, the taxonomy, audience packages), each at
//! the place it is written, printed as compilers print them: `path:line:col: message`.
//!
//! A leaf every file format reports through; `precis check`, the reload log and `/status` show
//! what it holds. Positions are 1-based: a problem with a whole line has no column (`path:line:`),
//! a problem with the whole file neither (`path:`). It never reads a file itself.

use std::fmt;
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

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
