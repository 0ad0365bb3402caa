//! `hush policy ...`: ACL policies at `sys/policies/acl`.

use serde_json::json;

use crate::args::PolicyCmd;
use crate::context::{read_stdin, usage, Ctx};
use crate::output::print_json;

pub async fn run(ctx: &Ctx, cmd: PolicyCmd) -> anyhow::Result<()> {
    match cmd {
        PolicyCmd::Write { name, file } => {
            check_name(&name)?;
            let text = if file == "-" {
                read_stdin()?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("could not read policy file {file}: {e}"))?
            };
            if text.trim().is_empty() {
                return Err(usage(format!("the policy in {file} is empty")));
            }
            ctx.client()?.policy_write(&name, &text).await?;
            if !ctx.json() {
                println!("Success! Uploaded policy: {name}");
            }
            Ok(())
        }
        PolicyCmd::Read { name } => {
            check_name(&name)?;
            let Some(policy) = ctx.client()?.policy_read(&name).await? else {
                anyhow::bail!("No policy named: {name}");
            };
            if ctx.json() {
                return print_json(&json!({ "name": name, "policy": policy }));
            }
            print!("{policy}");
            if !policy.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        PolicyCmd::List => {
            let names = ctx.client()?.policy_list().await?;
            if ctx.json() {
                return print_json(&names);
            }
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        PolicyCmd::Delete { name } => {
            check_name(&name)?;
            ctx.client()?.policy_delete(&name).await?;
            if !ctx.json() {
                println!("Success! Deleted policy: {name}");
            }
            Ok(())
        }
    }
}

/// Policy names are one path segment.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(usage(format!(
            "invalid policy name {name:?}: no slashes, not empty"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_segments() {
        assert!(check_name("app-read").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
    }
}
