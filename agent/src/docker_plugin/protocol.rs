//! Docker's VolumeDriver protocol: the request and response bodies (JSON, PascalCase names),
//! as dockerd sends and expects them over the plugin socket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The content type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// `/Plugin.Activate`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activate {
    pub implements: Vec<&'static str>,
}

/// `/VolumeDriver.Create`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(default)]
    pub opts: Option<BTreeMap<String, String>>,
}

/// `Remove`, `Path`, `Get`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameRequest {
    pub name: String,
}

/// `Mount`, `Unmount`: the volume and the caller's mount ID.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountRequest {
    pub name: String,
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// An answer that is only an error (empty: done).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrOnly {
    pub err: String,
}

/// `Mount`, `Path`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountpointResponse {
    pub mountpoint: String,
    pub err: String,
}

/// One volume in `Get` and `List`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub name: String,
    /// Empty while the volume is not mounted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mountpoint: String,
    /// `Get` only: non-secret facts (the options, how many containers hold it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeInfo>,
    pub err: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResponse {
    pub volumes: Vec<VolumeInfo>,
    pub err: String,
}

/// `/VolumeDriver.Capabilities`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapabilitiesResponse {
    pub capabilities: Capabilities,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    /// `local`: the volumes live on this host only.
    pub scope: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_dockers() {
        let create: CreateRequest = serde_json::from_str(
            r#"{"Name":"app","Opts":{"password":"secret/data/app/db#password"}}"#,
        )
        .unwrap();
        assert_eq!(create.name, "app");
        assert_eq!(
            create.opts.unwrap()["password"],
            "secret/data/app/db#password"
        );
        let no_opts: CreateRequest = serde_json::from_str(r#"{"Name":"a","Opts":null}"#).unwrap();
        assert!(no_opts.opts.is_none());
        let mount: MountRequest = serde_json::from_str(r#"{"Name":"app","ID":"abc"}"#).unwrap();
        assert_eq!(mount.id, "abc");
        let caps = CapabilitiesResponse {
            capabilities: Capabilities { scope: "local" },
        };
        assert_eq!(
            serde_json::to_string(&caps).unwrap(),
            r#"{"Capabilities":{"Scope":"local"}}"#
        );
        let act = Activate {
            implements: vec!["VolumeDriver"],
        };
        assert_eq!(
            serde_json::to_string(&act).unwrap(),
            r#"{"Implements":["VolumeDriver"]}"#
        );
        let m = MountpointResponse {
            mountpoint: "/x".into(),
            err: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"Mountpoint":"/x","Err":""}"#
        );
    }
}
