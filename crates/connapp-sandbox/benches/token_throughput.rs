//! Benchmark: token requests per second the sandbox sustains (target: at
//! least 2,000/s on a 2-core machine), over keep-alive HTTP/1.1 connections
//! from client threads in the same process. Bounded in count and time.
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
    let app = sbx.app("sbxDexClientId00000001").expect("DEX app");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.client_id, app.client_secret));
    let body = "grant_type=client_credentials";
    let request = format!(
        "POST /oauth/token HTTP/1.1\r\nhost: {}\r\nauthorization: Basic {auth}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        sbx.addr(),
        body.len()
    );
    let addr = sbx.addr();
    let start = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || -> Vec<Duration> {
                let stream = TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut latencies = Vec::with_capacity(per_connection);
                for _ in 0..per_connection {
                    if start.elapsed() > TIME_LIMIT {
                        break;
                    }
                    let t = Instant::now();
                    writer.write_all(request.as_bytes()).expect("send");
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
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let elapsed = start.elapsed();
    all.sort();
    let n = all.len();
    let rate = n as f64 / elapsed.as_secs_f64();
    let pct = |p: f64| all[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "sandbox token endpoint: {n} requests over {CONNECTIONS} connections in {:.2} s = {rate:.0} req/s (p50 {:?}, p99 {:?})",
        elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    if quick {
        println!("quick run: target {TARGET_PER_SEC:.0} req/s not judged");
    } else if rate >= TARGET_PER_SEC {
        println!("PASS: target {TARGET_PER_SEC:.0} req/s");
    } else {
        println!("FAIL: target {TARGET_PER_SEC:.0} req/s");
        std::process::exit(1);
    }
}
