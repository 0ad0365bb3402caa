//! A cluster of HA hushd on one real PostgreSQL ([`Postgres::start_ha`]). Node `i` reaches
//! PostgreSQL at its own loopback address, [`Cluster::pg_address`], so an iptables rule on
//! that address cuts one node off and leaves the others, and the harness (over the Unix
//! socket) alone.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pg::{Postgres, HA_ADDRESSES};
use crate::{free_port, http_client, Hushd};

/// A running cluster, initialised and unsealed, one node active.
#[derive(Debug)]
pub struct Cluster {
    pub pg: Postgres,
    /// `None`: killed.
    pub nodes: Vec<Option<Hushd>>,
    /// The unseal key (one share) and the root token.
    pub key: String,
    pub token: String,
    /// The database holding the store.
    pub db: &'static str,
    ttl: String,
    storage: String,
    ports: Vec<u16>,
}

/// A client that shows a standby's `307` instead of following it.
pub fn no_redirect_client() -> reqwest::Client {
    crate::install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Cluster {
    /// `n` nodes with lock TTL `ttl` (such as `5s`), node 0 initialised (one share) and all
    /// unsealed; returns once node 0 is active.
    pub async fn start(n: usize, ttl: &str) -> Cluster {
        assert!(
            n < usize::from(HA_ADDRESSES),
            "at most {} nodes",
            HA_ADDRESSES - 1
        );
        let pg = Postgres::start_ha().await;
        let db = "hushha";
        let storage = pg.storage_url(db, "sslmode=disable").await;
        let mut cluster = Cluster {
            pg,
            nodes: Vec::new(),
            key: String::new(),
            token: String::new(),
            db,
            ttl: ttl.to_string(),
            storage,
            ports: (0..n).map(|_| free_port()).collect(),
        };
        for i in 0..n {
            let node = cluster.spawn(i).await;
            cluster.nodes.push(Some(node));
        }
        let first = cluster.node_mut(0);
        let (s, body) = first
            .call(
                "PUT",
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(s, 200, "init: {body}\n{}", first.stderr());
        let key = body["keys"][0].as_str().unwrap().to_string();
        let token = body["root_token"].as_str().unwrap().to_string();
        let (s, body) = first
            .call("PUT", "sys/unseal", Some(json!({ "key": key })))
            .await;
        assert_eq!(s, 200, "unseal: {body}\n{}", first.stderr());
        first.token = Some(token.clone());
        cluster.key = key;
        cluster.token = token;
        assert_eq!(cluster.wait_active(&[0], Duration::from_secs(20)).await, 0);
        for i in 1..n {
            cluster.unseal(i).await;
        }
        cluster
    }

    /// Node `i`'s own address for PostgreSQL: 127.0.0.(i + 2).
    pub fn pg_address(i: usize) -> String {
        format!("127.0.0.{}", i + 2)
    }

    /// Node `i`'s API address (`--api-addr`).
    pub fn api_addr(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    async fn spawn(&self, i: usize) -> Hushd {
        let storage = self
            .storage
            .replace("@127.0.0.1:", &format!("@{}:", Self::pg_address(i)));
        let api = self.api_addr(i);
        let args = [
            "--storage",
            &storage,
            "--insecure-no-tls",
            "--ha",
            "--api-addr",
            &api,
            "--ha-lock-ttl",
            &self.ttl,
        ];
        Hushd::start_on(self.ports[i], &args, "http", http_client()).await
    }

    pub fn node(&self, i: usize) -> &Hushd {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Hushd {
        self.nodes[i].as_mut().expect("node is running")
    }

    /// Unseal node `i` with the cluster's key and give it the root token.
    pub async fn unseal(&mut self, i: usize) {
        let (key, token) = (self.key.clone(), self.token.clone());
        let node = self.node_mut(i);
        node.unseal(&key).await;
        node.token = Some(token);
    }

    /// Start node `i` again (after a kill) and unseal it.
    pub async fn restart(&mut self, i: usize) {
        let node = self.spawn(i).await;
        self.nodes[i] = Some(node);
        self.unseal(i).await;
    }

    /// `sys/leader` of node `i`.
    pub async fn leader(&self, i: usize) -> Value {
        let (s, body) = self.node(i).call("GET", "sys/leader", None).await;
        assert_eq!(s, 200, "sys/leader of node {i}: {body}");
        body
    }

    /// The first of `among` to say it is active, polled every 50 ms; panics after `limit`.
    pub async fn wait_active(&self, among: &[usize], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            for &i in among {
                let client = &self.node(i).client;
                let url = format!("{}/v1/sys/leader", self.node(i).addr);
                let answer = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = answer {
                    if let Ok(body) = r.json::<Value>().await {
                        if body["is_self"] == json!(true) {
                            return i;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "none of nodes {among:?} became active within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until node `i` is a standby that names `leader`'s address.
    pub async fn wait_standby_of(&self, i: usize, leader: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        let want = json!(self.api_addr(leader));
        loop {
            let body = self.leader(i).await;
            if body["is_self"] == json!(false) && body["leader_address"] == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} is not a standby of node {leader} after {limit:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill9();
        }
    }
}

/// An iptables rule pair that drops every packet between a node's own PostgreSQL address
/// and PostgreSQL's port, both ways (a silent partition: nothing is refused, everything
/// hangs). Removed on drop.
#[derive(Debug)]
pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    pub fn cut(address: &str, port: u16) -> Partition {
        let port = port.to_string();
        let rules: Vec<Vec<String>> = vec![
            vec!["-d", address, "-p", "tcp", "--dport", &port, "-j", "DROP"],
            vec!["-s", address, "-p", "tcp", "--sport", &port, "-j", "DROP"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect())
        .collect();
        for rule in &rules {
            iptables("-I", rule);
        }
        Partition { rules }
    }

    /// Remove the rules (also on drop).
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.remove();
    }
}

fn iptables(action: &str, rule: &[String]) {
    let out = Command::new("iptables")
        .args(["-w", action, "OUTPUT"])
        .args(rule)
        .output()
        .expect("run iptables (scripts/test installs it)");
    assert!(
        out.status.success(),
        "iptables {action} OUTPUT {rule:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
