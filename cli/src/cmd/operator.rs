//! `hush operator ...`: init, unseal, seal, seal-status, rotate, key-status, generate-root,
//! rekey.

use hush_api::wire::sys::{
    GenerateRootStatus, InitRequest, KeyStatus, RekeyRequest, RekeyStatus, SealStatus,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::args::{GenerateRootArgs, OperatorCmd, RekeyArgs};
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
        OperatorCmd::GenerateRoot(args) => generate_root(ctx, args).await,
        OperatorCmd::Rekey(args) => rekey(ctx, args).await,
        OperatorCmd::Snapshot(cmd) => super::snapshot::run(ctx, cmd).await,
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

/// The -key-shares / -key-threshold pair of init and rekey.
fn check_shares(shares: u32, threshold: u32) -> anyhow::Result<()> {
    if shares == 0 || threshold == 0 || threshold > shares {
        return Err(usage(format!(
            "invalid -key-shares {shares} / -key-threshold {threshold}: want 1 <= threshold <= shares"
        )));
    }
    Ok(())
}

async fn init(ctx: &Ctx, shares: u32, threshold: u32) -> anyhow::Result<()> {
    check_shares(shares, threshold)?;
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
    if let Some(t) = s.oldest_term {
        rows.push(("Oldest Term In Use", t.to_string()));
    }
    if let Some(w) = &s.rewrap {
        let state = if w.complete { "complete" } else { "running" };
        rows.push((
            "Rewrap",
            format!(
                "{state} (to term {}: {} entries scanned, {} re-encrypted, {} unreadable)",
                w.target_term, w.entries_scanned, w.entries_rewrapped, w.entries_unreadable
            ),
        ));
    }
    table(&rows)
}

/// `hush operator generate-root`, as `vault operator generate-root`.
async fn generate_root(ctx: &Ctx, args: GenerateRootArgs) -> anyhow::Result<()> {
    if let Some(encoded) = &args.decode {
        let encoded = if encoded == "-" {
            read_secret("")?
        } else {
            SecretString::from(encoded.clone())
        };
        let otp = SecretString::from(args.otp.clone().unwrap_or_default());
        let token = decode_root_token(encoded.expose_secret().trim(), otp.expose_secret())?;
        if ctx.json() {
            return print_json(&json!({ "token": token.expose_secret() }));
        }
        println!("{}", token.expose_secret());
        return Ok(());
    }
    let client = ctx.client()?;
    if args.cancel {
        client.generate_root_cancel().await?;
        println!("Success! Root token generation canceled (if it was started)");
        return Ok(());
    }
    if args.status {
        return print_generate_root(ctx, &client.generate_root_status().await?);
    }
    if args.init {
        let otp = args.otp.map(SecretString::from);
        return print_generate_root(ctx, &client.generate_root_init(otp.as_ref()).await?);
    }
    let nonce = match args.nonce {
        Some(n) => n,
        None => client.generate_root_status().await?.nonce,
    };
    if nonce.is_empty() {
        return Err(usage(
            "no root token generation in progress: start one with -init",
        ));
    }
    let key = match args.key {
        Some(k) if k == "-" => read_secret("")?,
        Some(k) => SecretString::from(k),
        None => read_secret("Unseal Key (will be hidden): ")?,
    };
    let status = client.generate_root_update(&key, &nonce).await?;
    print_generate_root(ctx, &status)
}

fn print_generate_root(ctx: &Ctx, s: &GenerateRootStatus) -> anyhow::Result<()> {
    if ctx.json() {
        return print_json(s);
    }
    let mut rows = vec![
        (
            "Nonce",
            if s.nonce.is_empty() {
                "n/a".into()
            } else {
                s.nonce.clone()
            },
        ),
        ("Started", s.started.to_string()),
        ("Progress", format!("{}/{}", s.progress, s.required)),
        ("Complete", s.complete.to_string()),
    ];
    if !s.otp.expose_secret().is_empty() {
        rows.push(("OTP", s.otp.expose_secret().to_string()));
    }
    rows.push(("OTP Length", s.otp_length.to_string()));
    if !s.encoded_token.is_empty() {
        rows.push(("Encoded Token", s.encoded_token.clone()));
    }
    print!("{}", table(&rows));
    if !s.otp.expose_secret().is_empty() {
        println!(
            "\nKeep the OTP: it is shown only now and is needed to decode the token (-decode)."
        );
    }
    Ok(())
}

/// `hush operator rekey`, as `vault operator rekey` (without -pgp-keys and -backup).
async fn rekey(ctx: &Ctx, args: RekeyArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match (args.cancel, args.status, args.verify) {
        (true, _, false) => {
            client.rekey_cancel().await?;
            println!("Success! Canceled rekeying (if it was started)");
            return Ok(());
        }
        (true, _, true) => {
            let status = client.rekey_verify_restart().await?;
            if !ctx.json() {
                println!("Success! Restarted the verification of the new keys\n");
            }
            return print_rekey(ctx, &status);
        }
        (false, true, false) => return print_rekey(ctx, &client.rekey_status().await?),
        (false, true, true) => return print_rekey(ctx, &client.rekey_verify_status().await?),
        (false, false, _) => {}
    }
    if args.init {
        check_shares(args.key_shares, args.key_threshold)?;
        let req = RekeyRequest {
            secret_shares: args.key_shares,
            secret_threshold: args.key_threshold,
            require_verification: args.verify,
        };
        return print_rekey(ctx, &client.rekey_init(&req).await?);
    }
    let nonce = match (args.nonce, args.verify) {
        (Some(n), _) => n,
        (None, false) => client.rekey_status().await?.nonce,
        (None, true) => client.rekey_status().await?.verification_nonce,
    };
    if nonce.is_empty() {
        return Err(usage(if args.verify {
            "no verification of new keys in progress: see -status"
        } else {
            "no rekey in progress: start one with -init"
        }));
    }
    let key = match args.key {
        Some(k) if k == "-" => read_secret("")?,
        Some(k) => SecretString::from(k),
        None => read_secret("Unseal Key (will be hidden): ")?,
    };
    let status = if args.verify {
        client.rekey_verify(&key, &nonce).await?
    } else {
        client.rekey_update(&key, &nonce).await?
    };
    print_rekey(ctx, &status)
}

fn print_rekey(ctx: &Ctx, s: &RekeyStatus) -> anyhow::Result<()> {
    if ctx.json() {
        return print_json(s);
    }
    if s.complete && s.keys.is_empty() {
        println!(
            "Success! The new keys were verified and are now in force: the old keys no longer \
             unseal."
        );
        return Ok(());
    }
    if s.complete {
        let shown = if s.keys_base64.is_empty() {
            &s.keys
        } else {
            &s.keys_base64
        };
        for (i, key) in shown.iter().enumerate() {
            println!("Key {}: {}", i + 1, key.expose_secret());
        }
        println!("\nOperation nonce: {}", s.nonce);
        if s.verification_required {
            println!(
                "\nThese {} keys are not in force yet: a quorum of them (the new threshold) must \
                 be entered with `hush operator rekey -verify` (verification nonce {}). Until \
                 then the old keys still unseal.",
                shown.len(),
                s.verification_nonce
            );
        } else {
            println!(
                "\nhushd unseal keys rekeyed with {} key shares. The old keys no longer unseal: \
                 distribute these ones and keep them safe.",
                shown.len()
            );
        }
        return Ok(());
    }
    let nonce = if s.nonce.is_empty() {
        "n/a".to_string()
    } else {
        s.nonce.clone()
    };
    let mut rows = vec![
        ("Nonce", nonce),
        ("Started", s.started.to_string()),
        ("Rekey Progress", format!("{}/{}", s.progress, s.required)),
        ("New Shares", s.n.to_string()),
        ("New Threshold", s.t.to_string()),
        ("Verification Required", s.verification_required.to_string()),
    ];
    if !s.verification_nonce.is_empty() {
        rows.push(("Verification Nonce", s.verification_nonce.clone()));
    }
    print!("{}", table(&rows));
    Ok(())
}

/// Vault's decoding: unpadded base64, XOR the OTP.
fn decode_root_token(encoded: &str, otp: &str) -> anyhow::Result<SecretString> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| usage("the encoded token is not base64"))?;
    if raw.len() != otp.len() {
        return Err(usage(
            "the OTP and the encoded token differ in length: is it the OTP of this attempt?",
        ));
    }
    let token: String = raw
        .iter()
        .zip(otp.bytes())
        .map(|(a, b)| char::from(a ^ b))
        .collect();
    Ok(SecretString::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vaults_encoding() {
        // base64(RawStd) of "hvs.abc" XOR "0123456" computed independently.
        let token = "hvs.abc";
        let otp = "0123456";
        let xored: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        assert_eq!(xored, vec![0x58, 0x47, 0x41, 0x1d, 0x55, 0x57, 0x55]);
        let encoded = "WEdBHVVXVQ";
        assert_eq!(
            decode_root_token(encoded, otp).unwrap().expose_secret(),
            token
        );
        assert_eq!(
            decode_root_token("WEdBHVVXVQ==", otp)
                .unwrap()
                .expose_secret(),
            token
        );
        assert!(decode_root_token("WEdB", otp).is_err());
        assert!(decode_root_token("!!", otp).is_err());
    }
}
