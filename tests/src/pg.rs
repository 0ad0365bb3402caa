//! A real PostgreSQL cluster for the database engine's tests: `initdb` in a temp dir, then
//! `postgres` on a free loopback port, run as the `postgres` OS user when the tests run as
//! root (PostgreSQL refuses root). The harness itself logs in over the cluster's Unix socket
//! (trust); everyone else over TCP with a password (SCRAM). Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser the engine is configured with.
pub const ENGINE_USER: &str = "hush_root";
pub const ENGINE_PASSWORD: &str = "Engine-Root-Pw-42";

/// The owner of the storage backend's databases ([`Postgres::storage_url`]): a plain login
/// role, no superuser. The password needs percent-encoding in a URL.
pub const STORAGE_USER: &str = "hush_storage";
pub const STORAGE_PASSWORD: &str = "St/re-Pw-77";
/// [`STORAGE_PASSWORD`] as written in a URL.
pub const STORAGE_PASSWORD_URL: &str = "St%2Fre-Pw-77";

/// How many loopback addresses [`Postgres::start_ha`] listens on.
pub const HA_ADDRESSES: u8 = 4;

/// A running cluster.
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    /// The Unix socket directory (the harness's trusted way in).
    pub socket_dir: PathBuf,
    /// With TLS: the CA that signed the server certificate.
    pub ca: Option<PathBuf>,
    child: Child,
    dir: tempfile::TempDir,
}

/// `bin` of the newest installed PostgreSQL (Debian's layout).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): scripts/test installs it")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command that runs `program` as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", path.display());
    }
}

impl Postgres {
    /// Mounts `database/` on `h` against this cluster (connection `pg`) with role `role`:
    /// `create` as its creation statement, these TTLs (seconds).
    pub async fn mount_engine(
        &self,
        h: &crate::Hushd,
        role: &str,
        create: &str,
        ttl: u64,
        max_ttl: u64,
    ) {
        let ok = |(st, b): (u16, serde_json::Value)| assert!(st == 200 || st == 204, "{st} {b}");
        let mount = serde_json::json!({"type": "database"});
        ok(h.call("POST", "sys/mounts/database", Some(mount)).await);
        let config = serde_json::json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": self.template_url("sslmode=disable"),
            "username": ENGINE_USER,
            "password": ENGINE_PASSWORD,
            "allowed_roles": [role],
        });
        ok(h.call("POST", "database/config/pg", Some(config)).await);
        let role_body = serde_json::json!({"db_name": "pg", "creation_statements": [create],
                                           "default_ttl": ttl, "max_ttl": max_ttl});
        ok(
            h.call("POST", &format!("database/roles/{role}"), Some(role_body))
                .await,
        );
    }

    /// The roles the engine made (`v-...`), as the database sees them.
    pub async fn dynamic_roles(&self) -> Vec<String> {
        self.admin()
            .await
            .query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    /// A plain (no TLS) cluster, with `fsync=off` (fast; tests do not pull the plug).
    pub async fn start() -> Postgres {
        Self::start_inner(false, false).await
    }

    /// As [`Postgres::start`], listening on 127.0.0.1 to 127.0.0.[`HA_ADDRESSES`] (TCP logins
    /// from anywhere in 127/8): an HA test gives each hushd its own address, so an iptables
    /// rule can cut one node off while the others keep talking.
    pub async fn start_ha() -> Postgres {
        Self::start_with(false, false, HA_ADDRESSES).await
    }

    /// A plain cluster with `fsync=on`, as durable as the machine: for benchmarks that
    /// compare durable writes with SQLite's.
    pub async fn start_durable() -> Postgres {
        Self::start_inner(false, true).await
    }

    /// A cluster that takes TCP logins over TLS only, with a certificate for 127.0.0.1
    /// signed by [`Postgres::ca`].
    pub async fn start_tls() -> Postgres {
        Self::start_inner(true, false).await
    }

    async fn start_inner(tls: bool, fsync: bool) -> Postgres {
        Self::start_with(tls, fsync, 1).await
    }

    async fn start_with(tls: bool, fsync: bool, addresses: u8) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).unwrap();
        chown_postgres(dir.path());
        let out = as_postgres(&bin.join("initdb"))
            .args([
                "--username=postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ca = if tls {
            let (ca, cert, key) = crate::write_ca_signed_cert(&data, "server");
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            let conf = format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            );
            let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
            existing.push_str(&conf);
            std::fs::write(data.join("postgresql.conf"), existing).unwrap();
            chown_postgres(&data);
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            Some(ca)
        } else {
            None
        };
        if addresses > 1 {
            let mut hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
            hba.push_str("host all all 127.0.0.0/8 scram-sha-256\n");
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        }
        let listen = (1..=addresses)
            .map(|i| format!("127.0.0.{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c"])
            .arg(format!("listen_addresses={listen}"))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", socket_dir.display()))
            .args(["-c", if fsync { "fsync=on" } else { "fsync=off" }])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        let mut pg = Postgres {
            port,
            socket_dir,
            ca,
            child,
            dir,
        };
        pg.wait_ready().await;
        pg.admin()
            .await
            .batch_execute(&format!(
                "CREATE ROLE {ENGINE_USER} SUPERUSER LOGIN PASSWORD '{ENGINE_PASSWORD}';
                 CREATE TABLE public.things (id int); INSERT INTO public.things VALUES (1), (2);"
            ))
            .await
            .expect("create the engine's superuser");
        pg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited with {status}: {}", self.log());
            }
            if self.try_admin().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn try_admin(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// The bootstrap superuser over the Unix socket (trust): the test's own view.
    pub async fn admin(&self) -> tokio_postgres::Client {
        self.try_admin().await.expect("admin connection")
    }

    /// A TCP login as `user` with `password` (no TLS).
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(10));
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// The engine's `connection_url` template (TLS settings appended as `extra`).
    pub fn template_url(&self, extra: &str) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?{extra}",
            self.port
        )
    }

    /// `pg_roles.rolvaliduntil` of `user` as text (None: no such role or no limit).
    pub async fn valid_until(&self, user: &str) -> Option<String> {
        self.admin()
            .await
            .query_opt(
                "SELECT rolvaliduntil::text FROM pg_roles WHERE rolname = $1",
                &[&user],
            )
            .await
            .unwrap()
            .and_then(|row| row.get::<_, Option<String>>(0))
    }

    /// A new database `db` owned by [`STORAGE_USER`] (created with the first), and the
    /// `--storage` URL of hushd for it with `extra` query options (such as `sslmode=disable`).
    pub async fn storage_url(&self, db: &str, extra: &str) -> String {
        let admin = self.admin().await;
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_roles WHERE rolname = $1",
                &[&STORAGE_USER],
            )
            .await
            .unwrap()
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!(
                    "CREATE ROLE {STORAGE_USER} LOGIN PASSWORD '{STORAGE_PASSWORD}'"
                ))
                .await
                .unwrap();
        }
        admin
            .batch_execute(&format!("CREATE DATABASE {db} OWNER {STORAGE_USER}"))
            .await
            .unwrap();
        format!(
            "postgres://{STORAGE_USER}:{STORAGE_PASSWORD_URL}@127.0.0.1:{}/{db}?{extra}",
            self.port
        )
    }

    /// The bootstrap superuser on database `db` over the Unix socket.
    pub async fn admin_on(&self, db: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname(db);
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    pub async fn role_exists(&self, user: &str) -> bool {
        self.admin()
            .await
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
            .await
            .unwrap()
            .is_some()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (ends sessions, no waiting for clients).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
