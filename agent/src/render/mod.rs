//! Rendering: secret data to file bytes (raw field, JSON, dotenv, templates).
//!
//! [`Renderer::render`] turns one file's spec and the current data of every source into bytes
//! (zeroized when dropped). Errors name the file, the secret and the field, never a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use hush_api::wire::Data;
use minijinja::Environment;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::{Config, FileSpec, Format, Source};
use crate::template;

/// Why a file could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The secret has not been read (yet), or is gone.
    #[error("file {file:?}: secret {secret} is not available")]
    Unavailable { file: String, secret: String },
    #[error("file {file:?}: secret {secret} has no field {field:?}")]
    NoField {
        file: String,
        secret: String,
        field: String,
    },
    #[error("file {file:?}: field {key:?} of secret {secret} is not a valid dotenv name")]
    DotenvKey {
        file: String,
        secret: String,
        key: String,
    },
    #[error("{0}")]
    Template(String),
}

/// Renders the files of one config. Templates are compiled once.
pub struct Renderer {
    env: Environment<'static>,
    /// Source index -> the names templates see it under.
    names: Vec<Vec<String>>,
    labels: Vec<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("sources", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(config: &Config) -> Result<Renderer, RenderError> {
        let mut env = template::environment();
        for f in &config.files {
            if let Format::Template { source_text } = &f.format {
                env.add_template_owned(f.name.clone(), source_text.clone())
                    .map_err(|e| RenderError::Template(template::describe(&f.name, &e)))?;
            }
        }
        Ok(Renderer {
            env,
            names: config.sources.iter().map(|s| s.names.clone()).collect(),
            labels: config.sources.iter().map(Source::label).collect(),
        })
    }

    /// The label of source `i` for messages.
    pub fn label(&self, i: usize) -> &str {
        self.labels.get(i).map(String::as_str).unwrap_or("?")
    }

    /// Render `spec` from `data` (indexed like the config's sources; `None`: not available).
    pub fn render(
        &self,
        spec: &FileSpec,
        data: &[Option<Arc<Data>>],
    ) -> Result<Zeroizing<Vec<u8>>, RenderError> {
        let file = &spec.name;
        let get = |i: usize| -> Result<&Data, RenderError> {
            data.get(i)
                .and_then(|d| d.as_deref())
                .ok_or_else(|| RenderError::Unavailable {
                    file: file.clone(),
                    secret: self.label(i).to_string(),
                })
        };
        match &spec.format {
            Format::Raw { source, field } => {
                let d = get(*source)?;
                let v = d.get(field).ok_or_else(|| RenderError::NoField {
                    file: file.clone(),
                    secret: self.label(*source).to_string(),
                    field: field.clone(),
                })?;
                Ok(raw_value(v))
            }
            Format::Json { source } => {
                let d = get(*source)?;
                let bytes = serde_json::to_vec(d).unwrap_or_default();
                Ok(Zeroizing::new(bytes))
            }
            Format::Dotenv { source } => dotenv(file, self.label(*source), get(*source)?),
            Format::Template { .. } => {
                let tmpl = self
                    .env
                    .get_template(file)
                    .map_err(|e| RenderError::Template(template::describe(file, &e)))?;
                let mut secrets: BTreeMap<&str, &Data> = BTreeMap::new();
                for (i, names) in self.names.iter().enumerate() {
                    if let Some(d) = data.get(i).and_then(|d| d.as_deref()) {
                        for n in names {
                            secrets.insert(n, d);
                        }
                    }
                }
                let ctx = minijinja::context! { secrets => secrets };
                let text = tmpl
                    .render(ctx)
                    .map_err(|e| RenderError::Template(template::describe(file, &e)))?;
                Ok(Zeroizing::new(text.into_bytes()))
            }
        }
    }
}

/// A field's value: strings as they are, anything else as JSON.
fn raw_value(v: &Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    })
}

/// `KEY='value'` lines. Single quotes keep everything literal (`$`, `\`, newlines) for shells
/// and dotenv parsers alike; a `'` inside is written `'\''`.
fn dotenv(file: &str, secret: &str, data: &Data) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let mut out = Zeroizing::new(Vec::new());
    for (key, value) in data {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(RenderError::DotenvKey {
                file: file.to_string(),
                secret: secret.to_string(),
                key: key.clone(),
            });
        }
        let value = raw_value(value);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"='");
        for &b in value.iter() {
            if b == b'\'' {
                out.extend_from_slice(b"'\\''");
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b"'\n");
    }
    Ok(out)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
