//! Every bad annotation value is denied, naming the annotation, with an exact reason.

use serde_json::json;

use super::*;

/// A pod with one container `app` (mounting `/data`), init container `migrate`, and the
/// annotations: a good base (`agent-inject`, `role`, `secret-db.pw`) with `changes` on top (an
/// empty value removes the key).
fn pod(changes: &[(&str, &str)]) -> Pod {
    let mut annotations: BTreeMap<String, String> = [
        ("hush.dev/agent-inject", "true"),
        ("hush.dev/role", "web"),
        ("hush.dev/secret-db.pw", "secret/data/app/db#password"),
        ("example.com/other", "left alone"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in changes {
        if v.is_empty() {
            annotations.remove(*k);
        } else {
            annotations.insert(k.to_string(), v.to_string());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "shop", "annotations": annotations},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "migrate:1"}],
            "containers": [{"name": "app", "image": "app:1",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    }))
    .unwrap()
}

fn annotations(changes: &[(&str, &str)]) -> Annotations {
    match read(&pod(changes)).unwrap() {
        Request::Inject(a) => *a,
        Request::Skip(why) => panic!("skipped: {why}"),
    }
}

/// `changes` is denied naming `annotation`, with exactly `reason`.
fn denied(changes: &[(&str, &str)], annotation: &str, reason: &str) {
    let d = read(&pod(changes)).expect_err("denied");
    assert_eq!(d.annotation, annotation, "{d}");
    assert_eq!(d.reason, reason, "{d}");
    assert_eq!(d.to_string(), format!("{annotation}: {reason}"));
}

#[test]
fn a_good_pod_reads_into_typed_annotations() {
    let a = annotations(&[
        (
            "hush.dev/template-app.conf",
            "user={{ secrets.db_json.user }}",
        ),
        ("hush.dev/secret-db.json", "/secret/data/app/db/"),
        ("hush.dev/file-mode-db.pw", "0440"),
        ("hush.dev/uid", "1000"),
        ("hush.dev/gid", "0"),
        ("hush.dev/dest", "/run/secrets"),
        ("hush.dev/volume-size", "4Mi"),
        ("hush.dev/containers", "app, migrate"),
        ("hush.dev/refresh-interval", "30s"),
        ("hush.dev/revoke-on-exit", "true"),
        ("hush.dev/notify-signal", "hup"),
        ("hush.dev/notify-process", "nginx"),
        ("hush.dev/agent-cpu-limit", "1"),
        ("hush.dev/agent-memory-request", "64Mi"),
        ("hush.dev/legacy-sidecar", "false"),
        ("hush.dev/auth-path", "k8s/prod"),
        ("hush.dev/token-audience", "hushd"),
        (
            "hush.dev/agent-image",
            "registry.example.com/hush-agent:0.1.0",
        ),
    ]);
    assert_eq!(a.role.as_deref(), Some("web"));
    assert_eq!(a.uid, Some(1000));
    assert_eq!(a.gid, Some(0));
    assert_eq!(a.containers, Some(vec!["app".into(), "migrate".into()]));
    assert_eq!(
        a.notify,
        Some(Notify {
            signal: "SIGHUP",
            process: "nginx".into()
        })
    );
    assert_eq!(a.files.len(), 3);
    assert_eq!(
        a.files["db.pw"],
        FileAnnotation {
            source: FileSource::Secret {
                key: "db_pw".into(),
                path: "secret/data/app/db".into(),
                field: Some("password".into()),
            },
            mode: Some("0440".into()),
        }
    );
    assert_eq!(
        a.files["db.json"].source,
        FileSource::Secret {
            key: "db_json".into(),
            path: "secret/data/app/db".into(),
            field: None,
        }
    );
    assert!(
        matches!(&a.files["app.conf"].source, FileSource::Template(t) if t.contains("db_json"))
    );
    assert_eq!(a.legacy_sidecar, Some(false));
    assert!(a.revoke_on_exit && !a.pre_populate_only);
}

#[test]
fn no_annotation_false_and_already_injected_are_skipped() {
    for changes in [
        vec![("hush.dev/agent-inject", "")],
        vec![("hush.dev/agent-inject", "false"), ("hush.dev/bogus", "x")],
        vec![("hush.dev/agent-inject-status", "injected")],
    ] {
        assert!(
            matches!(read(&pod(&changes)).unwrap(), Request::Skip(_)),
            "{changes:?}"
        );
    }
    let mut p = pod(&[]);
    p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].name = "hush-agent".into();
    assert!(matches!(read(&p).unwrap(), Request::Skip(_)));
}

#[test]
fn agent_config_needs_no_role_nor_files() {
    let a = annotations(&[
        ("hush.dev/role", ""),
        ("hush.dev/secret-db.pw", ""),
        ("hush.dev/agent-config", "web-agent"),
    ]);
    assert_eq!(a.agent_config.as_deref(), Some("web-agent"));
    assert!(a.files.is_empty() && a.role.is_none());
}

#[test]
fn digit_first_names_get_a_secret_key_templates_can_use() {
    let a = annotations(&[("hush.dev/secret-1password", "kv/data/x#pw")]);
    assert!(
        matches!(&a.files["1password"].source, FileSource::Secret { key, .. } if key == "_1password")
    );
}

#[test]
fn bad_agent_inject() {
    denied(
        &[("hush.dev/agent-inject", "yes")],
        "hush.dev/agent-inject",
        "\"yes\": want \"true\" (inject the agent) or \"false\"",
    );
}

#[test]
fn unknown_key() {
    let d = read(&pod(&[("hush.dev/secrets-db", "x")])).unwrap_err();
    assert_eq!(d.annotation, "hush.dev/secrets-db");
    assert!(
        d.reason
            .starts_with("unknown hush.dev/ annotation; the known ones are agent-inject, "),
        "{d}"
    );
    assert!(
        d.reason
            .ends_with("secret-NAME, template-NAME and file-mode-NAME"),
        "{d}"
    );
}

#[test]
fn bad_secret_file_name() {
    denied(
        &[("hush.dev/secret-.env", "secret/data/app/db")],
        "hush.dev/secret-.env",
        "\".env\" is not a file name: want letters, digits, '.', '_' and '-', not starting with \
         '.', at most 63 characters, e.g. db.password",
    );
}

#[test]
fn bad_secret_path() {
    let reason = |v: &str| {
        format!(
            "{v:?}: want an API PATH with an optional #FIELD, e.g. secret/data/app/db (the JSON \
             of the data) or secret/data/app/db#password (one field's value)"
        )
    };
    // (An empty value removes the key in this helper: see bad_secret_empty_path.)
    for bad in [
        "secret/../x",
        "secret//x",
        "secret/data/db#",
        "sec ret/x",
        "/",
    ] {
        denied(
            &[("hush.dev/secret-db.pw", bad)],
            "hush.dev/secret-db.pw",
            &reason(bad),
        );
    }
}

#[test]
fn bad_secret_empty_path() {
    let mut p = pod(&[]);
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("hush.dev/secret-db.pw".into(), String::new());
    let d = read(&p).unwrap_err();
    assert_eq!(d.annotation, "hush.dev/secret-db.pw");
    assert!(d.reason.starts_with("\"\": want an API PATH"), "{d}");
}

#[test]
fn secret_names_that_meet_in_the_agent_config() {
    denied(
        &[("hush.dev/secret-db_pw", "secret/data/app/other")],
        "hush.dev/secret-db_pw",
        "its secret is named \"db_pw\" in the agent's config (and in templates), as is the one \
         of hush.dev/secret-db.pw: rename one of the files",
    );
}

#[test]
fn template_of_a_secret_file() {
    denied(
        &[("hush.dev/template-db.pw", "{{ 1 }}")],
        "hush.dev/template-db.pw",
        "the file \"db.pw\" is already declared by hush.dev/secret-db.pw: a file has one source",
    );
}

#[test]
fn empty_template() {
    denied(
        &[("hush.dev/template-app.conf", "  ")],
        "hush.dev/template-app.conf",
        "the template is empty: want minijinja text, e.g. \"user={{ secrets.db.username }}\"",
    );
}

#[test]
fn bad_file_mode() {
    denied(
        &[("hush.dev/file-mode-db.pw", "0800")],
        "hush.dev/file-mode-db.pw",
        "\"0800\" is not a file mode: want 3 or 4 octal digits, e.g. 0400, 0440 or 0644",
    );
}

#[test]
fn file_mode_of_no_file() {
    denied(
        &[("hush.dev/file-mode-db.json", "0440")],
        "hush.dev/file-mode-db.json",
        "no file \"db.json\" is declared: a mode is for a file given by \
         hush.dev/secret-db.json or hush.dev/template-db.json",
    );
}

#[test]
fn uid_zero() {
    denied(
        &[("hush.dev/uid", "0")],
        "hush.dev/uid",
        "\"0\": the agent never runs as root; give the uid of the app, e.g. 1000 (its files are \
         owned by it)",
    );
}

#[test]
fn bad_uid() {
    for bad in ["-5", "abc", "4294967296", "2147483648", "+7"] {
        denied(
            &[("hush.dev/uid", bad)],
            "hush.dev/uid",
            &format!("{bad:?}: want a number from 1 to 2147483647, e.g. 1000"),
        );
    }
}

#[test]
fn bad_gid() {
    denied(
        &[("hush.dev/gid", "wheel")],
        "hush.dev/gid",
        "\"wheel\": want a number from 0 to 2147483647, e.g. 1000",
    );
}

#[test]
fn dest_root() {
    denied(
        &[("hush.dev/dest", "/")],
        "hush.dev/dest",
        "\"/\" would hide the container's whole filesystem: want a directory like /secrets",
    );
}

#[test]
fn dest_relative() {
    denied(
        &[("hush.dev/dest", "secrets")],
        "hush.dev/dest",
        "\"secrets\" is not an absolute path: want a directory like /secrets",
    );
}

#[test]
fn dest_with_dot_dot() {
    denied(
        &[("hush.dev/dest", "/run/../etc")],
        "hush.dev/dest",
        "\"/run/../etc\" has an empty, \".\" or \"..\" segment (or a trailing \"/\"): want a \
         plain directory like /secrets or /run/app/secrets",
    );
}

#[test]
fn bad_volume_size() {
    denied(
        &[("hush.dev/volume-size", "16MB")],
        "hush.dev/volume-size",
        "\"16MB\" has an unknown suffix \"MB\"; want a Kubernetes quantity: a number with an \
         optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3), \
         e.g. 250m, 0.5, 128Mi",
    );
}

#[test]
fn zero_volume_size() {
    denied(
        &[("hush.dev/volume-size", "0")],
        "hush.dev/volume-size",
        "\"0\" is less than one byte: want a size like 16Mi",
    );
}

#[test]
fn unknown_container() {
    denied(
        &[("hush.dev/containers", "app,worker")],
        "hush.dev/containers",
        "no container \"worker\" in this pod: its containers: app; its init containers: migrate",
    );
}

#[test]
fn empty_container_name() {
    denied(
        &[("hush.dev/containers", "app,,migrate")],
        "hush.dev/containers",
        "\"app,,migrate\" has an empty name: want a comma list of container names, e.g. \
         app,worker",
    );
}

#[test]
fn bad_booleans() {
    for key in [
        "agent-pre-populate-only",
        "legacy-sidecar",
        "revoke-on-exit",
    ] {
        denied(
            &[(&format!("hush.dev/{key}"), "yes")],
            &format!("hush.dev/{key}"),
            "\"yes\": want \"true\" or \"false\"",
        );
    }
}

#[test]
fn bad_refresh_interval() {
    denied(
        &[("hush.dev/refresh-interval", "1.5m")],
        "hush.dev/refresh-interval",
        "\"1.5m\": want a duration like 30s, 5m or 1h30m (units ms, s, m, h, d)",
    );
}

#[test]
fn too_short_refresh_interval() {
    denied(
        &[("hush.dev/refresh-interval", "1ms")],
        "hush.dev/refresh-interval",
        "\"1ms\" is shorter than the agent allows: want at least 10ms",
    );
}

#[test]
fn bad_notify_signal() {
    denied(
        &[
            ("hush.dev/notify-signal", "KILL"),
            ("hush.dev/notify-process", "nginx"),
        ],
        "hush.dev/notify-signal",
        "\"KILL\" is not a signal the agent sends: want one of SIGHUP, SIGINT, SIGQUIT, \
         SIGUSR1, SIGUSR2, SIGTERM, SIGWINCH",
    );
}

#[test]
fn notify_signal_without_process() {
    denied(
        &[("hush.dev/notify-signal", "SIGHUP")],
        "hush.dev/notify-signal",
        "needs hush.dev/notify-process, the name of the process to signal, e.g. nginx",
    );
}

#[test]
fn notify_process_without_signal() {
    denied(
        &[("hush.dev/notify-process", "nginx")],
        "hush.dev/notify-process",
        "needs hush.dev/notify-signal, the signal to send, e.g. SIGHUP",
    );
}

#[test]
fn bad_notify_process() {
    denied(
        &[
            ("hush.dev/notify-signal", "SIGHUP"),
            ("hush.dev/notify-process", "nginx master"),
        ],
        "hush.dev/notify-process",
        "\"nginx master\" is empty or holds spaces: want one word, e.g. nginx",
    );
}

#[test]
fn bad_role() {
    denied(
        &[("hush.dev/role", "web app")],
        "hush.dev/role",
        "\"web app\" is empty or holds spaces: want one word, e.g. web",
    );
}

#[test]
fn missing_role() {
    denied(
        &[("hush.dev/role", "")],
        "hush.dev/role",
        "missing: the hushd Kubernetes auth role the agent logs in as, e.g. web (or name a \
         ConfigMap holding the agent's config in hush.dev/agent-config)",
    );
}

#[test]
fn bad_auth_path() {
    denied(
        &[("hush.dev/auth-path", "/kubernetes")],
        "hush.dev/auth-path",
        "\"/kubernetes\" is not an auth mount path: want letters, digits, '-', '_', '.' and \
         inner '/', e.g. kubernetes or k8s/prod",
    );
}

#[test]
fn bad_token_audience() {
    denied(
        &[("hush.dev/token-audience", "a b")],
        "hush.dev/token-audience",
        "\"a b\" is empty or holds spaces: want one word, e.g. hush",
    );
}

#[test]
fn bad_agent_image() {
    denied(
        &[("hush.dev/agent-image", "hush agent")],
        "hush.dev/agent-image",
        "\"hush agent\" is empty or holds spaces: want one word, e.g. \
         registry.example.com/hush-agent:0.1.0",
    );
}

#[test]
fn bad_resources() {
    for key in [
        "agent-cpu",
        "agent-memory",
        "agent-cpu-request",
        "agent-cpu-limit",
        "agent-memory-request",
        "agent-memory-limit",
    ] {
        denied(
            &[(&format!("hush.dev/{key}"), "-1")],
            &format!("hush.dev/{key}"),
            "\"-1\" has a sign (resources and sizes are never negative); want a Kubernetes \
             quantity: a number with an optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, \
             Pi, Ei or an exponent like e3), e.g. 250m, 0.5, 128Mi",
        );
    }
}

#[test]
fn agent_cpu_and_memory_set_request_and_limit_unless_given_one_by_one() {
    let a = annotations(&[
        ("hush.dev/agent-cpu", "100m"),
        ("hush.dev/agent-memory", "64Mi"),
        ("hush.dev/agent-memory-limit", "96Mi"),
    ]);
    assert_eq!(a.cpu_request.as_deref(), Some("100m"));
    assert_eq!(a.cpu_limit.as_deref(), Some("100m"));
    assert_eq!(a.memory_request.as_deref(), Some("64Mi"));
    assert_eq!(a.memory_limit.as_deref(), Some("96Mi"));
}

#[test]
fn bad_agent_config_name() {
    denied(
        &[
            ("hush.dev/secret-db.pw", ""),
            ("hush.dev/agent-config", "Web_Agent"),
        ],
        "hush.dev/agent-config",
        "\"Web_Agent\" is not a ConfigMap name: want a DNS-1123 subdomain (lowercase letters, \
         digits, '-' and '.', starting and ending with a letter or digit, at most 253 \
         characters), e.g. app-agent-config",
    );
}

#[test]
fn files_beside_agent_config() {
    denied(
        &[("hush.dev/agent-config", "web-agent")],
        "hush.dev/secret-db.pw",
        "hush.dev/agent-config names a ConfigMap holding the agent's whole config: put this \
         file in the ConfigMap's agent.toml (or drop hush.dev/agent-config)",
    );
}

#[test]
fn nothing_to_render() {
    denied(
        &[("hush.dev/secret-db.pw", "")],
        "hush.dev/agent-inject",
        "nothing to render: add hush.dev/secret-NAME: PATH[#FIELD] or hush.dev/template-NAME \
         annotations, or name a ConfigMap holding the agent's config in hush.dev/agent-config",
    );
}

#[test]
fn pre_populate_only_with_revoke_on_exit() {
    denied(
        &[
            ("hush.dev/agent-pre-populate-only", "true"),
            ("hush.dev/revoke-on-exit", "true"),
        ],
        "hush.dev/revoke-on-exit",
        "with hush.dev/agent-pre-populate-only the agent exits before the app starts: revoking \
         its token then would revoke the credentials the app is given (drop one of the two)",
    );
}

#[test]
fn pre_populate_only_with_notify() {
    denied(
        &[
            ("hush.dev/agent-pre-populate-only", "true"),
            ("hush.dev/notify-signal", "SIGHUP"),
            ("hush.dev/notify-process", "app"),
        ],
        "hush.dev/notify-signal",
        "with hush.dev/agent-pre-populate-only the agent exits before the app starts: there is \
         no change to notify (drop one of the two)",
    );
}
