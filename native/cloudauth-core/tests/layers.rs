//! The layering of the crates' modules, kept by a test: each module's
//! imports are read from its source (`use` declarations and the paths in
//! its code that start with `crate::`, `super::`, `self::`, a child module
//! or a name a `use` bound), each resolved to the module that *defines* the
//! item named (re-exports are followed, so `crate::backend::Timeouts` counts
//! as an import of the file that declares `Timeouts`). The test fails,
//! naming the files, when a module imports from a higher layer than its own
//! or when imports close a cycle among a crate's modules.
//!
//! What is not read: `#[cfg(test)]` items (test code may use anything),
//! comments and string literals, macros' inner workings. A `pub use` is a
//! name, not a dependency: it must not point up a layer, but it does not
//! take part in cycles (a parent naming its children's items while they use
//! the parent's is how a facade works).
//!
//! The layers of each crate are the tables below, also drawn in
//! `docs/ARCHITECTURE.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The core's layers, by top-level module: each may import from its own
/// layer and the ones below, never from above. The crate root (`lib.rs`)
/// is the facade and belongs to none.
const CORE_LAYERS: &[(&str, u8)] = &[
    ("vocab", 1),
    ("mechanism", 2),
    ("assembly", 3),
    ("operations", 4),
];

/// The `cloudauth` library (typed requests, xcauth.conf syntax, the wire
/// protocols and their registry, the fuzzing entry points over them).
const PROTOCOL_LIB_LAYERS: &[(&str, u8)] = &[
    ("config_file", 1),
    ("request", 1),
    ("wire", 2),
    ("fuzzing", 3),
];

/// The `cloudauth` program: its vocabulary (and the command line, read
/// first), the pieces below the configuration (logging, listeners, roster
/// sync, the counters), the configuration, the handler (verdict → answer),
/// one connection, stdio mode, and the modes on top.
const PROGRAM_LAYERS: &[(&str, u8)] = &[
    ("vocab", 1),
    ("cli", 1),
    ("logging", 2),
    ("listen", 2),
    ("roster_sync", 2),
    ("sweeper", 2),
    ("monitor", 2),
    ("config", 3),
    ("handler", 4),
    ("serve", 5),
    ("stdio_serve", 6),
    ("sockets", 7),
    ("oneshot", 7),
    ("doctor", 7),
];

type ModPath = Vec<String>;

fn shown(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// One module's source, as far as imports go.
#[derive(Default)]
struct Module {
    file: PathBuf,
    children: BTreeSet<String>,
    /// Names bound by `use`: name → (path as written, `pub`).
    bindings: BTreeMap<String, (Vec<String>, bool)>,
    /// Globs (`use x::*`): path as written, `pub`.
    globs: Vec<(Vec<String>, bool)>,
    /// Paths in the code (outside `use`), as written.
    paths: Vec<Vec<String>>,
    /// Every identifier in the code outside `use` declarations: a name a
    /// `pub use` binds and the module's own code uses is an import of its
    /// own, not only a re-export.
    idents: BTreeSet<String>,
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A module of this crate.
    Module(ModPath),
    /// An item defined in this module of the crate.
    Item(ModPath),
}

struct Crate {
    src: PathBuf,
    modules: BTreeMap<ModPath, Module>,
}

/// Comments and literals out (replaced by spaces), so that only code remains.
fn code_only(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(b' ');
        } else if b[i] == b'r' && (b[i + 1..].starts_with(b"\"") || b[i + 1..].starts_with(b"#")) {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.extend_from_slice(b"\"\"");
            } else {
                out.push(b[i]);
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|c| *c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.extend_from_slice(b"' '");
                    i = e + 1;
                }
                None => {
                    out.push(b'\'');
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `#[cfg(test)]` items out: up to the end of the next `;` or balanced `{…}`.
fn without_test_items(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let b = after.as_bytes();
        let mut i = 0;
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        rest = &after[i.min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// The paths a `use` tree names: (path, bound name or `*`).
fn expand_use(prefix: &[String], tree: &str, out: &mut Vec<(Vec<String>, String)>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = split_path(tree[..open].trim_end_matches("::"));
        let mut pre = prefix.to_vec();
        pre.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&pre, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&pre, &inner[start..], out);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
        None => (tree, None),
    };
    let mut full = prefix.to_vec();
    full.extend(split_path(path));
    let last = full.last().cloned().unwrap_or_default();
    if last == "*" {
        full.pop();
        out.push((full, "*".into()));
        return;
    }
    if last == "self" {
        full.pop();
    }
    let name = alias.unwrap_or_else(|| full.last().cloned().unwrap_or_default());
    if name != "_" {
        out.push((full, name));
    }
}

fn split_path(p: &str) -> Vec<String> {
    p.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Crate {
    /// The modules reachable from `root_file` by `mod` declarations (those
    /// under `#[cfg(test)]` left out).
    fn read(src: &Path, root_file: &str) -> Crate {
        let mut c = Crate {
            src: src.to_path_buf(),
            modules: BTreeMap::new(),
        };
        c.read_module(Vec::new(), src.join(root_file), src.to_path_buf());
        c
    }

    fn read_module(&mut self, path: ModPath, file: PathBuf, dir: PathBuf) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = without_test_items(&code_only(&text));
        let mut m = Module {
            file: file.clone(),
            ..Module::default()
        };
        let mut children = Vec::new();
        // Statements that matter: `mod x;` and `use …;`, at any depth.
        let words = tokens(&code);
        let mut i = 0;
        while i < words.len() {
            let w = words[i].as_str();
            let public = i > 0 && (words[i - 1] == "pub" || words[i - 1] == ")");
            if w == "mod" && i + 2 < words.len() && words[i + 2] == ";" {
                children.push(words[i + 1].clone());
                i += 3;
                continue;
            }
            if w == "use" {
                let mut j = i + 1;
                let mut tree = String::new();
                while j < words.len() && words[j] != ";" {
                    let t = &words[j];
                    if t == "as" {
                        tree.push_str(" as ");
                    } else {
                        tree.push_str(t);
                    }
                    j += 1;
                }
                let mut uses = Vec::new();
                expand_use(&[], &tree, &mut uses);
                for (p, name) in uses {
                    if name == "*" {
                        m.globs.push((p, public));
                    } else {
                        m.bindings.insert(name, (p, public));
                    }
                }
                i = j + 1;
                continue;
            }
            // A use of a name, not its declaration nor a method or field.
            let declares = i > 0
                && matches!(
                    words[i - 1].as_str(),
                    "fn" | "."
                        | "::"
                        | "struct"
                        | "enum"
                        | "trait"
                        | "type"
                        | "mod"
                        | "const"
                        | "static"
                        | "let"
                        | "macro_rules"
                );
            if is_ident(w.as_bytes()[0]) && !declares {
                m.idents.insert(w.to_string());
            }
            // A path: ident (:: ident)+, not itself following `::`.
            if is_ident(w.as_bytes()[0]) && (i == 0 || words[i - 1] != "::") {
                let mut p = vec![w.to_string()];
                let mut j = i + 1;
                while j + 1 < words.len()
                    && words[j] == "::"
                    && is_ident(words[j + 1].as_bytes()[0])
                {
                    p.push(words[j + 1].clone());
                    j += 2;
                }
                if p.len() > 1 {
                    m.paths.push(p);
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
        m.children = children.iter().cloned().collect();
        self.modules.insert(path.clone(), m);
        for child in children {
            let (file, sub) = if dir.join(format!("{child}.rs")).exists() {
                (dir.join(format!("{child}.rs")), dir.join(&child))
            } else {
                (dir.join(&child).join("mod.rs"), dir.join(&child))
            };
            let mut p = path.clone();
            p.push(child);
            self.read_module(p, file, sub);
        }
    }

    /// What `path`, written in module `from`, names in this crate (None:
    /// another crate, or a local name).
    fn resolve(&self, from: &ModPath, path: &[String], depth: u32) -> Option<Target> {
        if depth > 40 || path.is_empty() {
            return None;
        }
        let mut cur: ModPath;
        let mut rest = path;
        match path[0].as_str() {
            "crate" => {
                cur = Vec::new();
                rest = &path[1..];
            }
            "self" | "super" => {
                cur = from.clone();
                while let Some(s) = rest.first() {
                    match s.as_str() {
                        "self" => {}
                        "super" => {
                            cur.pop();
                        }
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            first => {
                let m = self.modules.get(from)?;
                if m.children.contains(first) {
                    cur = from.clone();
                } else if let Some((bound, _)) = m.bindings.get(first) {
                    let t = self.resolve(from, bound, depth + 1)?;
                    match t {
                        Target::Module(mp) => {
                            cur = mp;
                            rest = &path[1..];
                        }
                        item => return Some(item),
                    }
                } else {
                    // Another crate, std, or a name local to the code.
                    return None;
                }
            }
        }
        for seg in rest {
            let m = self.modules.get(&cur)?;
            if m.children.contains(seg) {
                cur.push(seg.clone());
                continue;
            }
            if let Some((bound, _)) = m.bindings.get(seg) {
                match self.resolve(&cur, bound, depth + 1) {
                    Some(Target::Module(mp)) => {
                        cur = mp;
                        continue;
                    }
                    Some(item) => return Some(item),
                    None => return None,
                }
            }
            return Some(Target::Item(cur));
        }
        Some(Target::Module(cur))
    }

    /// Every import of every module: (from, to, written as, is a `pub use`).
    fn imports(&self) -> Vec<(ModPath, ModPath, String, bool)> {
        let mut out = Vec::new();
        for (from, m) in &self.modules {
            let mut add =
                |to: Option<Target>, written: &[String], public: bool, module_counts: bool| {
                    let to = match to {
                        Some(Target::Item(t)) => t,
                        Some(Target::Module(t)) if module_counts => t,
                        _ => return,
                    };
                    if &to != from {
                        out.push((from.clone(), to, written.join("::"), public));
                    }
                };
            for (name, (path, public)) in &m.bindings {
                // Binding a module's name is no import by itself; what is
                // used through it is (found among the paths).
                let reexport_only = *public && !m.idents.contains(name);
                add(self.resolve(from, path, 0), path, reexport_only, false);
            }
            for (path, public) in &m.globs {
                add(self.resolve(from, path, 0), path, *public, true);
            }
            for path in &m.paths {
                add(self.resolve(from, path, 0), path, false, true);
            }
        }
        out
    }

    fn file(&self, m: &ModPath) -> String {
        let f = &self.modules[m].file;
        f.strip_prefix(&self.src).unwrap_or(f).display().to_string()
    }
}

/// Code as words: identifiers (with `r#`), `::`, and single punctuation.
fn tokens(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(code[start..i].to_string());
        } else if b[i..].starts_with(b"::") {
            out.push("::".into());
            i += 2;
        } else {
            let len = code[i..].chars().next().map_or(1, char::len_utf8);
            out.push(code[i..i + len].to_string());
            i += len;
        }
    }
    out
}

fn layer_of(layers: &[(&str, u8)], m: &ModPath) -> Option<u8> {
    let top = m.first()?;
    layers.iter().find(|(n, _)| n == top).map(|(_, l)| *l)
}

/// The problems with `krate` under `layers`, one line each (empty: none).
fn problems(krate: &Crate, layers: &[(&str, u8)]) -> Vec<String> {
    let mut out = Vec::new();
    for m in krate.modules.keys() {
        if !m.is_empty() && layer_of(layers, m).is_none() {
            out.push(format!(
                "{} ({}) is in no layer: add it to the table",
                krate.file(m),
                shown(m)
            ));
        }
    }
    let imports = krate.imports();
    let mut seen = BTreeSet::new();
    for (from, to, written, _) in &imports {
        let (Some(a), Some(b)) = (layer_of(layers, from), layer_of(layers, to)) else {
            continue;
        };
        if b > a && seen.insert((from.clone(), to.clone())) {
            out.push(format!(
                "upward import: {} (layer {a}) uses {} (layer {b}) as `{written}`",
                krate.file(from),
                krate.file(to)
            ));
        }
    }
    // Cycles among the code's own imports (re-exports left out).
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for m in krate.modules.keys() {
        graph.entry(m.clone()).or_default();
    }
    for (from, to, _, public) in &imports {
        if !public {
            graph.entry(from.clone()).or_default().insert(to.clone());
        }
    }
    for scc in strongly_connected(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let mut files: Vec<String> = scc.iter().map(|m| krate.file(m)).collect();
        files.sort();
        let mut line = format!(
            "import cycle of {} files: {}; for example ",
            scc.len(),
            files.join(", ")
        );
        let cycle = one_cycle(&graph, &scc);
        let _ = write!(
            line,
            "{}",
            cycle
                .iter()
                .map(|m| krate.file(m))
                .collect::<Vec<_>>()
                .join(" → ")
        );
        out.push(line);
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        stack: Vec<&'g ModPath>,
        on_stack: BTreeSet<&'g ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g ModPath) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let Some((w, _)) = graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One cycle through the component's first module (a shortest one, by
/// breadth-first search), ending where it starts.
fn one_cycle(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>, scc: &[ModPath]) -> Vec<ModPath> {
    let members: BTreeSet<&ModPath> = scc.iter().collect();
    let start = scc.iter().min().expect("non-empty");
    let mut prev: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in &graph[v] {
            if !members.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.clone()];
                let mut at = v;
                while at != start {
                    path.push(at.clone());
                    at = prev[at];
                }
                path.push(start.clone());
                path.reverse();
                return path;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    scc.to_vec()
}

/// The source directory of a crate of this workspace. `CARGO_MANIFEST_DIR`
/// is read when the test runs, so the compiled test can be pointed at
/// another checkout (how its failing on an older tree was checked).
fn src_of(krate: &str) -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().expect("native/").join(krate).join("src")
}

fn assert_layered(krate: &Crate, layers: &[(&str, u8)]) {
    let found = problems(krate, layers);
    assert!(
        found.is_empty(),
        "{}: {} layering problem(s):\n  {}",
        krate.src.display(),
        found.len(),
        found.join("\n  ")
    );
}

#[test]
fn core_imports_go_down_the_layers_without_cycles() {
    let core = Crate::read(&src_of("cloudauth-core"), "lib.rs");
    assert!(core.modules.len() > 40, "read the core's modules");
    assert_layered(&core, CORE_LAYERS);
}

#[test]
fn protocol_library_imports_go_down_the_layers_without_cycles() {
    let lib = Crate::read(&src_of("cloudauth"), "lib.rs");
    assert_layered(&lib, PROTOCOL_LIB_LAYERS);
}

#[test]
fn program_imports_go_down_the_layers_without_cycles() {
    let program = Crate::read(&src_of("cloudauth"), "main.rs");
    assert!(program.modules.len() > 10, "read the program's modules");
    assert_layered(&program, PROGRAM_LAYERS);
}

// The scanner itself, on small trees written here: it must see an upward
// import, a cycle (also through a `use` alias and a re-export), and no
// cycle where a parent only re-exports its children's names.

fn tree(files: &[(&str, &str)]) -> (tempdir::Dir, Crate) {
    let dir = tempdir::Dir::new();
    for (name, text) in files {
        let p = dir.0.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    let c = Crate::read(&dir.0, "lib.rs");
    (dir, c)
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "cloudauth-layers-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const TWO: &[(&str, u8)] = &[("low", 1), ("high", 2)];

#[test]
fn an_upward_import_is_named_with_both_files() {
    let (_d, c) = tree(&[
        ("lib.rs", "mod low;\nmod high;\npub use low::clock;\n"),
        ("low/mod.rs", "pub mod clock;\n"),
        ("low/clock.rs", "// crate::high::Thing in a comment is no import\npub fn now() -> u64 { crate::high::Thing::N }\n"),
        ("high.rs", "pub struct Thing;\nimpl Thing { pub const N: u64 = 1; }\n"),
    ]);
    let p = problems(&c, TWO);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("upward import: low/clock.rs (layer 1) uses high.rs (layer 2)"),
        "{p:?}"
    );
}

#[test]
fn a_cycle_through_an_alias_and_a_reexport_is_found() {
    let (_d, c) = tree(&[
        ("lib.rs", "mod low;\npub use low::{a, b};\n"),
        ("low/mod.rs", "pub mod a;\npub mod b;\n"),
        // a uses b's item through the crate root's re-export of `b`…
        (
            "low/a.rs",
            "use crate::b;\npub fn f() { b::g() }\npub struct A;\n",
        ),
        // …and b uses a's type through `super`.
        (
            "low/b.rs",
            "use super::a::{self as other};\npub fn g() {}\npub fn h(_: other::A) {}\n",
        ),
    ]);
    let p = problems(&c, TWO);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("import cycle of 2 files: low/a.rs, low/b.rs"),
        "{p:?}"
    );
}

#[test]
fn a_reexported_name_the_module_also_uses_is_an_import() {
    let (_d, c) = tree(&[
        ("lib.rs", "mod low;\n"),
        (
            "low/mod.rs",
            "pub mod client;\npub use client::Client;\npub struct Account;\npub type Build = fn(&Client);\n",
        ),
        ("low/client.rs", "pub struct Client;\npub fn who() -> super::Account { super::Account }\n"),
    ]);
    let p = problems(&c, TWO);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("import cycle of 2 files: low/client.rs, low/mod.rs"),
        "{p:?}"
    );
}

#[test]
fn a_parent_reexporting_its_children_is_no_cycle() {
    let (_d, c) = tree(&[
        ("lib.rs", "mod low;\n"),
        (
            "low/mod.rs",
            "mod kind;\npub use kind::Kind;\npub trait Plugin { fn kind(&self) -> Kind; }\n#[cfg(test)]\nmod tests { use crate::high::X; }\n",
        ),
        ("low/kind.rs", "pub enum Kind { A }\npub fn all() -> Vec<super::Kind> { vec![] }\n"),
    ]);
    assert_eq!(problems(&c, TWO), Vec::<String>::new());
}
