//! The route table of `sys/` ([`crate::logical::paths`]): the core's dispatch gate and the
//! OpenAPI document both read it. The unauthenticated endpoints (init, seal-status, unseal,
//! health, leader, generate-root, rekey) are served before the gate, but are listed here so the
//! document names them. First match wins: specific patterns before `{name+}` ones.

use crate::logical::paths::{Field, Kind, Ops, PathSpec};

const W: Ops = Ops::WRITE;
const R: Ops = Ops::READ;
const L: Ops = Ops::LIST;

const MOUNT_BODY: &[Field] = &[
    Field::req(
        "type",
        Kind::String,
        "The engine or auth method type (`kv`, `approle`, ...).",
    ),
    Field::opt("description", Kind::String, "Human-readable description."),
    Field::opt("config", Kind::Object, "default_lease_ttl, max_lease_ttl."),
    Field::opt("options", Kind::Object, "Engine options (kv: `version`)."),
];

const TUNE_BODY: &[Field] = &[
    Field::opt("default_lease_ttl", Kind::Duration, "Default lease TTL."),
    Field::opt("max_lease_ttl", Kind::Duration, "Maximum lease TTL."),
    Field::opt("description", Kind::String, "Human-readable description."),
    Field::opt("options", Kind::Object, "Engine options (kv: `version`)."),
    Field::opt(
        "token_type",
        Kind::String,
        "Auth methods: `default-service` or `service`.",
    ),
];

const POLICY_BODY: &[Field] = &[Field::req(
    "policy",
    Kind::String,
    "The policy in HCL or JSON.",
)];

const KEYS_BODY: &[Field] = &[
    Field::opt("key", Kind::String, "One unseal key share (hex or base64)."),
    Field::opt("nonce", Kind::String, "The attempt's nonce."),
];

const LEASE_BODY: &[Field] = &[
    Field::opt("lease_id", Kind::String, "The lease id (or in the path)."),
    Field::opt("increment", Kind::Duration, "Requested extension."),
];

/// Every `sys/` route hushd serves.
pub const PATHS: &[PathSpec] = &[
    // Served without a token, even while sealed.
    PathSpec::new(
        "init",
        "init",
        Ops::RW,
        "Initialization status; initialize the store.",
    )
    .body(&[
        Field::opt("secret_shares", Kind::Integer, "Number of key shares."),
        Field::opt(
            "secret_threshold",
            Kind::Integer,
            "Shares needed to unseal.",
        ),
        Field::opt("pgp_keys", Kind::Strings, "Not supported by hushd."),
    ]),
    PathSpec::new("seal-status", "seal-status", R, "Seal status."),
    PathSpec::new("unseal", "unseal", W, "Give one unseal key share.").body(&[
        Field::opt("key", Kind::String, "One unseal key share."),
        Field::opt("reset", Kind::Boolean, "Discard the shares given so far."),
    ]),
    PathSpec::new("health", "health", R, "Health of the node.").query(&[
        Field::opt("standbyok", Kind::Boolean, "Answer 200 on a standby."),
        Field::opt("sealedcode", Kind::Integer, "Status when sealed."),
        Field::opt("uninitcode", Kind::Integer, "Status when not initialized."),
    ]),
    PathSpec::new("leader", "leader", R, "HA status and the active node."),
    PathSpec::new(
        "generate-root/attempt",
        "generate-root-attempt",
        Ops::RWD,
        "Root token generation attempt.",
    )
    .body(&[Field::opt("otp", Kind::String, "One-time pad (base64).")]),
    PathSpec::new(
        "generate-root/update",
        "generate-root-update",
        W,
        "Give a key share to root generation.",
    )
    .body(KEYS_BODY),
    PathSpec::new(
        "rekey/init",
        "rekey-init",
        Ops::RWD,
        "Rekey attempt: status, start, cancel.",
    )
    .body(&[
        Field::opt("secret_shares", Kind::Integer, "New number of shares."),
        Field::opt("secret_threshold", Kind::Integer, "New threshold."),
        Field::opt(
            "require_verification",
            Kind::Boolean,
            "Verify the new shares before use.",
        ),
    ]),
    PathSpec::new(
        "rekey/update",
        "rekey-update",
        W,
        "Give a key share to the rekey.",
    )
    .body(KEYS_BODY),
    PathSpec::new(
        "rekey/verify",
        "rekey-verify",
        Ops::RWD,
        "Verify the new key shares.",
    )
    .body(KEYS_BODY),
    // Authenticated.
    PathSpec::new("seal", "seal", W, "Seal the store."),
    PathSpec::new("step-down", "step-down", W, "Give up the active role (HA)."),
    PathSpec::new("rotate", "rotate", W, "Add a new encryption key term."),
    PathSpec::new("key-status", "key-status", R, "The current key term."),
    PathSpec::new("mounts", "mounts", R, "List the secrets engines."),
    PathSpec::new(
        "mounts/{path+}/tune",
        "mounts-tune",
        Ops::RW,
        "Read or tune a mount.",
    )
    .body(TUNE_BODY),
    PathSpec::new(
        "mounts/{path+}",
        "mount",
        Ops::RWD,
        "Read, enable or disable a secrets engine.",
    )
    .body(MOUNT_BODY),
    PathSpec::new("auth", "auth", R, "List the auth methods."),
    PathSpec::new(
        "auth/{path+}/tune",
        "auth-tune",
        Ops::RW,
        "Read or tune an auth method.",
    )
    .body(TUNE_BODY),
    PathSpec::new(
        "auth/{path+}",
        "auth-method",
        Ops::RWD,
        "Read, enable or disable an auth method.",
    )
    .body(MOUNT_BODY),
    PathSpec::new(
        "policy",
        "policy-list",
        Ops::RL,
        "List ACL policies (legacy path).",
    ),
    PathSpec::new(
        "policy/{name+}",
        "policy",
        Ops::RWD,
        "Read, write or delete an ACL policy (legacy path).",
    )
    .body(&[
        Field::opt("policy", Kind::String, "The policy in HCL or JSON."),
        Field::opt("rules", Kind::String, "The policy (older name)."),
    ]),
    PathSpec::new(
        "policies/acl",
        "policies-acl-list",
        Ops::RL,
        "List ACL policies.",
    ),
    PathSpec::new(
        "policies/acl/{name+}",
        "policies-acl",
        Ops::RWD,
        "Read, write or delete an ACL policy.",
    )
    .body(POLICY_BODY),
    PathSpec::new(
        "policies/password",
        "policies-password-list",
        Ops::RL,
        "List password policies.",
    ),
    PathSpec::new(
        "policies/password/{name+}/generate",
        "policies-password-generate",
        R,
        "Generate a password.",
    ),
    PathSpec::new(
        "policies/password/{name+}",
        "policies-password",
        Ops::RWD,
        "Read, write or delete a password policy.",
    )
    .body(POLICY_BODY),
    PathSpec::new(
        "capabilities-self",
        "capabilities-self",
        W,
        "The caller's capabilities on paths.",
    )
    .body(&[Field::req("paths", Kind::Strings, "Paths to check.")]),
    PathSpec::new(
        "capabilities",
        "capabilities",
        W,
        "A token's capabilities on paths.",
    )
    .body(&[
        Field::req("token", Kind::String, "The token to check."),
        Field::req("paths", Kind::Strings, "Paths to check."),
    ]),
    PathSpec::new("audit", "audit", R, "List the audit devices."),
    PathSpec::new(
        "audit/{path+}",
        "audit-device",
        W.with(Ops::DELETE),
        "Enable or disable an audit device.",
    )
    .body(&[
        Field::req("type", Kind::String, "`file`."),
        Field::opt("description", Kind::String, "Human-readable description."),
        Field::opt("options", Kind::Object, "Device options (`file_path`)."),
    ]),
    PathSpec::new(
        "audit-hash/{path+}",
        "audit-hash",
        W,
        "Hash a value as an audit device does.",
    )
    .body(&[Field::req("input", Kind::String, "The value to hash.")]),
    PathSpec::new("metrics", "metrics", R, "Prometheus metrics.").query(&[Field::req(
        "format",
        Kind::String,
        "`prometheus`.",
    )]),
    PathSpec::new(
        "reports/compliance",
        "reports-compliance",
        R,
        "Compliance report.",
    ),
    PathSpec::new(
        "remount/status/{id+}",
        "remount-status",
        R,
        "Status of a mount move.",
    ),
    PathSpec::new("remount", "remount", W, "Move a mount.").body(&[
        Field::req("from", Kind::String, "The mount's path."),
        Field::req("to", Kind::String, "The new path."),
    ]),
    PathSpec::new(
        "storage/snapshot/verify",
        "storage-snapshot-verify",
        W,
        "Verify a snapshot manifest.",
    )
    .body(&[
        Field::req("manifest", Kind::String, "The manifest, base64."),
        Field::req("mac", Kind::String, "Its MAC, hex."),
    ]),
    PathSpec::new(
        "storage/snapshot",
        "storage-snapshot",
        Ops::RW,
        "Take (GET) or restore (POST) a snapshot.",
    ),
    PathSpec::new(
        "storage/snapshot-force",
        "storage-snapshot-force",
        W,
        "Restore a snapshot of another store.",
    ),
    PathSpec::new(
        "raw",
        "raw-root",
        Ops::RWD.with(L),
        "Raw storage at the root.",
    ),
    PathSpec::new(
        "raw/{path+}",
        "raw",
        Ops::RWD.with(L),
        "Raw storage, behind the barrier.",
    )
    .body(&[
        Field::req("value", Kind::String, "The value to store."),
        Field::opt("encoding", Kind::String, "`base64` if value is base64."),
    ]),
    PathSpec::new("agents", "agents", L, "List the agents that reported."),
    PathSpec::new("agents/report", "agents-report", W, "An agent's report."),
    PathSpec::new(
        "agents/access",
        "agents-access",
        R,
        "Recent file accesses the agents reported.",
    ),
    PathSpec::new(
        "agents/stale",
        "agents-stale",
        R,
        "Agents holding old versions.",
    ),
    PathSpec::new("agents/stats", "agents-stats", R, "Access statistics."),
    PathSpec::new("agents/{id+}", "agent", R, "One agent's last report."),
    PathSpec::new(
        "internal/test/clock",
        "internal-test-clock",
        Ops::RW,
        "The rotation clock (tests).",
    ),
    PathSpec::new(
        "rotation/config",
        "rotation-config-list",
        L,
        "List scheduled rotations.",
    ),
    PathSpec::new(
        "rotation/status",
        "rotation-status-list",
        L,
        "List scheduled rotations.",
    ),
    PathSpec::new(
        "rotation/config/{path+}",
        "rotation-config",
        Ops::RWD,
        "A scheduled rotation.",
    )
    .body(&[Field::req(
        "schedule",
        Kind::String,
        "Cron schedule or interval.",
    )]),
    PathSpec::new(
        "rotation/rotate/{path+}",
        "rotation-rotate",
        W,
        "Rotate now.",
    ),
    PathSpec::new(
        "rotation/status/{path+}",
        "rotation-status",
        R,
        "Status of a rotation.",
    ),
    PathSpec::new("leases", "leases", R, "Irrevocable leases.").query(&[
        Field::opt("type", Kind::String, "`irrevocable` or `all`."),
        Field::opt("include_child", Kind::Boolean, "Include child mounts."),
    ]),
    PathSpec::new(
        "leases/lookup",
        "leases-lookup",
        W.with(L),
        "Look up a lease.",
    )
    .body(LEASE_BODY),
    PathSpec::new(
        "leases/lookup/{prefix+}",
        "leases-lookup-prefix",
        Ops::RL,
        "List leases under a prefix.",
    ),
    PathSpec::new("leases/count", "leases-count", R, "Count leases.").query(&[Field::opt(
        "type",
        Kind::String,
        "`irrevocable` or `all`.",
    )]),
    PathSpec::new("leases/tidy", "leases-tidy", W, "Tidy the lease index."),
    PathSpec::new("leases/renew", "leases-renew", W, "Renew a lease.").body(LEASE_BODY),
    PathSpec::new("leases/renew/{id+}", "leases-renew-id", W, "Renew a lease.").body(LEASE_BODY),
    PathSpec::new("leases/revoke", "leases-revoke", W, "Revoke a lease.").body(LEASE_BODY),
    PathSpec::new(
        "leases/revoke/{id+}",
        "leases-revoke-id",
        W,
        "Revoke a lease.",
    )
    .body(LEASE_BODY),
    PathSpec::new(
        "leases/revoke-prefix/{prefix+}",
        "leases-revoke-prefix",
        W,
        "Revoke leases under a prefix.",
    )
    .body(&[Field::opt(
        "sync",
        Kind::Boolean,
        "Wait for the revocations.",
    )]),
    PathSpec::new(
        "leases/revoke-force/{prefix+}",
        "leases-revoke-force",
        W,
        "Forget leases under a prefix.",
    ),
    PathSpec::new("renew", "renew", W, "Renew a lease (legacy path).").body(LEASE_BODY),
    PathSpec::new("renew/{id+}", "renew-id", W, "Renew a lease (legacy path).").body(LEASE_BODY),
    PathSpec::new("revoke", "revoke", W, "Revoke a lease (legacy path).").body(LEASE_BODY),
    PathSpec::new(
        "revoke/{id+}",
        "revoke-id",
        W,
        "Revoke a lease (legacy path).",
    )
    .body(LEASE_BODY),
    PathSpec::new(
        "revoke-prefix/{prefix+}",
        "revoke-prefix",
        W,
        "Revoke leases under a prefix (legacy path).",
    )
    .body(&[Field::opt(
        "sync",
        Kind::Boolean,
        "Wait for the revocations.",
    )]),
    PathSpec::new(
        "revoke-force/{prefix+}",
        "revoke-force",
        W,
        "Forget leases under a prefix (legacy path).",
    ),
    PathSpec::new("webhooks", "webhooks", L, "List webhooks."),
    PathSpec::new(
        "webhooks/{name}/deliveries",
        "webhooks-deliveries",
        Ops::RL,
        "A webhook's deliveries.",
    )
    .query(&[Field::opt("limit", Kind::Integer, "At most this many.")]),
    PathSpec::new(
        "webhooks/{name}",
        "webhook",
        Ops::RWD,
        "Read, write or delete a webhook.",
    )
    .body(&[
        Field::req("url", Kind::String, "Where to send events (https)."),
        Field::opt("events", Kind::Strings, "Event types to send."),
        Field::opt("secret", Kind::String, "HMAC signing secret."),
    ]),
    PathSpec::new(
        "wrapping/wrap",
        "wrapping-wrap",
        W,
        "Wrap the body (needs X-Vault-Wrap-TTL).",
    ),
    PathSpec::new(
        "wrapping/lookup",
        "wrapping-lookup",
        Ops::RW,
        "Look up a wrapping token.",
    )
    .body(&[Field::opt("token", Kind::String, "The wrapping token.")]),
    PathSpec::new(
        "wrapping/unwrap",
        "wrapping-unwrap",
        W,
        "Unwrap a wrapping token.",
    )
    .body(&[Field::opt("token", Kind::String, "The wrapping token.")]),
    PathSpec::new(
        "wrapping/rewrap",
        "wrapping-rewrap",
        W,
        "Rewrap a wrapping token.",
    )
    .body(&[Field::opt("token", Kind::String, "The wrapping token.")]),
    PathSpec::new(
        "events/subscribe/{pattern+}",
        "events-subscribe",
        R,
        "Subscribe to events (WebSocket).",
    ),
    PathSpec::new(
        "internal/ui/mounts/{path+}",
        "internal-ui-mount",
        R,
        "A mount's type, for any token.",
    ),
    PathSpec::new(
        "internal/specs/openapi",
        "internal-specs-openapi",
        R,
        "This OpenAPI document.",
    ),
];
