//! Benchmark: token requests per second the sandbox sustains (target: at
//! least 2,000/s on a 2-core machine), over keep-alive HTTP/1.1 connections
//! from client threads in the same process; then the same requests spread
//! over 2,000 Zoom accounts served in one process, a keep-alive connection
//! each (target: at least 80% of the rate of one account over as many
//! connections, measured in the same run). Bounded in count and time.
//! Run with `cargo xtask bench`; `CONNAPP_BENCH_QUICK=1` (what `cargo xtask
//! test` sets) makes a few hundred requests and judges no target.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use connapp_sandbox::{Sandbox, Seed};

const CONNECTIONS: usize = 4;
const REQUESTS_PER_CONNECTION: usize = 5_000;
const TIME_LIMIT: Duration = Duration::from_secs(30);
const TARGET_PER_SEC: f64 = 2_000.0;

fn main() {
    let quick = std::env::var_os("CONNAPP_BENCH_QUICK").is_some();
    let per_connection = if quick { 200 } else { REQUESTS_PER_CONNECTION };
    let sbx = Sandbox::start(Seed::default()).expect("start the sandbox");
    let one = run(&[target(&sbx)], per_connection);
    println!(
        "sandbox token endpoint: {} requests over {CONNECTIONS} connections in {:.2} s = {:.0} req/s (p50 {:?}, p99 {:?})",
        one.n,
        one.elapsed.as_secs_f64(),
        one.rate,
        one.p50,
        one.p99
    );
    // The same requests spread over a fleet of Zoom accounts in one process
    // (one keep-alive connection per account, in turn): each account its own
    // server, state and limits, all on one thread pool.
    let accounts = if quick { 50 } else { FLEET_ACCOUNTS };
    let started = Instant::now();
    let seeds = (0..accounts)
        .map(|i| Seed {
            account_id: format!("sbxBenchAccount{i:08}"),
            ..Seed::default()
        })
        .collect();
    let fleet = Sandbox::start_many(seeds).expect("start the fleet");
    let start_up = started.elapsed();
    // Side by side: one account over as many connections, so the two
    // differ in the number of accounts alone; alternated, the median run of each.
    let alone: Vec<Target> = (0..accounts).map(|_| target(&sbx)).collect();
    let targets: Vec<Target> = fleet.iter().map(target).collect();
    let (mut ones, mut manys) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ones.push(run(&alone, per_connection));
        manys.push(run(&targets, per_connection));
    }
    let (one_many, many) = (median(ones), median(manys));
    println!(
        "sandbox token endpoint, one account over {accounts} connections (median of {RUNS}): {} requests in {:.2} s = {:.0} req/s (p50 {:?}, p99 {:?})",
        one_many.n,
        one_many.elapsed.as_secs_f64(),
        one_many.rate,
        one_many.p50,
        one_many.p99
    );
    println!(
        "sandbox token endpoint, {accounts} accounts in one process (started in {start_up:?}), a connection each (median of {RUNS}): {} requests in {:.2} s = {:.0} req/s (p50 {:?}, p99 {:?}); {:.2}x one account's rate over as many connections",
        many.n,
        many.elapsed.as_secs_f64(),
        many.rate,
        many.p50,
        many.p99,
        many.rate / one_many.rate
    );
    if quick {
        println!(
            "quick run: target {TARGET_PER_SEC:.0} req/s, and the fleet at {:.0}% of one account's rate, not judged",
            FLEET_SHARE * 100.0
        );
        return;
    }
    let mut failed = false;
    for (ok, what) in [
        (one.rate >= TARGET_PER_SEC, format!("target {TARGET_PER_SEC:.0} req/s")),
        (
            many.rate >= FLEET_SHARE * one_many.rate,
            format!(
                "{accounts} accounts at {:.0}% or more of one account's rate over as many connections",
                FLEET_SHARE * 100.0
            ),
        ),
    ] {
        println!("{}: {what}", if ok { "PASS" } else { "FAIL" });
        failed |= !ok;
    }
    if failed {
        std::process::exit(1);
    }
}

/// Alternated runs of the two fleet-sized figures; the median of each is reported.
const RUNS: usize = 3;

/// The run with the median rate.
fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

/// Zoom accounts the fleet figure spreads its requests over.
const FLEET_ACCOUNTS: usize = 2_000;
/// The least share of one account's rate the fleet must keep: "without slowing down".
const FLEET_SHARE: f64 = 0.8;

/// Where a token request goes and what it says.
struct Target {
    addr: std::net::SocketAddr,
    request: String,
}

/// A client-credentials token request for `sbx`'s DEX app.
fn target(sbx: &Sandbox) -> Target {
    let app = sbx.app("sbxDexClientId00000001").expect("DEX app");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.client_id, app.client_secret));
    let body = "grant_type=client_credentials";
    Target {
        addr: sbx.addr(),
        request: format!(
            "POST /oauth/token HTTP/1.1\r\nhost: {}\r\nauthorization: Basic {auth}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
            sbx.addr(),
            body.len()
        ),
    }
}

struct Figures {
    n: usize,
    elapsed: Duration,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// `per_connection` requests from each of [`CONNECTIONS`] client threads;
/// thread `t` sends to targets `t`, `t + CONNECTIONS`, ... in turn, over
/// one keep-alive connection to each, all connected before the clock starts.
fn run(targets: &[Target], per_connection: usize) -> Figures {
    let connected = std::sync::Barrier::new(CONNECTIONS + 1);
    let started = std::sync::OnceLock::new();
    let all: Vec<Duration> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|t| {
                let (connected, started) = (&connected, &started);
                scope.spawn(move || -> Vec<Duration> {
                    let mine: Vec<&Target> = targets.iter().skip(t % targets.len()).step_by(CONNECTIONS).collect();
                    let mut conns: Vec<(TcpStream, BufReader<TcpStream>)> = mine
                        .iter()
                        .map(|target| {
                            let stream = TcpStream::connect(target.addr).expect("connect");
                            stream.set_nodelay(true).expect("nodelay");
                            let reader = BufReader::new(stream.try_clone().expect("clone"));
                            (stream, reader)
                        })
                        .collect();
                    connected.wait();
                    let start: Instant = *started.get_or_init(Instant::now);
                    let mut latencies = Vec::with_capacity(per_connection);
                    for i in 0..per_connection {
                        if start.elapsed() > TIME_LIMIT {
                            break;
                        }
                        let k = i % mine.len();
                        let (writer, reader) = &mut conns[k];
                        let t = Instant::now();
                        writer.write_all(mine[k].request.as_bytes()).expect("send");
                        let mut status = String::new();
                        reader.read_line(&mut status).expect("status line");
                        assert!(status.contains(" 200 "), "unexpected response: {status}");
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            reader.read_line(&mut line).expect("header");
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                len = v.trim().parse().expect("length");
                            }
                        }
                        let mut body = vec![0u8; len];
                        reader.read_exact(&mut body).expect("body");
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        connected.wait();
        started.get_or_init(Instant::now);
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.get().map_or(Duration::ZERO, Instant::elapsed);
    let mut all = all;
    all.sort();
    let n = all.len();
    let pct = |p: f64| all[((n as f64 * p) as usize).min(n - 1)];
    Figures {
        n,
        elapsed,
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}
