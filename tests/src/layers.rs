//! The layer check: every `crate::` edge of the store and agent crates must point down.
//!
//! `docs/ARCHITECTURE.md` lists the layers in fenced blocks whose info string is `layers`:
//!
//! ```text
//! [store]          a scope: store/src, the crate root; [store/core] is store/src/core
//! storage          one layer a line, lowest first
//! auth engines     siblings: they may not use each other
//! ```
//!
//! The check walks each crate's module tree as the compiler does (from `lib.rs`, following
//! `mod` declarations and `#[path]`; `#[cfg(test)]` modules and items are left out), reads
//! every `use` (with `crate::`, `super::`, `self::` or a child module first) and every
//! `crate::`/`super::` path written in code, resolves it to the deepest module that exists, and
//! then, in every scope holding both ends under different children, demands that the used child
//! sits on a lower line than the user. A scope's own file (`mod.rs`, `lib.rs`) is named `mod`;
//! unlisted, it sits above every layer of its scope. A block must list every child module of its
//! folder, and only modules that exist. Paths inside macro invocations are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One broken rule, with the file and line it was found at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// The layers of one scope, lowest first; each layer holds one or more sibling names.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub layers: Vec<Vec<String>>,
    /// Line of the scope header in the document.
    pub line: usize,
}

impl Scope {
    fn rank(&self, name: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|layer| layer.iter().any(|n| n == name))
    }
}

/// The scopes of a document: `"store"`, `"store/core"`, ... -> layers.
pub type Spec = BTreeMap<String, Scope>;

/// Reads the `layers` blocks of a Markdown document.
pub fn parse_spec(markdown: &str) -> Result<Spec, String> {
    let mut spec = Spec::new();
    let mut in_block = false;
    let mut current: Option<String> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = raw.trim();
        if !in_block {
            if trimmed.starts_with("```") && trimmed.trim_start_matches('`').trim() == "layers" {
                in_block = true;
                current = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            in_block = false;
            continue;
        }
        let line = trimmed.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {lineno}: a scope header is `[crate/path]`"))?
                .trim()
                .to_string();
            if spec.contains_key(&name) {
                return Err(format!("line {lineno}: scope [{name}] is listed twice"));
            }
            spec.insert(
                name.clone(),
                Scope {
                    layers: Vec::new(),
                    line: lineno,
                },
            );
            current = Some(name);
            continue;
        }
        let scope = current
            .as_ref()
            .ok_or_else(|| format!("line {lineno}: a layer before any `[scope]` header"))?;
        let names: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let entry = spec.get_mut(scope).expect("scope inserted");
        for n in &names {
            if entry.rank(n).is_some() {
                return Err(format!("line {lineno}: `{n}` is listed twice in [{scope}]"));
            }
        }
        entry.layers.push(names);
    }
    if in_block {
        return Err("a `layers` block is not closed".into());
    }
    Ok(spec)
}

/// A module of a crate (its path from the crate root is the key it is kept under).
#[derive(Debug, Clone)]
struct Module {
    children: BTreeSet<String>,
}

/// One `crate::` edge: the using module, the path it names (absolute, from the crate root).
#[derive(Debug)]
struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    file: PathBuf,
    line: usize,
}

/// A crate read from `lib.rs`: its modules (test-only ones left out) and their edges.
#[derive(Debug, Default)]
struct CrateTree {
    modules: BTreeMap<Vec<String>, Module>,
    /// `#[macro_export]` macros sit at the crate root by name, but belong to their module.
    macros: BTreeMap<String, Vec<String>>,
    edges: Vec<Edge>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if !a.path().is_ident("cfg") {
            return false;
        }
        let tokens = match &a.meta {
            syn::Meta::List(list) => list.tokens.to_string().replace(' ', ""),
            _ => return false,
        };
        tokens == "test" || tokens.starts_with("all(test,") || tokens.contains(",test)")
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Where a module's own file is, and the folder its `mod x;` children are looked up in.
struct Place {
    file: PathBuf,
    child_dir: PathBuf,
}

impl CrateTree {
    fn read(src: &Path) -> Result<CrateTree, String> {
        let mut tree = CrateTree::default();
        let lib = src.join("lib.rs");
        let text = std::fs::read_to_string(&lib)
            .map_err(|e| format!("{}: cannot read: {e}", lib.display()))?;
        let file =
            syn::parse_file(&text).map_err(|e| format!("{}: cannot parse: {e}", lib.display()))?;
        tree.read_items(
            Vec::new(),
            &file.items,
            &Place {
                file: lib.clone(),
                child_dir: src.to_path_buf(),
            },
        )?;
        Ok(tree)
    }

    fn read_items(
        &mut self,
        module: Vec<String>,
        items: &[syn::Item],
        place: &Place,
    ) -> Result<(), String> {
        self.modules.insert(
            module.clone(),
            Module {
                children: BTreeSet::new(),
            },
        );
        let mut children = Vec::new();
        for item in items {
            if let syn::Item::Macro(m) = item {
                let exported = m.attrs.iter().any(|a| a.path().is_ident("macro_export"));
                if let (true, Some(name)) = (exported, &m.ident) {
                    self.macros.insert(name.to_string(), module.clone());
                }
            }
            let syn::Item::Mod(m) = item else { continue };
            if is_cfg_test(&m.attrs) {
                continue;
            }
            let name = m.ident.to_string();
            let mut path = module.clone();
            path.push(name.clone());
            let child_place = if let Some((_, inner)) = &m.content {
                children.push((path, inner.clone(), place_inline(place, &name)));
                continue;
            } else if let Some(rel) = path_attr(&m.attrs) {
                let file = place.file.parent().unwrap_or(Path::new(".")).join(rel);
                let child_dir = child_dir_of(&file);
                Place { file, child_dir }
            } else {
                let flat = place.child_dir.join(format!("{name}.rs"));
                let nested = place.child_dir.join(&name).join("mod.rs");
                if flat.exists() {
                    Place {
                        child_dir: place.child_dir.join(&name),
                        file: flat,
                    }
                } else if nested.exists() {
                    Place {
                        child_dir: place.child_dir.join(&name),
                        file: nested,
                    }
                } else {
                    return Err(format!(
                        "{}: no file for `mod {name};`",
                        place.file.display()
                    ));
                }
            };
            let text = std::fs::read_to_string(&child_place.file)
                .map_err(|e| format!("{}: cannot read: {e}", child_place.file.display()))?;
            let file = syn::parse_file(&text)
                .map_err(|e| format!("{}: cannot parse: {e}", child_place.file.display()))?;
            children.push((path, file.items, child_place));
        }
        let names: BTreeSet<String> = children
            .iter()
            .map(|(p, _, _)| p.last().cloned().unwrap_or_default())
            .collect();
        self.modules.get_mut(&module).expect("inserted").children = names.clone();
        let mut visitor = Refs {
            module: &module,
            children: &names,
            found: Vec::new(),
        };
        for item in items {
            visitor.visit_item(item);
        }
        for (to, line) in visitor.found {
            self.edges.push(Edge {
                from: module.clone(),
                to,
                file: place.file.clone(),
                line,
            });
        }
        for (path, items, child_place) in children {
            self.read_items(path, &items, &child_place)?;
        }
        Ok(())
    }

    /// The deepest module that `path` names (an item's path ends at its module).
    fn resolve(&self, path: &[String]) -> Vec<String> {
        if let Some(home) = path.first().and_then(|name| self.macros.get(name)) {
            return home.clone();
        }
        let mut module: Vec<String> = Vec::new();
        for seg in path {
            let Some(m) = self.modules.get(&module) else {
                break;
            };
            if !m.children.contains(seg) {
                break;
            }
            module.push(seg.clone());
        }
        module
    }
}

fn place_inline(parent: &Place, name: &str) -> Place {
    Place {
        file: parent.file.clone(),
        child_dir: parent.child_dir.join(name),
    }
}

fn child_dir_of(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") => dir,
        _ => dir.join(file.file_stem().unwrap_or_default()),
    }
}

/// Collects the crate-relative paths that one module's items name.
struct Refs<'a> {
    module: &'a [String],
    children: &'a BTreeSet<String>,
    found: Vec<(Vec<String>, usize)>,
}

impl Refs<'_> {
    /// `segments` as written -> an absolute path from the crate root, or None when external.
    fn absolute(&self, segments: &[String], in_use: bool) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.to_vec(),
            "super" => {
                let mut base = self.module.to_vec();
                let mut rest = segments;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base.extend(rest.iter().filter(|s| *s != "self").cloned());
                return Some(base);
            }
            // A `use` may start at a child module (2018 paths); code paths that do are local.
            name if in_use && self.children.contains(name) => {
                let mut base = self.module.to_vec();
                base.push(name.to_string());
                base.extend(segments[1..].iter().filter(|s| *s != "self").cloned());
                return Some(base);
            }
            _ => return None,
        };
        base.extend(segments[1..].iter().filter(|s| *s != "self").cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.record(prefix, true, line);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.record(prefix, true, line);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.record(prefix, true, line),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, line);
                }
            }
        }
    }

    fn record(&mut self, segments: &[String], in_use: bool, line: usize) {
        if let Some(abs) = self.absolute(segments, in_use) {
            self.found.push((abs, line));
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(_) => return, // read as a module of its own
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let line = u.use_token.span.start().line;
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &u.tree, line);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() >= 2 && path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            if matches!(segments[0].as_str(), "crate" | "super" | "self") {
                let line = path.segments[0].ident.span().start().line;
                self.record(&segments, false, line);
            }
        }
        syn::visit::visit_path(self, path);
    }

    // `pub(crate)` and `pub(in crate::x)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
}

/// Checks the crates named by the document's scopes against it. `root` holds the document
/// (`docs/ARCHITECTURE.md`) and the crate folders (`store/src`, ...).
pub fn check_repo(root: &Path) -> Result<Vec<Violation>, String> {
    let doc_path = root.join("docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("{}: cannot read: {e}", doc_path.display()))?;
    let spec = parse_spec(&doc).map_err(|e| format!("{}: {e}", doc_path.display()))?;
    let crates: BTreeSet<&str> = spec
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k))
        .collect();
    let mut out = Vec::new();
    for krate in crates {
        if !spec.contains_key(krate) {
            out.push(Violation {
                file: doc_path.clone(),
                line: 0,
                message: format!("sub-scopes of `{krate}` are listed, but no [{krate}] block"),
            });
            continue;
        }
        let tree = CrateTree::read(&root.join(krate).join("src"))?;
        out.extend(check_crate(krate, &tree, &spec, &doc_path, root));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_crate(
    krate: &str,
    tree: &CrateTree,
    spec: &Spec,
    doc_path: &Path,
    root: &Path,
) -> Vec<Violation> {
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
    let mut out = Vec::new();
    // Scopes of this crate, as module paths.
    let scopes: Vec<(Vec<String>, &Scope, &str)> = spec
        .iter()
        .filter(|(k, _)| k.as_str() == krate || k.starts_with(&format!("{krate}/")))
        .map(|(k, s)| {
            let path = k.split('/').skip(1).map(str::to_string).collect::<Vec<_>>();
            (path, s, k.as_str())
        })
        .collect();
    // Each block lists exactly the child modules of its folder.
    for (path, scope, name) in &scopes {
        let Some(module) = tree.modules.get(path) else {
            out.push(Violation {
                file: rel(doc_path),
                line: scope.line,
                message: format!("[{name}]: no such module in {krate}/src"),
            });
            continue;
        };
        for child in &module.children {
            if scope.rank(child).is_none() {
                out.push(Violation {
                    file: rel(doc_path),
                    line: scope.line,
                    message: format!("[{name}] does not list module `{child}`"),
                });
            }
        }
        for listed in scope.layers.iter().flatten() {
            if listed != "mod" && !module.children.contains(listed) {
                out.push(Violation {
                    file: rel(doc_path),
                    line: scope.line,
                    message: format!("[{name}] lists `{listed}`, which is not a module there"),
                });
            }
        }
    }
    for edge in &tree.edges {
        let to = tree.resolve(&edge.to);
        if to == edge.from {
            continue;
        }
        for depth in 0..=edge.from.len().min(to.len()) {
            let a = edge.from.get(depth).map_or("mod", String::as_str);
            let b = to.get(depth).map_or("mod", String::as_str);
            if a == b {
                continue;
            }
            let scope_path = &edge.from[..depth];
            let Some((_, scope, name)) = scopes.iter().find(|(p, _, _)| p == scope_path) else {
                break; // no rule for this folder
            };
            let rank_a = scope.rank(a);
            let rank_b = scope.rank(b);
            let top = scope.layers.len();
            let (ra, rb) = match (a, rank_a, b, rank_b) {
                (_, Some(ra), _, Some(rb)) => (ra, rb),
                ("mod", None, _, Some(rb)) => (top, rb),
                (_, Some(ra), "mod", None) => (ra, top),
                _ => break, // an unlisted module: reported above
            };
            let used = display_path(krate, &to);
            let user = display_path(krate, &edge.from);
            let kind = match rb.cmp(&ra) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Equal => "sideways",
                std::cmp::Ordering::Greater => "upward",
            };
            let why = match kind {
                "sideways" => format!("in [{name}], `{a}` and `{b}` share a line"),
                _ if rank_b.is_none() => format!(
                    "in [{name}], `mod` (the folder's own file) is not listed, so it sits above every layer"
                ),
                _ => format!("in [{name}], `{b}` is listed above `{a}`"),
            };
            out.push(Violation {
                file: rel(&edge.file),
                line: edge.line,
                message: format!("{kind} edge: {user} uses {used}; {why}"),
            });
            break;
        }
    }
    out
}

fn display_path(krate: &str, path: &[String]) -> String {
    if path.is_empty() {
        format!("{krate} (lib.rs)")
    } else {
        format!("{krate}::{}", path.join("::"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_reads_scopes_and_siblings() {
        let doc = "text\n```layers\n[store]\nstorage # the bottom\nauth engines\n\n[store/core]\nrouter\n```\n";
        let spec = parse_spec(doc).unwrap();
        assert_eq!(
            spec["store"].layers,
            vec![vec!["storage"], vec!["auth", "engines"]]
        );
        assert_eq!(spec["store/core"].layers, vec![vec!["router"]]);
    }

    #[test]
    fn spec_errors_are_exact() {
        assert_eq!(
            parse_spec("```layers\nstorage\n```").unwrap_err(),
            "line 2: a layer before any `[scope]` header"
        );
        assert_eq!(
            parse_spec("```layers\n[a]\nx\nx\n```").unwrap_err(),
            "line 4: `x` is listed twice in [a]"
        );
        assert_eq!(
            parse_spec("```layers\n[a]\nx\n").unwrap_err(),
            "a `layers` block is not closed"
        );
    }
}
