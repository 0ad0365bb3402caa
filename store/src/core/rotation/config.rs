//! `sys/rotation/config/:mount/:path`: what to rotate, when, with which values, through
//! which webhook. Validated whole before anything is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::schedule::Schedule;

/// The longest generated value.
pub const MAX_LENGTH: u64 = 1024;
/// Fields generated per rotation at most.
pub const MAX_FIELDS: usize = 32;
/// Reads that may trigger a rotation at most (`on_access`).
pub const MAX_ON_ACCESS: u64 = 1_000_000;

const FIELDS: &[&str] = &["schedule", "generate", "webhook", "on_access"];

/// How one field's new value is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// A named password policy (`sys/policies/password/:name`).
    Policy(String),
    /// Vault's default password policy at this length.
    Length(u64),
}

/// One secret's rotation settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationConfig {
    /// The mount, with its trailing slash: `secret/`.
    pub mount: String,
    /// The key below the mount's `data/`: `app/db`.
    pub key: String,
    pub schedule: Option<String>,
    pub generate: BTreeMap<String, Generator>,
    pub webhook: String,
    /// Rotate after the current value was read this many times.
    pub on_access: Option<u64>,
    pub updated_time: DateTime<Utc>,
}

impl RotationConfig {
    /// `secret/app/db`: the name under `sys/rotation/*/`.
    pub fn name(&self) -> String {
        format!("{}{}", self.mount, self.key)
    }

    /// `secret/data/app/db`: the API path readers use.
    pub fn data_path(&self) -> String {
        format!("{}data/{}", self.mount, self.key)
    }

    pub fn parsed_schedule(&self) -> Option<Schedule> {
        self.schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
    }

    pub fn to_json(&self) -> Value {
        let generate: Map<String, Value> = self
            .generate
            .iter()
            .map(|(field, g)| {
                let v = match g {
                    Generator::Policy(p) => json!({ "policy": p }),
                    Generator::Length(n) => json!({ "length": n }),
                };
                (field.clone(), v)
            })
            .collect();
        json!({
            "path": self.name(),
            "data_path": self.data_path(),
            "schedule": self.schedule,
            "generate": generate,
            "webhook": self.webhook,
            "on_access": self.on_access,
            "updated_time": self.updated_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// Build from a request body; every problem is one exact message.
    pub fn parse(
        mount: &str,
        key: &str,
        data: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<RotationConfig, String> {
        if let Some(unknown) = data.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {unknown:?}: rotation configs take {}",
                FIELDS.join(", ")
            ));
        }
        let schedule = match data.get("schedule") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                Schedule::parse(s)?;
                Some(s.trim().to_string())
            }
            Some(_) => return Err("schedule must be a string".into()),
        };
        let on_access = match data.get("on_access") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_ON_ACCESS).contains(&n) => Some(n),
                _ => {
                    return Err(format!(
                        "on_access must be a number of reads from 1 to {MAX_ON_ACCESS}"
                    ))
                }
            },
        };
        if schedule.is_none() && on_access.is_none() {
            return Err("give a schedule, on_access, or both".into());
        }
        let webhook = match data.get("webhook") {
            Some(Value::String(w)) if !w.trim().is_empty() => w.trim().to_string(),
            _ => {
                return Err(
                    "webhook is required: the name of a sys/webhooks entry that runs the steps"
                        .into(),
                )
            }
        };
        let generate = parse_generate(data.get("generate"))?;
        Ok(RotationConfig {
            mount: mount.to_string(),
            key: key.to_string(),
            schedule,
            generate,
            webhook,
            on_access,
            updated_time: now,
        })
    }
}

fn parse_generate(v: Option<&Value>) -> Result<BTreeMap<String, Generator>, String> {
    let Some(Value::Object(fields)) = v else {
        return Err(
            "generate is required: an object of field -> {\"policy\": NAME} or {\"length\": N}"
                .into(),
        );
    };
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(format!("generate must name 1 to {MAX_FIELDS} fields"));
    }
    let mut out = BTreeMap::new();
    for (field, spec) in fields {
        if field.is_empty() || field.len() > 128 {
            return Err("generate: field names must be 1 to 128 bytes".into());
        }
        let g = match spec {
            Value::Object(m) if m.len() == 1 => match (m.get("policy"), m.get("length")) {
                (Some(Value::String(p)), None) if !p.trim().is_empty() => {
                    Generator::Policy(p.trim().to_string())
                }
                (None, Some(n)) => match n.as_u64() {
                    Some(n) if (4..=MAX_LENGTH).contains(&n) => Generator::Length(n),
                    _ => {
                        return Err(format!(
                            "generate.{field}.length must be from 4 to {MAX_LENGTH}"
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "generate.{field} must be {{\"policy\": NAME}} or {{\"length\": N}}"
                    ))
                }
            },
            _ => {
                return Err(format!(
                    "generate.{field} must be {{\"policy\": NAME}} or {{\"length\": N}}"
                ))
            }
        };
        out.insert(field.clone(), g);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<RotationConfig, String> {
        let Value::Object(m) = body else { panic!() };
        RotationConfig::parse("secret/", "app/db", &m, Utc::now())
    }

    #[test]
    fn a_full_config_parses_and_reads_back() {
        let c = parse(json!({
            "schedule": "daily",
            "generate": {"password": {"policy": "strong"}, "pin": {"length": 8}},
            "webhook": "db-rotator",
            "on_access": 100,
        }))
        .unwrap();
        assert_eq!(c.name(), "secret/app/db");
        assert_eq!(c.data_path(), "secret/data/app/db");
        assert_eq!(c.generate["pin"], Generator::Length(8));
        let j = c.to_json();
        assert_eq!(j["generate"]["password"]["policy"], "strong");
        assert_eq!(j["on_access"], 100);
    }

    #[test]
    fn each_bad_field_has_its_message() {
        let ok = || json!({"schedule": "daily", "generate": {"p": {"length": 20}}, "webhook": "w"});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"generate": {"p": {"length": 20}}, "webhook": "w"}),
                "schedule, on_access",
            ),
            (
                {
                    let mut b = ok();
                    b["schedule"] = "sometimes".into();
                    b
                },
                "is not a schedule",
            ),
            (
                {
                    let mut b = ok();
                    b["schedule"] = 5.into();
                    b
                },
                "schedule must be a string",
            ),
            (
                {
                    let mut b = ok();
                    b["webhook"] = "".into();
                    b
                },
                "webhook is required",
            ),
            (
                {
                    let mut b = ok();
                    b["generate"] = json!({});
                    b
                },
                "1 to 32 fields",
            ),
            (
                {
                    let mut b = ok();
                    b.as_object_mut().unwrap().remove("generate");
                    b
                },
                "generate is required",
            ),
            (
                {
                    let mut b = ok();
                    b["generate"] = json!({"p": {"length": 2}});
                    b
                },
                "length must be from 4",
            ),
            (
                {
                    let mut b = ok();
                    b["generate"] = json!({"p": {"length": 8, "policy": "x"}});
                    b
                },
                "must be {\"policy\"",
            ),
            (
                {
                    let mut b = ok();
                    b["generate"] = json!({"p": "x"});
                    b
                },
                "must be {\"policy\"",
            ),
            (
                {
                    let mut b = ok();
                    b["on_access"] = 0.into();
                    b
                },
                "on_access must be",
            ),
            (
                {
                    let mut b = ok();
                    b["colour"] = "red".into();
                    b
                },
                "unknown field \"colour\"",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
