//! `hush operator ...`: init, unseal, seal, seal-status, rotate, key-status.

use hush_api::wire::sys::{InitRequest, KeyStatus, SealStatus};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::args::OperatorCmd;
use crate::context::{read_secret, usage, Ctx};
use crate::output::{print_json, table};

pub async fn run(ctx: &Ctx, cmd: OperatorCmd) -> anyhow::Result<()> {
    match cmd {
        OperatorCmd::Init {
            key_shares,
            key_threshold,
        } => init(ctx, key_shares, key_threshold).await,
        OperatorCmd::Unseal { key, reset } => unseal(ctx, key, reset).await,
        OperatorCmd::Seal => {
            ctx.client()?.seal().await?;
            println!("Success! hushd is sealed.");
            Ok(())
        }
        OperatorCmd::SealStatus => {
            let status = ctx.client()?.seal_status().await?;
            print_seal_status(ctx, &status)
        }
        OperatorCmd::Rotate => {
            let client = ctx.client()?;
            client.rotate().await?;
            let status = client.key_status().await?;
            if ctx.json() {
                return print_json(&status);
            }
            println!("Success! Rotated key\n");
            print!("{}", key_status_table(&status));
            Ok(())
        }
        OperatorCmd::KeyStatus => {
            let status = ctx.client()?.key_status().await?;
            if ctx.json() {
                return print_json(&status);
            }
            print!("{}", key_status_table(&status));
            Ok(())
        }
    }
}

async fn init(ctx: &Ctx, shares: u32, threshold: u32) -> anyhow::Result<()> {
    if shares == 0 || threshold == 0 || threshold > shares {
        return Err(usage(format!(
            "invalid -key-shares {shares} / -key-threshold {threshold}: want 1 <= threshold <= shares"
        )));
    }
    let req = InitRequest {
        secret_shares: shares,
        secret_threshold: threshold,
        ..Default::default()
    };
    let resp = ctx.client()?.init(&req).await?;
    let b64: Vec<&str> = resp.keys_base64.iter().map(|k| k.expose_secret()).collect();
    let hex: Vec<&str> = resp.keys.iter().map(|k| k.expose_secret()).collect();
    if ctx.json() {
        return print_json(&json!({
            "unseal_keys_b64": b64,
            "unseal_keys_hex": hex,
            "unseal_shares": shares,
            "unseal_threshold": threshold,
            "root_token": resp.root_token.expose_secret(),
        }));
    }
    let shown = if b64.is_empty() { &hex } else { &b64 };
    for (i, key) in shown.iter().enumerate() {
        println!("Unseal Key {}: {key}", i + 1);
    }
    println!(
        "\nInitial Root Token: {}\n",
        resp.root_token.expose_secret()
    );
    println!(
        "hushd initialized with {shares} key shares and a key threshold of {threshold}. Distribute \
         the key shares to different people and keep them safe: hushd starts sealed on every \
         restart, and {threshold} of these keys are needed to unseal it (hush operator unseal).\n\n\
         hushd does not store the root key: if fewer than {threshold} shares survive, the data \
         is lost for good. Revoke the root token once other tokens and policies are in place."
    );
    Ok(())
}

async fn unseal(ctx: &Ctx, key: Option<String>, reset: bool) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let status = if reset {
        if key.is_some() {
            return Err(usage("-reset takes no key"));
        }
        client.unseal_reset().await?
    } else {
        let key = match key {
            Some(k) if k == "-" => read_secret("")?,
            Some(k) => SecretString::from(k),
            None => read_secret("Unseal Key (will be hidden): ")?,
        };
        client.unseal(key).await?
    };
    print_seal_status(ctx, &status)
}

fn print_seal_status(ctx: &Ctx, s: &SealStatus) -> anyhow::Result<()> {
    if ctx.json() {
        return print_json(s);
    }
    let mut rows = vec![
        ("Seal Type", s.seal_type.clone()),
        ("Initialized", s.initialized.to_string()),
        ("Sealed", s.sealed.to_string()),
        ("Total Shares", s.n.to_string()),
        ("Threshold", s.t.to_string()),
    ];
    if s.sealed {
        rows.push(("Unseal Progress", format!("{}/{}", s.progress, s.t)));
        rows.push((
            "Unseal Nonce",
            if s.nonce.is_empty() {
                "n/a".into()
            } else {
                s.nonce.clone()
            },
        ));
    }
    rows.push(("Version", s.version.clone()));
    rows.push(("Storage Type", s.storage_type.clone()));
    print!("{}", table(&rows));
    Ok(())
}

fn key_status_table(s: &KeyStatus) -> String {
    let mut rows = vec![
        ("Key Term", s.term.to_string()),
        ("Install Time", s.install_time.clone()),
    ];
    if let Some(n) = s.encryptions {
        rows.push(("Encryption Count", n.to_string()));
    }
    table(&rows)
}
