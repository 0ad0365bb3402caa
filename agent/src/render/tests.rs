//! Rendering of each format, and errors that name the file but never a value.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::config::{parse_toml, Config};

const BASE: &str = r#"
[server]
addr = "http://127.0.0.1:8200"
token_file = "/t"
[destination]
path = "/d"
[secrets]
db = "secret/data/app/db"
api = "secret/data/app/api"
"#;

fn config(files: &str) -> Config {
    let text = format!("{BASE}{files}");
    Config::from_raw(parse_toml(Path::new("test.toml"), &text).unwrap()).unwrap()
}

fn data(v: serde_json::Value) -> Option<Arc<Data>> {
    Some(Arc::new(v.as_object().cloned().unwrap()))
}

/// Data indexed like the config's sources: db, then api.
fn both(c: &Config) -> Vec<Option<Arc<Data>>> {
    c.sources
        .iter()
        .map(|s| match s.path.as_str() {
            "secret/data/app/db" => data(json!({
                "user": "app", "password": "s3cr'et $HOME\nline2", "port": 5432, "tls": true
            })),
            _ => data(json!({"key": "k-123", "scopes": ["a", "b"]})),
        })
        .collect()
}

fn render(c: &Config, name: &str, d: &[Option<Arc<Data>>]) -> Result<String, RenderError> {
    let r = Renderer::new(c).unwrap();
    let spec = c.files.iter().find(|f| f.name == name).unwrap();
    r.render(spec, d)
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

#[test]
fn raw_json_and_dotenv() {
    let c = config(
        r#"
[[file]]
name = "pw"
secret = "db"
field = "password"
[[file]]
name = "port"
secret = "db"
field = "port"
[[file]]
name = "api.json"
secret = "api"
[[file]]
name = "db.env"
secret = "db"
format = "dotenv"
"#,
    );
    let d = both(&c);
    assert_eq!(render(&c, "pw", &d).unwrap(), "s3cr'et $HOME\nline2");
    assert_eq!(render(&c, "port", &d).unwrap(), "5432");
    let j: serde_json::Value = serde_json::from_str(&render(&c, "api.json", &d).unwrap()).unwrap();
    assert_eq!(j, json!({"key": "k-123", "scopes": ["a", "b"]}));
    assert_eq!(
        render(&c, "db.env", &d).unwrap(),
        "user='app'\npassword='s3cr'\\''et $HOME\nline2'\nport='5432'\ntls='true'\n"
    );
}

#[test]
fn dotenv_is_safe_for_the_shell() {
    let c = config(
        "[[file]]\nname = \"db.env\"\nsecret = \"db\"\nformat = \"dotenv\"\n\
         [[file]]\nname = \"api.json\"\nsecret = \"api\"\n",
    );
    let d = both(&c);
    let text = render(&c, "db.env", &d).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("db.env");
    std::fs::write(&env, &text).unwrap();
    // A shell that sources the file gets the exact value, nothing expanded or run.
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(". {}; printf %s \"$password\"", env.display()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "s3cr'et $HOME\nline2"
    );
}

#[test]
fn templates_combine_secrets_and_fail_strictly() {
    let c = config(
        r#"
[[file]]
name = "app.conf"
template = "user={{ secrets.db.user }}\nkey={{ secrets.api.key }}\n{% for s in secrets.api.scopes %}{{ s }};{% endfor %}\n"
[[file]]
name = "typo.conf"
template = "line1\nuser={{ secrets.db.usr }}\n"
[[file]]
name = "page.html"
template = "<{{ secrets.db.password }}>"
"#,
    );
    let d = both(&c);
    assert_eq!(
        render(&c, "app.conf", &d).unwrap(),
        "user=app\nkey=k-123\na;b;\n"
    );
    // No HTML escaping, whatever the file name.
    assert_eq!(
        render(&c, "page.html", &d).unwrap(),
        "<s3cr'et $HOME\nline2>"
    );
    let err = render(&c, "typo.conf", &d).unwrap_err().to_string();
    assert!(
        err.starts_with("file \"typo.conf\": template line 2: undefined value"),
        "{err}"
    );
    // A secret not read yet is an error too, not an empty string.
    let partial = vec![d[0].clone(), None];
    let first_db = c.sources[0].path == "secret/data/app/db";
    let partial = if first_db {
        partial
    } else {
        vec![None, d[1].clone()]
    };
    assert!(render(&c, "app.conf", &partial).is_err());
}

#[test]
fn errors_name_file_and_field_never_values() {
    let c = config(
        r#"
[[file]]
name = "pw"
secret = "db"
field = "nope"
[[file]]
name = "bad.env"
secret = "api"
format = "dotenv"
[[file]]
name = "int.conf"
template = "{{ secrets.db.password | int }}"
"#,
    );
    let mut d = both(&c);
    let err = render(&c, "pw", &d).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file \"pw\": secret \"db\" (secret/data/app/db) has no field \"nope\""
    );
    let err = render(&c, "int.conf", &d).unwrap_err().to_string();
    assert!(!err.contains("s3cr"), "{err}");
    let api = c
        .sources
        .iter()
        .position(|s| s.path == "secret/data/app/api")
        .unwrap();
    d[api] = data(json!({"bad-key": "v4lue"}));
    let err = render(&c, "bad.env", &d).unwrap_err().to_string();
    assert_eq!(
        err,
        "file \"bad.env\": field \"bad-key\" of secret \"api\" (secret/data/app/api) is not a valid dotenv name"
    );
    d[api] = None;
    let err = render(&c, "bad.env", &d).unwrap_err().to_string();
    assert_eq!(
        err,
        "file \"bad.env\": secret \"api\" (secret/data/app/api) is not available"
    );
}
