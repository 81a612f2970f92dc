//! The layout of `src/`, read from its import lines: no file reaches, through the files it imports,
//! back to itself, and neither does a top-level module (a folder of `src/` or a file beside
//! `lib.rs`). The lower modules of the map in `lib.rs` never use the higher ones.
//!
//! Read as text, as a reviewer would: every `use` line and every path written from `crate::` or
//! `super::`, test modules included. Run it alone with `cargo test --test layout`; on failure it
//! prints each circle with the names that tie it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["book", "store"]`) for each file of `src/` but the binary.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ can be listed") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(src).expect("below src/");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") if parts.len() == 1 => continue,
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            if path.extension().is_some_and(|e| e == "rs") {
                found.insert(parts, path);
            }
        }
    }
    found
}

/// The paths a file names: `crate::a::b::C`, `super::x::Y` and `child::Z` (a path into one of
/// its own `children` modules) written anywhere, and every path of a `use` statement (braces
/// expanded), each resolved to a path from the crate root.
fn paths_named(text: &str, module: &[String], children: &[String]) -> Vec<Vec<String>> {
    // `super` is the module one level up, whether the file is `a/b.rs` or `a/b/mod.rs`; inside
    // an inline `mod tests { … }` it is the file's own module. (Inline modules run to the end of
    // their file here: see `inline_modules_close_their_file`.)
    let here: Vec<String> = module.to_vec();
    let mut inline = false;
    let mut named: Vec<(bool, Vec<String>)> = Vec::new();
    let mut statement: Option<String> = None;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let trimmed = code.trim_start();
        inline |= is_inline_module(trimmed);
        let starts = ["use ", "pub use ", "pub(crate) use "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        if let Some(rest) = starts {
            statement = Some(String::new());
            statement.get_or_insert_default().push_str(rest);
        } else if let Some(open) = statement.as_mut() {
            open.push_str(trimmed);
        }
        // A `use` may run over several lines: read once its `;` is in.
        if let Some(whole) = statement.take_if(|s| s.contains(';')) {
            let paths = expand(whole.trim_end().trim_end_matches(';'));
            named.extend(paths.into_iter().map(|p| (inline, p)));
        }
        let roots = ["crate", "super"]
            .into_iter()
            .chain(children.iter().map(String::as_str));
        for root in roots.map(|r| format!("{r}::")) {
            let mut from = 0;
            while let Some(at) = code[from..].find(&root) {
                let start = from + at;
                from = start + root.len();
                let before = code[..start].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: String = code[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                named.push((inline, path.split("::").map(str::to_owned).collect()));
            }
        }
    }
    named
        .into_iter()
        .filter_map(|(inline, path)| {
            let (start, rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
                Some("crate") => (Vec::new(), &path[1..]),
                Some("super") => {
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    let depth = here.len() + usize::from(inline);
                    (
                        here[..depth.checked_sub(ups)?.min(here.len())].to_vec(),
                        &path[ups..],
                    )
                }
                Some("self") => (here.clone(), &path[1..]),
                Some(child) if children.iter().any(|c| c == child) => (here.clone(), &path[..]),
                _ => return None,
            };
            let mut full = start;
            full.extend(rest.iter().filter(|s| !s.is_empty() && *s != "*").cloned());
            Some(full)
        })
        .collect()
}

/// Whether a line opens an inline module (`mod tests {`), not a module file (`mod tests;`).
fn is_inline_module(line: &str) -> bool {
    let line = line.strip_prefix("pub ").unwrap_or(line);
    line.strip_prefix("mod ")
        .is_some_and(|rest| rest.trim_end().ends_with('{'))
}

/// `a::{b, c::{d, e}}` as `[a::b, a::c::d, a::c::e]` (only what one line holds).
fn expand(text: &str) -> Vec<Vec<String>> {
    let text = text.trim();
    let Some(open) = text.find('{') else {
        let path: Vec<String> = text
            .split(" as ")
            .next()
            .unwrap_or_default()
            .split("::")
            .map(|s| s.trim().to_owned())
            .collect();
        return vec![path];
    };
    let prefix: Vec<String> = text[..open]
        .trim_end_matches("::")
        .split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = text[open + 1..].trim_end_matches('}');
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand(p).into_iter().map(|rest| {
                let mut path = prefix.clone();
                path.extend(rest.into_iter().filter(|s| s != "self"));
                path
            })
        })
        .collect()
}

/// The file a module path lands in: the longest prefix of it that is a module.
fn owner<'a>(
    path: &[String],
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// Each file's imports: the other files it names a path into.
fn imports(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("a source file");
        let children: Vec<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let targets: BTreeSet<Vec<String>> = paths_named(&text, module, &children)
            .iter()
            .filter_map(|path| owner(path, &modules))
            // A module's own file, and the crate root (`lib.rs` only declares modules).
            .filter(|target| *target != module && !target.is_empty())
            .cloned()
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The circles of `graph`: its strongly connected components of more than one node (Tarjan).
fn circles<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        found: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(node: &N, graph: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let n = s.index.len();
        s.index.insert(node.clone(), n);
        s.low.insert(node.clone(), n);
        s.stack.push(node.clone());
        s.on_stack.insert(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if !s.index.contains_key(next) {
                visit(next, graph, s);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node.clone(), low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node.clone(), low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(&top);
                let done = top == *node;
                component.push(top);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(node, graph, &mut state);
        }
    }
    state.found
}

fn describe(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    circle: &[Vec<String>],
) -> String {
    let name = |m: &Vec<String>| format!("crate::{}", m.join("::"));
    let mut out = String::new();
    for from in circle {
        for to in graph[from].iter().filter(|t| circle.contains(t)) {
            out.push_str(&format!("\n  {} -> {}", name(from), name(to)));
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_file_of_src_imports_its_way_back_to_itself() {
    let graph = imports(&src());
    assert!(graph.len() > 30, "the modules of src/ are read: {graph:?}");
    assert_no_circles(&graph, "files");
}

/// Fails with each circle of `graph` and the imports that tie it, if it has any.
fn assert_no_circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, among: &str) {
    let shown: Vec<String> = circles(graph).iter().map(|c| describe(graph, c)).collect();
    assert!(
        shown.is_empty(),
        "import circles among {among}:{}",
        shown.join("\n")
    );
}

#[test]
fn no_top_level_module_imports_its_way_back_to_itself() {
    let files = imports(&src());
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, targets) in files.iter().filter(|(from, _)| !from.is_empty()) {
        let top = from[..1].to_vec();
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(
            targets
                .iter()
                .map(|t| t[..1].to_vec())
                .filter(|t| *t != top),
        );
    }
    assert_no_circles(&graph, "top-level modules");
}

#[test]
fn the_reading_finds_a_circle_where_there_is_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path();
    std::fs::create_dir(src.join("a")).expect("a/");
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").expect("lib.rs");
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod c;\nuse crate::b::{B, other::D};\n",
    )
    .expect("a/mod.rs");
    std::fs::write(src.join("a/c.rs"), "pub fn c() { super::super::b::f() }\n").expect("a/c.rs");
    std::fs::write(
        src.join("b.rs"),
        "pub fn f() -> crate::a::c::C { todo!() }\n",
    )
    .expect("b.rs");
    let graph = imports(src);
    let found = circles(&graph);
    let names: Vec<Vec<String>> = found.into_iter().flatten().collect();
    assert_eq!(
        names,
        [vec!["a".to_owned(), "c".to_owned()], vec!["b".to_owned()]]
    );
}

#[test]
fn inline_modules_close_their_file() {
    // What the reading of `super` above assumes: an inline module (in practice `mod tests`) is
    // the last thing in its file, so every line after its opening is inside it.
    for file in modules(&src()).values() {
        let text = std::fs::read_to_string(file).expect("a source file");
        let lines: Vec<&str> = text.lines().collect();
        let Some(open) = lines.iter().position(|l| is_inline_module(l.trim_start())) else {
            continue;
        };
        let indent = lines[open].len() - lines[open].trim_start().len();
        let close = lines[open..]
            .iter()
            .position(|l| {
                l.len() > indent
                    && l.trim() == "}"
                    && l.starts_with(&" ".repeat(indent))
                    && l.len() == indent + 1
            })
            .map(|at| open + at);
        assert_eq!(
            close,
            Some(lines.len() - 1),
            "{}: an inline module that does not close the file",
            file.display()
        );
    }
}

/// The Layout block of docs/development.md below `src/`: each entry's depth (0 for a top-level file or folder of
/// `src/`) and name (folders end in `/`), in the order written.
fn readme_layout() -> Vec<(usize, String)> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/development.md");
    let readme = std::fs::read_to_string(readme).expect("docs/development.md");
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let block = section
        .split("```\nsrc/\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a block starting `src/`");
    block
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|line| {
            let depth = (line.len() - line.trim_start().len()) / 2 - 1;
            let name = line.split_whitespace().next()?;
            (name.ends_with(".rs") || name.ends_with('/')).then(|| (depth, name.to_owned()))
        })
        .collect()
}

#[test]
fn the_layout_lists_every_file_of_src_and_nothing_else() {
    let mut listed = BTreeSet::new();
    let mut folders: Vec<String> = Vec::new();
    for (depth, name) in readme_layout() {
        folders.truncate(depth);
        match name.strip_suffix('/') {
            Some(folder) => folders.push(folder.to_owned()),
            None => {
                let path: PathBuf = folders.iter().collect::<PathBuf>().join(&name);
                listed.insert(path);
            }
        }
    }
    let src = src();
    let mut files = BTreeSet::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder of src/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.insert(path.strip_prefix(&src).expect("below src/").to_owned());
            }
        }
    }
    let missing: Vec<_> = files.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&files).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/development.md's Layout misses {missing:?} and names {stale:?}, which are not in src/"
    );
}

/// The top-level modules in the order docs/development.md lists them (the binary's `main.rs` and the crate
/// root `lib.rs` left out).
fn readme_order() -> Vec<String> {
    let mut order: Vec<String> = readme_layout()
        .into_iter()
        .filter(|(depth, _)| *depth == 0)
        .map(|(_, name)| {
            name.trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_owned()
        })
        .filter(|name| name != "main" && name != "lib")
        .collect();
    // A module file and the folder of its children (`bidder.rs`, `bidder/`) are one module.
    order.dedup();
    order
}

#[test]
fn each_top_level_module_uses_only_those_listed_after_it() {
    let order = readme_order();
    let place = |module: &str| order.iter().position(|m| m == module);
    let mut upward = Vec::new();
    for (from, targets) in imports(&src()).iter().filter(|(from, _)| !from.is_empty()) {
        let Some(at) = place(&from[0]) else { continue };
        for to in targets {
            if place(&to[0]).is_some_and(|there| there < at) {
                upward.push(format!(
                    "crate::{} -> crate::{}",
                    from.join("::"),
                    to.join("::")
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports of a module listed earlier:\n{}",
        upward.join("\n")
    );
}

#[test]
fn lib_rs_maps_every_module_in_the_readme_order() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let mut declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let map: String = lib.lines().filter(|l| l.starts_with("//!")).collect();
    // Each module by where the map first names it (rustfmt sorts the declarations themselves).
    declared.sort_by_key(|m| map.find(&format!("[`{m}`]")).unwrap_or(usize::MAX));
    assert_eq!(
        declared,
        readme_order(),
        "lib.rs' map names each module, in docs/development.md's order"
    );
}
