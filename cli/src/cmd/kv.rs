//! `hush kv ...` over a KV engine. `hush kv get secret/app` reads `/v1/secret/data/app`: the
//! first path segment is the mount, as in the vault CLI, unless `-mount` names it.
//!
//! Like the vault CLI, the commands first ask `sys/internal/ui/mounts/<mount>` for the mount's
//! KV version: on a version 1 mount `get`, `put`, `list` and `delete` use the plain paths
//! (`/v1/secret/app`), and the version 2 only commands (`patch`, `undelete`, `destroy`,
//! `metadata`, `-cas`, `-version(s)`) are refused with a message saying so.

use std::collections::BTreeMap;

use hush_api::wire::kv::{kv_path, split_mount, KvMetadata, KvMetadataUpdate, KvVersionMetadata};
use hush_api::wire::Data;
use hush_api::Client;
use serde_json::{json, Map, Value};

use crate::args::{KvCmd, KvMetadataCmd, KvTarget};
use crate::context::{read_stdin, usage, Ctx};
use crate::output::{
    fmt_duration, kv_table, object_rows, print_field, print_json, section, table, value_text,
};

/// `(mount, path)` of a target.
pub fn resolve(target: &KvTarget) -> anyhow::Result<(String, String)> {
    match &target.mount {
        Some(mount) => {
            let mount = mount.trim_matches('/');
            if mount.is_empty() {
                return Err(usage("-mount is empty"));
            }
            Ok((mount.to_string(), target.path.trim_matches('/').to_string()))
        }
        None => split_mount(&target.path)
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .ok_or_else(|| usage(format!("invalid path {:?}: want MOUNT/PATH", target.path))),
    }
}

fn require_path(mount: &str, path: &str) -> anyhow::Result<()> {
    if path.is_empty() {
        return Err(usage(format!(
            "missing secret path after mount {mount:?}: want MOUNT/PATH, e.g. {mount}/app"
        )));
    }
    Ok(())
}

/// Parse `k=v`, `k=@file`, `k=-`, `@file.json` and `-` into a JSON object. `stdin` is read
/// at most once.
pub fn parse_data(
    args: &[String],
    stdin: &mut dyn FnMut() -> anyhow::Result<String>,
) -> anyhow::Result<Data> {
    let mut data = Data::new();
    let mut stdin_used = false;
    let mut take_stdin = |what: &str| -> anyhow::Result<String> {
        if stdin_used {
            return Err(usage(format!("stdin can only be read once ({what})")));
        }
        stdin_used = true;
        stdin()
    };
    for arg in args {
        if arg == "-" || (arg.starts_with('@') && !arg.contains('=')) {
            let text = if arg == "-" {
                take_stdin("-")?
            } else {
                let file = &arg[1..];
                std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("could not read {file}: {e}"))?
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| usage(format!("{arg}: not valid JSON ({e})")))?;
            let Value::Object(map) = value else {
                return Err(usage(format!("{arg}: want a JSON object")));
            };
            data.extend(map);
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(usage(format!(
                "invalid key/value pair {arg:?}: want key=value"
            )));
        };
        if key.is_empty() {
            return Err(usage(format!(
                "invalid key/value pair {arg:?}: the key is empty"
            )));
        }
        let value = if value == "-" {
            take_stdin(key)?
        } else if let Some(file) = value.strip_prefix('@') {
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("could not read {file} for {key}: {e}"))?
        } else {
            value.to_string()
        };
        data.insert(key.to_string(), Value::String(value));
    }
    if data.is_empty() {
        return Err(usage("no data given: pass key=value pairs"));
    }
    Ok(data)
}

/// Parse repeated `k=v` flags.
pub fn parse_pairs(flag: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(usage(format!("invalid {flag} {p:?}: want key=value"))),
        })
        .collect()
}

/// Is `mount` a KV version 1 mount? Asked as the vault CLI asks it; when the answer does not
/// come (no permission, an older server) the mount is taken as version 2, hushd's default
/// for `hush dev` and the README's setup.
async fn is_v1(client: &Client, mount: &str) -> bool {
    let Ok(Some(resp)) = client
        .read(&format!("sys/internal/ui/mounts/{mount}"))
        .await
    else {
        return false;
    };
    let Some(data) = resp.data else {
        return false;
    };
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
    let version = data
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    matches!(kind, "kv" | "generic") && version.as_deref() != Some("2")
}

/// The refusal of a version 2 only command or flag on a version 1 mount.
fn v1_refusal(mount: &str, what: &str) -> anyhow::Error {
    usage(format!(
        "{mount}/ is a KV version 1 mount: {what} needs KV version 2 (upgrade the mount with \
         POST sys/mounts/{mount}/tune options.version=2)"
    ))
}

/// `get`, `put`, `list` and `delete` on a KV version 1 mount; `Ok(false)` when `mount` is
/// version 2 (or the command is not one of those), so the caller goes on with version 2.
async fn run_v1(ctx: &Ctx, cmd: &KvCmd) -> anyhow::Result<bool> {
    let (target, v2_only) = match cmd {
        KvCmd::Put { target, cas, .. } => (target, cas.is_some().then_some("-cas")),
        KvCmd::Get {
            target, version, ..
        } => (target, version.is_some().then_some("-version")),
        KvCmd::List { target } => (target, None),
        KvCmd::Delete { target, versions } => {
            (target, (!versions.is_empty()).then_some("-versions"))
        }
        KvCmd::Patch { target, .. } => (target, Some("`hush kv patch`")),
        KvCmd::Undelete { target, .. } => (target, Some("`hush kv undelete`")),
        KvCmd::Destroy { target, .. } => (target, Some("`hush kv destroy`")),
        KvCmd::Rollback { target, .. } => (target, Some("`hush kv rollback`")),
        KvCmd::Metadata(
            KvMetadataCmd::Get { target }
            | KvMetadataCmd::Put { target, .. }
            | KvMetadataCmd::Delete { target },
        ) => (target, Some("`hush kv metadata`")),
    };
    let (mount, path) = resolve(target)?;
    let client = ctx.client()?;
    if !is_v1(&client, &mount).await {
        return Ok(false);
    }
    if let Some(what) = v2_only {
        return Err(v1_refusal(&mount, what));
    }
    let secret_path = format!("{mount}/{path}");
    match cmd {
        KvCmd::Put { data, .. } => {
            require_path(&mount, &path)?;
            let data = parse_data(data, &mut read_stdin)?;
            client.write(&secret_path, &data).await?;
            success(ctx, &format!("Data written to: {secret_path}"))?;
        }
        KvCmd::Get { field, .. } => {
            require_path(&mount, &path)?;
            let Some(resp) = client.read(&secret_path).await? else {
                anyhow::bail!("No value found at {secret_path}");
            };
            let data = resp.data.clone().unwrap_or_default();
            if let Some(field) = field {
                let value = data.get(field).ok_or_else(|| {
                    anyhow::anyhow!("field {field:?} not present in secret {secret_path}")
                })?;
                return print_field(value).map(|()| true);
            }
            if ctx.json() {
                print_json(&json!({ "lease_duration": resp.lease_duration, "data": data }))?;
            } else {
                let mut rows = vec![(
                    "refresh_interval".to_string(),
                    fmt_duration(resp.lease_duration),
                )];
                rows.extend(object_rows(&data));
                print!("{}", kv_table(("Key", "Value"), &rows));
            }
        }
        KvCmd::List { .. } => {
            let Some(resp) = client.list(&secret_path).await? else {
                anyhow::bail!("No value found at {secret_path}");
            };
            let keys = resp
                .data
                .and_then(|d| d.get("keys").cloned())
                .unwrap_or(Value::Array(Vec::new()));
            print_keys(ctx, &keys)?;
        }
        KvCmd::Delete { .. } => {
            require_path(&mount, &path)?;
            client.delete(&secret_path).await?;
            success(
                ctx,
                &format!("Data deleted (if it existed) at: {secret_path}"),
            )?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn print_keys(ctx: &Ctx, keys: &Value) -> anyhow::Result<()> {
    if ctx.json() {
        return print_json(keys);
    }
    println!("Keys\n----");
    for k in keys.as_array().into_iter().flatten() {
        println!("{}", k.as_str().unwrap_or_default());
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: KvCmd) -> anyhow::Result<()> {
    if run_v1(ctx, &cmd).await? {
        return Ok(());
    }
    match cmd {
        KvCmd::Put { target, cas, data } => write(ctx, &target, cas, &data, false).await,
        KvCmd::Patch { target, cas, data } => write(ctx, &target, cas, &data, true).await,
        KvCmd::Get {
            target,
            version,
            field,
        } => get(ctx, &target, version, field).await,
        KvCmd::List { target } => list(ctx, &target).await,
        KvCmd::Delete { target, versions } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            let client = ctx.client()?;
            if versions.is_empty() {
                client.kv_delete(&mount, &path).await?;
                success(
                    ctx,
                    &format!(
                        "Data deleted (if it existed) at: {}",
                        kv_path(&mount, "data", &path)
                    ),
                )
            } else {
                client.kv_delete_versions(&mount, &path, &versions).await?;
                success(
                    ctx,
                    &format!(
                        "Data deleted (if it existed) at: {}",
                        kv_path(&mount, "delete", &path)
                    ),
                )
            }
        }
        KvCmd::Undelete { target, versions } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            ctx.client()?.kv_undelete(&mount, &path, &versions).await?;
            success(
                ctx,
                &format!("Data written to: {}", kv_path(&mount, "undelete", &path)),
            )
        }
        KvCmd::Destroy { target, versions } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            ctx.client()?.kv_destroy(&mount, &path, &versions).await?;
            success(
                ctx,
                &format!("Data written to: {}", kv_path(&mount, "destroy", &path)),
            )
        }
        KvCmd::Rollback { target, version } => rollback(ctx, &target, version).await,
        KvCmd::Metadata(cmd) => metadata(ctx, cmd).await,
    }
}

/// `hush kv rollback -version=N`: as Vault's CLI, read version N and write its data as a new
/// version with check-and-set on the current one.
async fn rollback(ctx: &Ctx, target: &KvTarget, version: u64) -> anyhow::Result<()> {
    let (mount, path) = resolve(target)?;
    require_path(&mount, &path)?;
    anyhow::ensure!(version > 0, "-version must be a version number (1 or more)");
    let data_path = kv_path(&mount, "data", &path);
    let client = ctx.client()?;
    let Some(meta) = client.kv_metadata_get(&mount, &path).await? else {
        anyhow::bail!("No value found at {data_path}");
    };
    let Some(info) = meta.versions.get(&version.to_string()) else {
        anyhow::bail!(
            "version {version} of {data_path} does not exist (or no longer: it fell out of \
             max_versions); see `hush kv metadata get {mount}/{path}`"
        );
    };
    if info.destroyed {
        anyhow::bail!("cannot roll back to version {version} of {data_path}: it was destroyed");
    }
    if !info.deletion_time.is_empty() {
        anyhow::bail!(
            "cannot roll back to version {version} of {data_path}: it is deleted; restore it \
             first with: hush kv undelete -versions={version} {mount}/{path}"
        );
    }
    let Some(secret) = client.kv_get(&mount, &path, Some(version)).await? else {
        anyhow::bail!("No value found at {data_path}");
    };
    let Some(data) = secret.data else {
        anyhow::bail!("cannot roll back to version {version} of {data_path}: it is not readable");
    };
    let written = client
        .kv_put(&mount, &path, data, Some(meta.current_version))
        .await
        .map_err(|e| anyhow::anyhow!("rolling back {data_path} to version {version}: {e}"))?;
    if ctx.json() {
        return print_json(&json!({ "data": written }));
    }
    print!("{}", section("Secret Path"));
    println!("{data_path}\n");
    print!("{}", section("Metadata"));
    print!("{}", table(&version_rows(&written)));
    Ok(())
}

fn success(ctx: &Ctx, msg: &str) -> anyhow::Result<()> {
    if !ctx.json() {
        println!("Success! {msg}");
    }
    Ok(())
}

async fn write(
    ctx: &Ctx,
    target: &KvTarget,
    cas: Option<u64>,
    args: &[String],
    patch: bool,
) -> anyhow::Result<()> {
    let (mount, path) = resolve(target)?;
    require_path(&mount, &path)?;
    let data = parse_data(args, &mut read_stdin)?;
    let client = ctx.client()?;
    let meta = if patch {
        client.kv_patch(&mount, &path, data, cas).await?
    } else {
        client.kv_put(&mount, &path, data, cas).await?
    };
    if ctx.json() {
        return print_json(&json!({ "data": meta }));
    }
    print!("{}", section("Secret Path"));
    println!("{}\n", kv_path(&mount, "data", &path));
    print!("{}", section("Metadata"));
    print!("{}", table(&version_rows(&meta)));
    Ok(())
}

fn version_rows(m: &KvVersionMetadata) -> Vec<(String, String)> {
    let custom = m.custom_metadata.as_ref().map_or(Value::Null, |c| json!(c));
    vec![
        ("created_time".into(), m.created_time.clone()),
        ("custom_metadata".into(), value_text(&custom)),
        (
            "deletion_time".into(),
            if m.deletion_time.is_empty() {
                "n/a".into()
            } else {
                m.deletion_time.clone()
            },
        ),
        ("destroyed".into(), m.destroyed.to_string()),
        ("version".into(), m.version.to_string()),
    ]
}

async fn get(
    ctx: &Ctx,
    target: &KvTarget,
    version: Option<u64>,
    field: Option<String>,
) -> anyhow::Result<()> {
    let (mount, path) = resolve(target)?;
    require_path(&mount, &path)?;
    let data_path = kv_path(&mount, "data", &path);
    let Some(secret) = ctx.client()?.kv_get(&mount, &path, version).await? else {
        anyhow::bail!("No value found at {data_path}");
    };
    let Some(data) = &secret.data else {
        let m = &secret.metadata;
        let state = if m.destroyed { "destroyed" } else { "deleted" };
        if ctx.json() {
            print_json(&json!({ "data": { "data": null, "metadata": m } }))?;
        } else {
            print!("{}", section("Metadata"));
            print!("{}", table(&version_rows(m)));
        }
        let hint = if m.destroyed {
            String::new()
        } else {
            format!(
                "; restore it with: hush kv undelete -versions={} {mount}/{path}",
                m.version
            )
        };
        anyhow::bail!("version {} at {data_path} is {state}{hint}", m.version);
    };
    if let Some(field) = field {
        let value = data
            .get(&field)
            .ok_or_else(|| anyhow::anyhow!("field {field:?} not present in secret {data_path}"))?;
        return print_field(value);
    }
    if ctx.json() {
        return print_json(&json!({ "data": { "data": data, "metadata": secret.metadata } }));
    }
    print!("{}", section("Secret Path"));
    println!("{data_path}\n");
    print!("{}", section("Metadata"));
    println!("{}", table(&version_rows(&secret.metadata)));
    print!("{}", section("Data"));
    print!("{}", table(&object_rows(data)));
    Ok(())
}

async fn list(ctx: &Ctx, target: &KvTarget) -> anyhow::Result<()> {
    let (mount, path) = resolve(target)?;
    let Some(keys) = ctx.client()?.kv_list(&mount, &path).await? else {
        anyhow::bail!("No value found at {}", kv_path(&mount, "metadata", &path));
    };
    print_keys(ctx, &json!(keys))
}

async fn metadata(ctx: &Ctx, cmd: KvMetadataCmd) -> anyhow::Result<()> {
    match cmd {
        KvMetadataCmd::Get { target } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            let meta_path = kv_path(&mount, "metadata", &path);
            let Some(meta) = ctx.client()?.kv_metadata_get(&mount, &path).await? else {
                anyhow::bail!("No value found at {meta_path}");
            };
            if ctx.json() {
                return print_json(&json!({ "data": meta }));
            }
            print!("{}", metadata_text(&meta_path, &meta));
            Ok(())
        }
        KvMetadataCmd::Put {
            target,
            max_versions,
            cas_required,
            delete_version_after,
            custom_metadata,
        } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            let custom = parse_pairs("-custom-metadata", &custom_metadata)?;
            let update = KvMetadataUpdate {
                max_versions,
                cas_required,
                delete_version_after,
                custom_metadata: (!custom.is_empty()).then_some(custom),
            };
            if update == KvMetadataUpdate::default() {
                return Err(usage(
                    "nothing to change: pass -max-versions, -cas-required, \
                     -delete-version-after or -custom-metadata",
                ));
            }
            ctx.client()?
                .kv_metadata_put(&mount, &path, &update)
                .await?;
            success(
                ctx,
                &format!("Data written to: {}", kv_path(&mount, "metadata", &path)),
            )
        }
        KvMetadataCmd::Delete { target } => {
            let (mount, path) = resolve(&target)?;
            require_path(&mount, &path)?;
            ctx.client()?.kv_metadata_delete(&mount, &path).await?;
            success(
                ctx,
                &format!(
                    "Data deleted (if it existed) at: {}",
                    kv_path(&mount, "metadata", &path)
                ),
            )
        }
    }
}

fn metadata_text(meta_path: &str, m: &KvMetadata) -> String {
    let custom = m.custom_metadata.as_ref().map_or(Value::Null, |c| json!(c));
    let rows = vec![
        ("cas_required", m.cas_required.to_string()),
        ("created_time", m.created_time.clone()),
        ("current_version", m.current_version.to_string()),
        ("custom_metadata", value_text(&custom)),
        ("delete_version_after", m.delete_version_after.clone()),
        ("max_versions", m.max_versions.to_string()),
        ("oldest_version", m.oldest_version.to_string()),
        ("updated_time", m.updated_time.clone()),
    ];
    let mut out = section("Metadata Path");
    out.push_str(meta_path);
    out.push_str("\n\n");
    out.push_str(&section("Metadata"));
    out.push_str(&table(&rows));
    let mut versions: Vec<(u64, &String)> = m
        .versions
        .keys()
        .map(|k| (k.parse().unwrap_or(0), k))
        .collect();
    versions.sort();
    for (_, key) in versions {
        let v = &m.versions[key];
        let as_map: Map<String, Value> = [
            ("created_time".to_string(), json!(v.created_time)),
            (
                "deletion_time".to_string(),
                json!(if v.deletion_time.is_empty() {
                    "n/a"
                } else {
                    &v.deletion_time
                }),
            ),
            ("destroyed".to_string(), json!(v.destroyed)),
        ]
        .into_iter()
        .collect();
        out.push('\n');
        out.push_str(&section(&format!("Version {key}")));
        out.push_str(&kv_table(("Key", "Value"), &object_rows(&as_map)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn no_stdin() -> anyhow::Result<String> {
        panic!("stdin read unexpectedly")
    }

    #[test]
    fn resolve_splits_the_mount_or_uses_the_flag() {
        let t = KvTarget {
            path: "secret/app/db".into(),
            mount: None,
        };
        assert_eq!(resolve(&t).unwrap(), ("secret".into(), "app/db".into()));
        let t = KvTarget {
            path: "app/db".into(),
            mount: Some("kv/".into()),
        };
        assert_eq!(resolve(&t).unwrap(), ("kv".into(), "app/db".into()));
        let t = KvTarget {
            path: "/".into(),
            mount: None,
        };
        assert!(resolve(&t)
            .unwrap_err()
            .downcast_ref::<crate::context::UsageError>()
            .is_some());
        assert!(require_path("secret", "").is_err());
    }

    #[test]
    fn pairs_files_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "PEM\n").unwrap();
        let args = strings(&["a=1", "b=x=y", &format!("c=@{}", file.display()), "d=-"]);
        let data = parse_data(&args, &mut || Ok("from-stdin".into())).unwrap();
        assert_eq!(data["a"], "1");
        assert_eq!(data["b"], "x=y");
        assert_eq!(data["c"], "PEM\n");
        assert_eq!(data["d"], "from-stdin");
    }

    #[test]
    fn json_from_stdin_or_file() {
        let data =
            parse_data(&strings(&["-"]), &mut || Ok(r#"{"n": 1, "s": "x"}"#.into())).unwrap();
        assert_eq!(data["n"], 1);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.json");
        std::fs::write(&file, r#"{"k": "v"}"#).unwrap();
        let data = parse_data(&[format!("@{}", file.display())], &mut no_stdin).unwrap();
        assert_eq!(data["k"], "v");
    }

    #[test]
    fn bad_data_is_a_usage_error() {
        for args in [&["novalue"][..], &["=v"], &["-"]] {
            let err = parse_data(&strings(args), &mut || Ok("[1]".into())).unwrap_err();
            assert!(
                err.downcast_ref::<crate::context::UsageError>().is_some(),
                "{args:?}: {err}"
            );
        }
        let err = parse_data(&strings(&["a=-", "b=-"]), &mut || Ok("x".into())).unwrap_err();
        assert!(err.to_string().contains("only be read once"), "{err}");
        assert!(parse_data(&[], &mut no_stdin).is_err());
        let err = parse_data(&strings(&["k=@/nonexistent/f"]), &mut no_stdin).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/f"), "{err}");
    }

    #[test]
    fn custom_metadata_pairs() {
        let m = parse_pairs("-custom-metadata", &strings(&["a=1", "b="])).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "");
        assert!(parse_pairs("-custom-metadata", &strings(&["nokey"])).is_err());
    }

    #[test]
    fn metadata_text_lists_versions_in_order() {
        let m: KvMetadata = serde_json::from_value(json!({
            "current_version": 10,
            "versions": {"10": {"created_time": "b"}, "9": {"created_time": "a", "destroyed": true}}
        }))
        .unwrap();
        let text = metadata_text("secret/metadata/app", &m);
        let v9 = text.find("Version 9 ").unwrap();
        let v10 = text.find("Version 10 ").unwrap();
        assert!(v9 < v10, "{text}");
    }
}
