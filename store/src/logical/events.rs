//! Events: what a backend says happened, after its write committed (Vault's event
//! notifications, `sys/events/subscribe`).
//!
//! A backend gets an [`EventPublisher`] for its mount when it starts; it calls
//! [`EventPublisher::publish`] only once its storage write has succeeded, and while it still
//! holds whatever serialises writes to that key, so the events of one key leave in the order
//! the writes committed. The publisher hands the [`Event`] to an [`EventSink`] (the core's
//! bus) and never waits: a subscriber can never slow a write down.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Where events go (the core's bus). `publish` must not block.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: Event);
}

/// The mount an event comes from (Vault's `plugin_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    /// `secret` for secrets engines, `auth` for auth methods.
    pub mount_class: String,
    pub mount_accessor: String,
    /// With its trailing slash: `secret/`.
    pub mount_path: String,
    /// The backend type: `kv`, `database`.
    pub plugin: String,
}

/// One committed change. It holds paths and version numbers, never secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// A UUID, the CloudEvents `id`.
    pub id: String,
    /// `kv-v2/data-write`, `database/rotate`, ...
    pub event_type: String,
    /// The full API path the change was made through: `secret/data/foo`.
    pub path: String,
    /// The full API path whose read the event is about (`secret/data/foo` for a
    /// `kv-v2/metadata-write`); `None`: `path` itself. Subscribers must be able to read it.
    pub data_path: Option<String>,
    /// Further metadata, as Vault sends it: string values (`current_version`, `modified`, ...).
    pub metadata: Vec<(String, String)>,
    pub plugin: PluginInfo,
    pub time: DateTime<Utc>,
}

impl Event {
    /// The path a subscriber must be allowed to read to receive this event.
    pub fn access_path(&self) -> &str {
        self.data_path.as_deref().unwrap_or(&self.path)
    }

    /// Vault's CloudEvents JSON (`json=true`), one WebSocket text frame.
    pub fn to_cloudevent(&self) -> serde_json::Value {
        let mut metadata = serde_json::Map::new();
        metadata.insert("path".into(), self.path.clone().into());
        if let Some(data_path) = &self.data_path {
            metadata.insert("data_path".into(), data_path.clone().into());
        }
        for (k, v) in &self.metadata {
            metadata.insert(k.clone(), v.clone().into());
        }
        serde_json::json!({
            "id": self.id,
            "source": "https://vaultproject.io/",
            "specversion": "1.0",
            "type": "*",
            "datacontenttype": "application/cloudevents",
            "time": self.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "data": {
                "event": {
                    "id": self.id,
                    "metadata": metadata,
                },
                "event_type": self.event_type,
                "plugin_info": {
                    "mount_class": self.plugin.mount_class,
                    "mount_accessor": self.plugin.mount_accessor,
                    "mount_path": self.plugin.mount_path,
                    "plugin": self.plugin.plugin,
                },
            },
        })
    }
}

/// A mount's handle on the bus: it knows the mount, so a backend names paths relative to it.
#[derive(Clone, Default)]
pub struct EventPublisher {
    sink: Option<Arc<dyn EventSink>>,
    plugin: PluginInfo,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("mount_path", &self.plugin.mount_path)
            .field("connected", &self.sink.is_some())
            .finish()
    }
}

impl EventPublisher {
    /// A publisher for the mount `plugin` into `sink`.
    pub fn new(sink: Arc<dyn EventSink>, plugin: PluginInfo) -> Self {
        EventPublisher {
            sink: Some(sink),
            plugin,
        }
    }

    /// A publisher that drops everything (backends started outside a core, in tests).
    pub fn none() -> Self {
        EventPublisher::default()
    }

    /// Publish `event_type` for `rel_path` (below the mount, e.g. `data/foo`); `data_rel`:
    /// the path below the mount whose read the event is about, when not `rel_path`.
    /// `operation` and `modified` are added to `metadata` as Vault does. Call it only after
    /// the write committed.
    pub fn publish(
        &self,
        event_type: &str,
        rel_path: &str,
        data_rel: Option<&str>,
        metadata: &[(&str, String)],
    ) {
        let Some(sink) = &self.sink else {
            return;
        };
        let operation = event_type.split_once('/').map_or(event_type, |(_, op)| op);
        let mut meta = vec![
            ("modified".to_string(), "true".to_string()),
            ("operation".to_string(), operation.to_string()),
        ];
        meta.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mount = &self.plugin.mount_path;
        sink.publish(Event {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            path: format!("{mount}{rel_path}"),
            data_path: data_rel.map(|d| format!("{mount}{d}")),
            metadata: meta,
            plugin: self.plugin.clone(),
            time: Utc::now(),
        });
    }
}

/// Vault's event-type globs: `*` matches any run of characters (`/` included), everything
/// else itself. `kv*`, `kv-v2/data-*`, `*`.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_globs() {
        for (p, t, want) in [
            ("*", "kv-v2/data-write", true),
            ("kv*", "kv-v2/data-write", true),
            ("kv-v2/*", "kv-v2/data-write", true),
            ("kv-v2/data-*", "kv-v2/data-write", true),
            ("kv-v2/data-*", "kv-v2/metadata-write", false),
            ("kv-v1/*", "kv-v2/data-write", false),
            ("kv-v2/data-write", "kv-v2/data-write", true),
            ("kv-v2/data-write", "kv-v2/data-writes", false),
            ("*/data-write", "kv-v2/data-write", true),
            ("kv*write", "kv-v2/data-write", true),
            ("kv*write", "kv-v2/data-delete", false),
            ("a*a", "a", false),
            ("*data*", "kv-v2/data-write", true),
            ("database/*", "database/rotate", true),
        ] {
            assert_eq!(glob_matches(p, t), want, "{p} ~ {t}");
        }
    }

    struct Collect(parking_lot::Mutex<Vec<Event>>);
    impl EventSink for Collect {
        fn publish(&self, event: Event) {
            self.0.lock().push(event);
        }
    }

    #[test]
    fn a_publisher_names_full_paths_and_vaults_metadata() {
        let sink = Arc::new(Collect(parking_lot::Mutex::new(Vec::new())));
        let p = EventPublisher::new(
            sink.clone(),
            PluginInfo {
                mount_class: "secret".into(),
                mount_accessor: "kv_1234".into(),
                mount_path: "secret/".into(),
                plugin: "kv".into(),
            },
        );
        p.publish(
            "kv-v2/metadata-write",
            "metadata/a/b",
            Some("data/a/b"),
            &[("current_version", "3".into())],
        );
        EventPublisher::none().publish("kv-v2/data-write", "data/x", None, &[]);
        let events = sink.0.lock();
        assert_eq!(events.len(), 1);
        let e = events[0].to_cloudevent();
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["data"]["event_type"], "kv-v2/metadata-write");
        let m = &e["data"]["event"]["metadata"];
        assert_eq!(m["path"], "secret/metadata/a/b");
        assert_eq!(m["data_path"], "secret/data/a/b");
        assert_eq!(m["operation"], "metadata-write");
        assert_eq!(m["modified"], "true");
        assert_eq!(m["current_version"], "3");
        assert_eq!(e["data"]["event"]["id"], e["id"]);
        assert_eq!(e["data"]["plugin_info"]["mount_path"], "secret/");
        assert_eq!(events[0].access_path(), "secret/data/a/b");
    }
}
