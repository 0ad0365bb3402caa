//! The route table of a backend: each path it serves, the operations it takes there and the
//! fields it reads. One table per backend is the single source of two things: the core's
//! dispatch refuses what the table does not name (404 for a path, 405 for an operation,
//! [`super::check_route`]) before the backend's handler runs, and `sys/internal/specs/openapi` describes
//! exactly the table. A route the table lacks cannot be reached, so the document cannot miss it.
//!
//! Patterns are relative to the mount, segments split by `/`: a literal, `{name}` (one
//! non-empty segment) or `{name+}` (one or more segments; at most one per pattern, literals may follow).
//! One trailing `/` of the request path is ignored (list requests send it). The first entry
//! that matches wins, so more specific patterns come first.

/// A set of operations. `WRITE` covers Vault's `create` and `update` (HTTP `POST`/`PUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ops(u8);

impl Ops {
    pub const READ: Ops = Ops(1);
    pub const WRITE: Ops = Ops(2);
    pub const DELETE: Ops = Ops(4);
    pub const LIST: Ops = Ops(8);
    pub const PATCH: Ops = Ops(16);
    pub const RW: Ops = Ops(1 | 2);
    pub const RWD: Ops = Ops(1 | 2 | 4);
    pub const RL: Ops = Ops(1 | 8);

    pub const fn with(self, other: Ops) -> Ops {
        Ops(self.0 | other.0)
    }

    pub const fn has(self, other: Ops) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The JSON type of a field, as the spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Boolean,
    Object,
    /// An array of strings (Vault also takes a comma-separated string).
    Strings,
    /// An array of integers.
    Integers,
    /// Seconds or a Go duration string (`90`, `"1h"`).
    Duration,
}

/// A request field: in the JSON body of writes, in the query of reads.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub description: &'static str,
}

impl Field {
    pub const fn opt(name: &'static str, kind: Kind, description: &'static str) -> Field {
        Field {
            name,
            kind,
            required: false,
            description,
        }
    }

    pub const fn req(name: &'static str, kind: Kind, description: &'static str) -> Field {
        Field {
            name,
            kind,
            required: true,
            description,
        }
    }
}

/// One route of a backend.
#[derive(Debug, Clone, Copy)]
pub struct PathSpec {
    /// Relative to the mount (see the module doc for the syntax).
    pub pattern: &'static str,
    /// Names the operation ids in the spec (`<mount>-<id>-<method>`); unique in its table.
    pub id: &'static str,
    pub ops: Ops,
    pub summary: &'static str,
    /// Fields of `POST`/`PATCH` bodies.
    pub body: &'static [Field],
    /// More body fields, shared with other tables (the token parameters every auth role
    /// takes, `auth::role::TOKEN_FIELDS`); listed after `body`.
    pub shared: &'static [Field],
    /// Query fields of `GET`.
    pub query: &'static [Field],
}

impl PathSpec {
    pub const fn new(
        pattern: &'static str,
        id: &'static str,
        ops: Ops,
        summary: &'static str,
    ) -> Self {
        PathSpec {
            pattern,
            id,
            ops,
            summary,
            body: &[],
            shared: &[],
            query: &[],
        }
    }

    pub const fn body(mut self, body: &'static [Field]) -> Self {
        self.body = body;
        self
    }

    pub const fn shared(mut self, fields: &'static [Field]) -> Self {
        self.shared = fields;
        self
    }

    /// Every body field: `body`, then `shared`.
    pub fn body_fields(&self) -> impl Iterator<Item = &'static Field> {
        self.body.iter().chain(self.shared)
    }

    pub const fn query(mut self, query: &'static [Field]) -> Self {
        self.query = query;
        self
    }

    /// The pattern's parameters, in order, without braces or `+`.
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.pattern.split('/').filter_map(|s| {
            s.strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.trim_end_matches('+'))
        })
    }

    /// Does `rel` end in `/` right where the pattern's `{name+}` (last) begins?
    fn matches_empty_rest(&self, rel: &str) -> bool {
        match self
            .pattern
            .strip_suffix('}')
            .and_then(|p| p.rsplit_once('{'))
        {
            Some((head, name)) if name.ends_with('+') && !head.contains('{') => rel == head,
            _ => false,
        }
    }

    /// Does `rel` (trailing `/` already removed) match the pattern?
    fn matches(&self, rel: &str) -> bool {
        let segs: Vec<&str> = self.pattern.split('/').collect();
        let parts: Vec<&str> = rel.split('/').collect();
        let one = |seg: &str, got: &str| {
            if seg.starts_with('{') {
                !got.is_empty()
            } else {
                seg == got
            }
        };
        match segs.iter().position(|s| s.ends_with("+}")) {
            None => segs.len() == parts.len() && segs.iter().zip(&parts).all(|(s, g)| one(s, g)),
            Some(i) => {
                // The rest takes one or more segments between the literal head and tail.
                let tail = segs.len() - i - 1;
                parts.len() > i + tail
                    && segs[..i].iter().zip(&parts[..i]).all(|(s, g)| one(s, g))
                    && segs[i + 1..]
                        .iter()
                        .zip(&parts[parts.len() - tail..])
                        .all(|(s, g)| one(s, g))
                    && !parts[i].is_empty()
            }
        }
    }
}

/// The entry of `table` serving `rel`, if any: the first match with one trailing `/` ignored;
/// failing that, a `{name+}` pattern whose rest is empty (`data/`), which the handler answers
/// (kv: 400 for an empty key), as it did before the table.
pub fn find<'a>(table: &'a [PathSpec], rel: &str) -> Option<&'a PathSpec> {
    let trimmed = rel.strip_suffix('/').unwrap_or(rel);
    table
        .iter()
        .find(|p| p.matches(trimmed))
        .or_else(|| table.iter().find(|p| p.matches_empty_rest(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[PathSpec] = &[
        PathSpec::new("config", "config", Ops::RW, "config"),
        PathSpec::new("metadata", "metadata-root", Ops::LIST, "list"),
        PathSpec::new(
            "metadata/{path+}",
            "metadata",
            Ops::RWD.with(Ops::LIST),
            "m",
        ),
        PathSpec::new("roles/{name}/secret-id", "secret-id", Ops::WRITE, "s"),
        PathSpec::new("roles/{name}", "role", Ops::RWD, "r"),
        PathSpec::new("mounts/{path+}/tune", "tune", Ops::RW, "t"),
        PathSpec::new("mounts/{path+}", "mount", Ops::RWD, "m"),
    ];

    #[test]
    fn patterns_match_literals_segments_and_rests() {
        let id = |rel| find(TABLE, rel).map(|p| p.id);
        assert_eq!(id("config"), Some("config"));
        assert_eq!(id("config/"), Some("config"));
        assert_eq!(id("config/x"), None);
        assert_eq!(id("metadata"), Some("metadata-root"));
        assert_eq!(id("metadata/"), Some("metadata-root"));
        assert_eq!(id("metadata/a/b/c"), Some("metadata"));
        assert_eq!(id("metadata/a/b/"), Some("metadata"));
        assert_eq!(id("roles/web"), Some("role"));
        assert_eq!(id("roles/web/secret-id"), Some("secret-id"));
        assert_eq!(id("roles/web/other"), None);
        assert_eq!(id("roles"), None);
        assert_eq!(id(""), None);
        assert_eq!(id("nothing"), None);
        assert_eq!(id("mounts/a/b/tune"), Some("tune"));
        assert_eq!(id("mounts/a/tune/"), Some("tune"));
        assert_eq!(id("mounts/tune"), Some("mount"));
        assert_eq!(id("mounts/a/b"), Some("mount"));
        assert_eq!(id("mounts"), None);
        // An empty rest reaches the handler, which says what is wrong.
        assert_eq!(id("mounts/"), Some("mount"));
        assert_eq!(id("metadata//"), None);
    }

    #[test]
    fn params_drop_braces_and_plus() {
        let p = PathSpec::new("a/{one}/b/{rest+}", "x", Ops::READ, "");
        assert_eq!(p.params().collect::<Vec<_>>(), ["one", "rest"]);
    }
}
