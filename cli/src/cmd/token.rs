//! `hush token ...`: create, lookup, renew, revoke.

use hush_api::wire::token::{TokenCreateRequest, TokenLookup};
use hush_api::wire::Auth;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::kv::parse_pairs;
use crate::args::{TokenCmd, TokenCreateArgs};
use crate::context::{read_secret, usage, Ctx};
use crate::output::{fmt_duration, object_rows, print_field, print_json, table};

/// What the positional TOKEN argument names.
enum Subject {
    Own,
    Token(SecretString),
    Accessor(String),
}

fn subject(token: Option<String>, accessor: bool) -> anyhow::Result<Subject> {
    match (token, accessor) {
        (None, false) => Ok(Subject::Own),
        (None, true) => Err(usage("-accessor needs an accessor argument")),
        (Some(a), true) => Ok(Subject::Accessor(a)),
        (Some(t), false) if t == "-" => {
            Ok(Subject::Token(read_secret("Token (will be hidden): ")?))
        }
        (Some(t), false) => Ok(Subject::Token(SecretString::from(t))),
    }
}

pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create(args) => create(ctx, args).await,
        TokenCmd::Lookup {
            token,
            accessor,
            field,
        } => {
            let client = ctx.client()?;
            let info = match subject(token, accessor)? {
                Subject::Own => client.token_lookup_self().await?,
                Subject::Token(t) => client.token_lookup(&t).await?,
                Subject::Accessor(a) => client.token_lookup_accessor(&a).await?,
            };
            print_lookup(ctx, &info, field.as_deref())
        }
        TokenCmd::Renew {
            token,
            increment,
            accessor,
        } => {
            let client = ctx.client()?;
            let inc = increment.as_deref();
            let auth = match subject(token, accessor)? {
                Subject::Own => client.token_renew_self(inc).await?,
                Subject::Token(t) => client.token_renew(&t, inc).await?,
                Subject::Accessor(a) => client.token_renew_accessor(&a, inc).await?,
            };
            print_auth(ctx, &auth, None)
        }
        TokenCmd::Revoke {
            token,
            self_,
            accessor,
        } => {
            let client = ctx.client()?;
            if self_ {
                client.token_revoke_self().await?;
            } else {
                match subject(token, accessor)? {
                    Subject::Own => {
                        return Err(usage("name the token to revoke, or pass -self"));
                    }
                    Subject::Token(t) => client.token_revoke(&t).await?,
                    Subject::Accessor(a) => client.token_revoke_accessor(&a).await?,
                }
            }
            if !ctx.json() {
                println!("Success! Revoked token (if it existed)");
            }
            Ok(())
        }
    }
}

/// The request a `token create` command line asks for.
pub fn create_request(args: &TokenCreateArgs) -> anyhow::Result<TokenCreateRequest> {
    let meta = parse_pairs("-metadata", &args.metadata)?;
    Ok(TokenCreateRequest {
        policies: args.policies.clone(),
        ttl: args.ttl.clone(),
        explicit_max_ttl: args.explicit_max_ttl.clone(),
        period: args.period.clone(),
        num_uses: args.use_limit,
        no_parent: args.orphan,
        no_default_policy: args.no_default_policy,
        display_name: args.display_name.clone(),
        renewable: args.renewable,
        meta: (!meta.is_empty()).then_some(meta),
    })
}

async fn create(ctx: &Ctx, args: TokenCreateArgs) -> anyhow::Result<()> {
    let req = create_request(&args)?;
    if let Some(ttl) = &args.wrap_ttl {
        let client = ctx.client()?.with_wrap_ttl(Some(ttl.clone()));
        let resp = client.write("auth/token/create", &req).await?;
        let info = resp
            .and_then(|r| r.wrap_info)
            .ok_or_else(|| anyhow::anyhow!("the server did not wrap the answer"))?;
        return print_wrap_info(ctx, &info, args.field.as_deref());
    }
    let auth = ctx.client()?.token_create(&req).await?;
    print_auth(ctx, &auth, args.field.as_deref())
}

/// `-field=NAME`: print that one value.
fn print_named_field(fields: &Map<String, Value>, name: &str) -> anyhow::Result<()> {
    let v = fields
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("field {name:?} not present"))?;
    print_field(v)
}

/// The rows the vault CLI shows for a wrapped answer.
fn print_wrap_info(ctx: &Ctx, info: &Value, field: Option<&str>) -> anyhow::Result<()> {
    let get = |k: &str| info.get(k).cloned().unwrap_or(Value::Null);
    let mut rows = Map::new();
    rows.insert("wrapping_token".into(), get("token"));
    rows.insert("wrapping_accessor".into(), get("accessor"));
    let ttl = info.get("ttl").and_then(Value::as_u64).unwrap_or(0);
    rows.insert("wrapping_token_ttl".into(), fmt_duration(ttl).into());
    rows.insert("wrapping_token_creation_time".into(), get("creation_time"));
    rows.insert("wrapping_token_creation_path".into(), get("creation_path"));
    if let Some(acc) = info.get("wrapped_accessor") {
        rows.insert("wrapped_accessor".into(), acc.clone());
    }
    if let Some(f) = field {
        return print_named_field(&rows, f);
    }
    if ctx.json() {
        return print_json(&json!({ "wrap_info": info }));
    }
    let rows: Vec<(String, String)> = rows
        .iter()
        .map(|(k, v)| (k.clone(), crate::output::value_text(v)))
        .collect();
    print!("{}", table(&rows));
    Ok(())
}

/// The rows the vault CLI shows for a new or renewed token.
fn auth_fields(auth: &Auth) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("token".into(), auth.client_token.expose_secret().into());
    m.insert("token_accessor".into(), auth.accessor.clone().into());
    m.insert(
        "token_duration".into(),
        fmt_duration(auth.lease_duration).into(),
    );
    m.insert("token_renewable".into(), auth.renewable.into());
    m.insert("token_policies".into(), json!(auth.token_policies));
    m.insert(
        "identity_policies".into(),
        json!(auth.identity_policies.clone().unwrap_or_default()),
    );
    m.insert("policies".into(), json!(auth.policies));
    if let Some(meta) = &auth.metadata {
        for (k, v) in meta {
            m.insert(format!("token_meta_{k}"), v.clone().into());
        }
    }
    m
}

fn print_auth(ctx: &Ctx, auth: &Auth, field: Option<&str>) -> anyhow::Result<()> {
    let fields = auth_fields(auth);
    if let Some(f) = field {
        return print_named_field(&fields, f);
    }
    if ctx.json() {
        return print_json(&json!({ "auth": auth }));
    }
    // Fixed order, as the vault CLI prints it.
    let order = [
        "token",
        "token_accessor",
        "token_duration",
        "token_renewable",
        "token_policies",
        "identity_policies",
        "policies",
    ];
    let mut rows: Vec<(String, String)> = order
        .iter()
        .filter_map(|k| {
            fields
                .get(*k)
                .map(|v| (k.to_string(), crate::output::value_text(v)))
        })
        .collect();
    rows.extend(
        object_rows(&fields)
            .into_iter()
            .filter(|(k, _)| k.starts_with("token_meta_")),
    );
    print!("{}", table(&rows));
    Ok(())
}

fn print_lookup(ctx: &Ctx, info: &TokenLookup, field: Option<&str>) -> anyhow::Result<()> {
    let Value::Object(mut fields) = serde_json::to_value(info)? else {
        anyhow::bail!("unexpected lookup shape");
    };
    if let Some(f) = field {
        return print_named_field(&fields, f);
    }
    if ctx.json() {
        return print_json(&json!({ "data": fields }));
    }
    for key in ["ttl", "creation_ttl", "explicit_max_ttl", "period"] {
        if let Some(secs) = fields.get(key).and_then(Value::as_u64) {
            fields.insert(key.into(), fmt_duration(secs).into());
        }
    }
    if info.id.expose_secret().is_empty() {
        fields.insert("id".into(), "n/a".into());
    }
    print!("{}", table(&object_rows(&fields)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn create_args(argv: &[&str]) -> TokenCreateArgs {
        let cli = crate::args::Cli::try_parse_from(crate::args::normalise(
            ["hush", "token", "create"]
                .iter()
                .chain(argv)
                .map(std::ffi::OsString::from),
        ))
        .unwrap();
        match cli.command {
            crate::args::Command::Token(TokenCmd::Create(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_request_maps_flags_to_vault_fields() {
        let req = create_request(&create_args(&[
            "-policy=a",
            "-use-limit=2",
            "-orphan",
            "-metadata=team=ops",
            "-renewable=false",
        ]))
        .unwrap();
        assert_eq!(req.policies, ["a"]);
        assert_eq!(req.num_uses, Some(2));
        assert!(req.no_parent);
        assert_eq!(req.renewable, Some(false));
        assert_eq!(req.meta.unwrap()["team"], "ops");
        assert!(create_request(&create_args(&["-metadata=bad"])).is_err());
    }

    #[test]
    fn subjects() {
        assert!(matches!(subject(None, false).unwrap(), Subject::Own));
        assert!(subject(None, true).is_err());
        assert!(matches!(
            subject(Some("a".into()), true).unwrap(),
            Subject::Accessor(_)
        ));
        assert!(matches!(
            subject(Some("hvs.x".into()), false).unwrap(),
            Subject::Token(_)
        ));
    }

    #[test]
    fn auth_fields_carry_token_and_meta() {
        let auth: Auth = serde_json::from_value(json!({
            "client_token": "hvs.t", "accessor": "acc", "policies": ["default"],
            "token_policies": ["default"], "lease_duration": 3600, "renewable": true,
            "metadata": {"team": "ops"}
        }))
        .unwrap();
        let f = auth_fields(&auth);
        assert_eq!(f["token"], "hvs.t");
        assert_eq!(f["token_duration"], "1h");
        assert_eq!(f["token_meta_team"], "ops");
    }
}
