//! The tag taxonomy: the tree of tags campaigns may target (`campaigns/taxonomy.toml`, optional).
//!
//! With a taxonomy, a campaign tag outside the tree is refused with a "did you mean" (a typo must
//! not silently target no one); without one, any tag goes. Matching stays hierarchical either way
//! ([`crate::forms::within`]): a parent matches every descendant. The file lists the roots,
//! then each parent's children:
//!
//! ```toml
//! roots = ["sports", "travel"]
//! [children]
//! sports = ["running", "cycling"]
//! "sports/running" = ["marathons", "trail-running"]
//! ```
//!
//! Read at reload and by `precis check` (by the store, within the campaign files' size and link
//! limits), never on the request path. The generated campaigns'
//! tree ([`crate::generate::taxonomy`]) is written in this form by `precis gen-campaigns`, and is
//! the sample `campaigns/taxonomy.toml`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, FileError, closest, edits};
use crate::forms::tag_form;

/// The file name of the taxonomy in a campaign directory.
pub const FILE: &str = "taxonomy.toml";

/// Every tag of the tree, parents before children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taxonomy {
    tags: Vec<String>,
    known: HashSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    roots: Spanned<Vec<String>>,
    #[serde(default)]
    children: BTreeMap<Spanned<String>, Spanned<Vec<String>>>,
}

impl Taxonomy {
    /// The tree of these tags (in [`tag_form`]) and their ancestors.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Taxonomy {
        let mut taxonomy = Taxonomy::default();
        for tag in tags {
            for (i, _) in tag.match_indices('/') {
                taxonomy.add(&tag[..i]);
            }
            taxonomy.add(tag);
        }
        taxonomy
    }

    fn add(&mut self, tag: &str) {
        if self.known.insert(tag.to_owned()) {
            self.tags.push(tag.to_owned());
        }
    }

    /// Reads `source` (the file at `path`); every problem at its `path:line:col`.
    pub fn parse(source: &str, path: &Path) -> Result<Taxonomy, FileError> {
        let refuse = |offset: usize, message: String| FileError {
            path: path.to_owned(),
            diagnostics: vec![Diagnostic::at(source, offset, message)],
        };
        let file: File = toml::from_str(source).map_err(|e| {
            refuse(
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().to_owned(),
            )
        })?;
        let mut taxonomy = Taxonomy::default();
        let mut diagnostics = Vec::new();
        // The tag of `child` under `parent`, or why it cannot be one.
        let name = |taxonomy: &Taxonomy, parent: Option<&str>, child: &str, at: usize| {
            let tag = match parent {
                Some(parent) => format!("{parent}/{child}"),
                None => child.to_owned(),
            };
            if child.contains('/') || tag_form(child).as_deref() != Some(child) {
                Err(Diagnostic::at(
                    source,
                    at,
                    format!(
                        "`{child}` is not a tag name: lower case, no `/`, not empty (list children under their parent)"
                    ),
                ))
            } else if taxonomy.known.contains(&tag) {
                Err(Diagnostic::at(
                    source,
                    at,
                    format!("tag `{tag}` is declared twice"),
                ))
            } else {
                Ok(tag)
            }
        };
        for root in file.roots.get_ref() {
            match name(&taxonomy, None, root, file.roots.span().start) {
                Ok(tag) => taxonomy.add(&tag),
                Err(d) => diagnostics.push(d),
            }
        }
        // Sorted, so a parent (a prefix) comes before its own children's list.
        for (parent, children) in &file.children {
            let parent_tag = parent.get_ref();
            if !taxonomy.known.contains(parent_tag) {
                diagnostics.push(Diagnostic::at(source, parent.span().start, format!("`{parent_tag}` is not in the tree: list it among its parent's children (or `roots`) first")));
                continue;
            }
            for child in children.get_ref() {
                match name(&taxonomy, Some(parent_tag), child, children.span().start) {
                    Ok(tag) => taxonomy.add(&tag),
                    Err(d) => diagnostics.push(d),
                }
            }
        }
        if diagnostics.is_empty() {
            Ok(taxonomy.in_tree_order())
        } else {
            Err(FileError {
                path: path.to_owned(),
                diagnostics,
            })
        }
    }

    /// Parents first, each followed by its subtree, siblings in the order they were declared.
    fn in_tree_order(self) -> Taxonomy {
        let mut order = Vec::with_capacity(self.tags.len());
        fn visit(tags: &[String], parent: Option<&str>, order: &mut Vec<String>) {
            let children = tags.iter().filter(|t| match parent {
                Some(p) => t
                    .strip_prefix(p)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|r| !r.contains('/')),
                None => !t.contains('/'),
            });
            for child in children {
                order.push(child.clone());
                visit(tags, Some(child), order);
            }
        }
        visit(&self.tags, None, &mut order);
        Taxonomy {
            tags: order,
            known: self.known,
        }
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.known.contains(tag)
    }

    /// Every tag, parents before their children.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The tag a campaign manager most likely meant by `tag`, which is not in the tree: the same
    /// leaf under another parent (`running/trail` for `outdoor/running/trail`), else the closest
    /// spelling within a few edits.
    pub fn suggest(&self, tag: &str) -> Option<&str> {
        let leaf = tag.rsplit('/').next().unwrap_or(tag);
        let same_leaf = self
            .tags
            .iter()
            .filter(|t| t.rsplit('/').next() == Some(leaf))
            .min_by_key(|t| edits(t, tag));
        same_leaf
            .map(String::as_str)
            .or_else(|| closest(tag, self.tags.iter().map(String::as_str)))
    }

    /// The file form: the roots, then one `parent = [children]` line per parent, depth first.
    pub fn to_toml(&self) -> String {
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut parents = Vec::new();
        let mut roots = Vec::new();
        for tag in &self.tags {
            match tag.rsplit_once('/') {
                Some((parent, child)) => {
                    let list = children.entry(parent).or_default();
                    if list.is_empty() {
                        parents.push(parent);
                    }
                    list.push(child);
                }
                None => roots.push(tag.as_str()),
            }
        }
        let list = |items: &[&str]| {
            let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = format!(
            "# The tag taxonomy: campaign tags (tags_any, tags_all, exclude tags) must be tags of this\n\
             # tree. A tag matches itself and every descendant. `roots` are the first level; under\n\
             # [children], each key is a tag and its value the names of its children.\n\
             roots = {}\n\n[children]\n",
            list(&roots)
        );
        for parent in parents {
            let key = if parent.contains('/') {
                format!("\"{parent}\"")
            } else {
                parent.to_owned()
            };
            out.push_str(&format!("{key} = {}\n", list(&children[parent])));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "roots = [\"sports\", \"travel\"]\n\n[children]\nsports = [\"running\", \"cycling\"]\n\"sports/running\" = [\"marathons\", \"trail-running\"]\ntravel = [\"flights\"]\n";

    #[test]
    fn reads_the_tree_and_writes_it_back_the_same() {
        let t = Taxonomy::parse(SMALL, Path::new("taxonomy.toml")).unwrap();
        assert_eq!(
            t.tags(),
            [
                "sports",
                "sports/running",
                "sports/running/marathons",
                "sports/running/trail-running",
                "sports/cycling",
                "travel",
                "travel/flights"
            ]
        );
        let again = Taxonomy::parse(&t.to_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(again, t);
        assert_eq!(
            Taxonomy::from_tags(["sports/running/marathons", "sports/cycling"]).tags(),
            [
                "sports",
                "sports/running",
                "sports/running/marathons",
                "sports/cycling"
            ]
        );
    }

    #[test]
    fn suggests_the_same_leaf_elsewhere_or_the_closest_spelling() {
        let t = Taxonomy::parse(SMALL, Path::new("taxonomy.toml")).unwrap();
        assert_eq!(t.suggest("sports/outdoor/running"), Some("sports/running"));
        assert_eq!(t.suggest("sports/runing"), Some("sports/running"));
        assert_eq!(t.suggest("finance"), None);
    }

    #[test]
    fn a_broken_file_is_refused_at_its_line_and_column() {
        let path = Path::new("campaigns/taxonomy.toml");
        let orphan = format!("{SMALL}\"food/recipes\" = [\"quick\"]\n");
        let error = Taxonomy::parse(&orphan, path).unwrap_err().to_string();
        assert!(
            error.starts_with("campaigns/taxonomy.toml:7:1: `food/recipes` is not in the tree"),
            "{error}"
        );
        let bad_name = SMALL.replace("\"flights\"", "\"Flights/x\"");
        assert!(
            Taxonomy::parse(&bad_name, path)
                .unwrap_err()
                .to_string()
                .contains(":6:10: `Flights/x` is not a tag name")
        );
        let not_toml = Taxonomy::parse("roots = [", path).unwrap_err().to_string();
        assert!(
            not_toml.starts_with("campaigns/taxonomy.toml:1:"),
            "{not_toml}"
        );
    }
}
