//! Load test of lqos_web's API (a benchmark, not part of the suite; `bench/web_load.sh` runs it
//! against a real lqos_web and lqosd with 10,000 circuits and seeded history).
//!
//! `--clients` concurrent clients, each with its own HTTP(S) client (reqwest, rustls) bound to
//! its own loopback address (127.0.0.2, .3, …, so lqos_web's per-address connection cap and
//! login throttle see 200 users, not one), log in once (a few at a time; a 429 from the
//! login throttle is waited out and counted apart), then loop over a mix of live queries
//! (`/api/v1/circuits?…`, `/api/v1/circuits/{id}`, `/api/v1/top`, `/api/v1/nodes`) and
//! history queries (`/api/v1/circuits/{id}/history?range=…` over every range, node history)
//! until `--seconds` pass or `--max-requests` were sent. `--think-ms` adds a pause between
//! one client's requests (0 = closed loop: each client asks again as soon as it is answered).
//!
//! Prints per request kind and overall: requests, requests/s, p50/p90/p99/max latency,
//! errors, 429s, bytes; with `--pid NAME=PID` (repeatable) the CPU (% of one core) each
//! process used during the measured window (after the logins). Exits 1 when a request failed
//! (a transport error or a status other than 200 and 429), 0 otherwise; never on time.
//!
//! `cargo run --release -p lqos-web --example web_load -- --url https://127.0.0.1:9123 \
//!   --user admin --password admin-password --clients 200 --seconds 60`
#![expect(clippy::print_stdout, reason = "a benchmark prints its numbers")]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Base URL of lqos_web.
    #[arg(long, default_value = "https://127.0.0.1:9123")]
    url: String,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, default_value = "admin-password")]
    password: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Measured window, seconds (after the logins).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Pause between one client's requests, milliseconds (0 = closed loop).
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Circuits are `<prefix><n>` for n in 0..circuits (zero-padded to `--circuit-pad`).
    #[arg(long, default_value_t = 10_000)]
    circuits: u64,
    #[arg(long, default_value = "c")]
    circuit_prefix: String,
    #[arg(long, default_value_t = 0)]
    circuit_first: u64,
    #[arg(long, default_value_t = 0)]
    circuit_pad: usize,
    /// History queries go to the first this many circuits (the ones with seeded history).
    #[arg(long, default_value_t = 1000)]
    history_circuits: u64,
    /// Node names for node history queries (comma-separated).
    #[arg(long, default_value = "Site_1,Site_2,AP_1_1,AP_2_3,AP_4_4")]
    nodes: String,
    /// Share of requests that are history queries (0..=1).
    #[arg(long, default_value_t = 0.5)]
    history_share: f64,
    /// Logins at once (lqos_web hashes two passwords at a time and queues four).
    #[arg(long, default_value_t = 4)]
    login_concurrency: usize,
    /// Do not bind each client to its own 127.0.0.x address.
    #[arg(long)]
    same_address: bool,
    /// `NAME=PID` of a process whose CPU to report (repeatable).
    #[arg(long)]
    pid: Vec<String>,
}

/// A tiny deterministic generator (xorshift64*), one per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const RANGES: [&str; 6] = ["10m", "1h", "24h", "7d", "30d", "90d"];

struct Mix {
    args: Arc<Args>,
    nodes: Vec<String>,
}

impl Mix {
    fn circuit(&self, n: u64) -> String {
        let n = self.args.circuit_first + n;
        format!("{}{:0width$}", self.args.circuit_prefix, n, width = self.args.circuit_pad)
    }

    /// (kind, path) of the next request.
    fn pick(&self, rng: &mut Rng) -> (&'static str, String) {
        let a = &self.args;
        if rng.unit() < a.history_share {
            // Node history one time in five, circuit history over every range otherwise.
            if rng.below(5) == 0 && !self.nodes.is_empty() {
                let node = &self.nodes[rng.below(self.nodes.len() as u64) as usize];
                let range = RANGES[rng.below(RANGES.len() as u64) as usize];
                return ("node-history", format!("/api/v1/nodes/{node}/history?range={range}"));
            }
            let id = self.circuit(rng.below(a.history_circuits.min(a.circuits)));
            let i = rng.below(RANGES.len() as u64) as usize;
            let kind = ["hist-10m", "hist-1h", "hist-24h", "hist-7d", "hist-30d", "hist-90d"][i];
            return (kind, format!("/api/v1/circuits/{id}/history?range={}", RANGES[i]));
        }
        match rng.below(10) {
            0..=2 => {
                let pages = a.circuits.div_ceil(50).max(1);
                let sort = ["download_bps", "upload_bps", "name", "drops"][rng.below(4) as usize];
                let order = if rng.below(2) == 0 { "desc" } else { "asc" };
                let path = if rng.below(3) == 0 {
                    let id = self.circuit(rng.below(a.circuits));
                    format!("/api/v1/circuits?search={id}&per_page=50")
                } else {
                    format!(
                        "/api/v1/circuits?page={}&per_page=50&sort={sort}&order={order}",
                        rng.below(pages) + 1
                    )
                };
                ("circuits", path)
            }
            3..=5 => {
                ("circuit", format!("/api/v1/circuits/{}", self.circuit(rng.below(a.circuits))))
            }
            6..=7 => ("top", "/api/v1/top?n=10".to_owned()),
            _ => ("nodes", "/api/v1/nodes".to_owned()),
        }
    }
}

#[derive(Default)]
struct Stats {
    lat: Vec<Duration>,
    errors: u64,
    throttled: u64,
    bytes: u64,
    first_error: Option<String>,
}

fn client_for(args: &Args, i: usize) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        // The shaper's certificate is self-signed (its fingerprint is in lqos_web's log).
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(130));
    if !args.same_address {
        let host = 2 + (i % 250) as u8;
        let net = 1 + (i / 250) as u8;
        b = b.local_address(IpAddr::V4(Ipv4Addr::new(127, 0, net, host)));
    }
    b.build()
}

/// Logs in; returns the `Cookie` header value and the 429s met on the way.
async fn login(
    client: &reqwest::Client,
    args: &Args,
    gate: &tokio::sync::Semaphore,
) -> Result<(String, u64), String> {
    let body = serde_json::json!({"username": args.user, "password": args.password});
    let mut throttled = 0;
    for _ in 0..60 {
        let answer = {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            client
                .post(format!("{}/api/v1/login", args.url))
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("login: {e}"))?
        };
        match answer.status().as_u16() {
            200 => {
                let cookie = answer
                    .headers()
                    .get_all(reqwest::header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter_map(|v| v.split(';').next())
                    .find(|v| v.contains("lqos_session="))
                    .ok_or("login answered 200 without a session cookie")?
                    .to_owned();
                return Ok((cookie, throttled));
            }
            429 => {
                throttled += 1;
                let wait = answer
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(10);
                tokio::time::sleep(Duration::from_millis(200 * wait.max(1))).await;
            }
            other => {
                return Err(format!(
                    "login: HTTP {other}: {}",
                    answer.text().await.unwrap_or_default()
                ));
            }
        }
    }
    Err("login: still throttled after 60 tries".into())
}

fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(kind: &str, s: &mut Stats, wall: f64) {
    s.lat.sort_unstable();
    let pct = |p: f64| {
        let n = s.lat.len();
        if n == 0 {
            return Duration::ZERO;
        }
        s.lat[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]
    };
    println!(
        "{:<13} {:>8} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>6} {:>9.1}",
        kind,
        s.lat.len(),
        s.lat.len() as f64 / wall,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(s.lat.last().copied().unwrap_or_default()),
        s.errors,
        s.throttled,
        s.bytes as f64 / (1 << 20) as f64,
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Arc::new(Args::parse());
    let mix = Arc::new(Mix {
        nodes: args.nodes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        args: args.clone(),
    });

    // Phase 1: every client logs in (not measured).
    let gate = Arc::new(tokio::sync::Semaphore::new(args.login_concurrency.max(1)));
    let t_login = Instant::now();
    let mut logins = Vec::new();
    for i in 0..args.clients {
        let (args, gate) = (args.clone(), gate.clone());
        logins.push(tokio::spawn(async move {
            let client = client_for(&args, i).map_err(|e| e.to_string())?;
            let (cookie, throttled) = login(&client, &args, &gate).await?;
            Ok::<_, String>((client, cookie, throttled))
        }));
    }
    let mut sessions = Vec::new();
    let mut login_429 = 0;
    for l in logins {
        match l.await? {
            Ok((c, cookie, t)) => {
                login_429 += t;
                sessions.push((c, cookie));
            }
            Err(e) => return Err(format!("a client could not log in: {e}").into()),
        }
    }
    println!(
        "logged in {} clients in {:.1} s ({} login answers were 429 from the login throttle and were retried)",
        sessions.len(),
        t_login.elapsed().as_secs_f64(),
        login_429
    );

    // Phase 2: the measured window.
    let pids: Vec<(String, String)> = args
        .pid
        .iter()
        .filter_map(|p| p.split_once('=').map(|(n, p)| (n.to_owned(), p.to_owned())))
        .collect();
    let cpu0: Vec<Option<u64>> = pids.iter().map(|(_, p)| cpu_ticks(p)).collect();
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (i, (client, cookie)) in sessions.into_iter().enumerate() {
        let (args, mix, sent) = (args.clone(), mix.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut stats: BTreeMap<&'static str, Stats> = BTreeMap::new();
            while Instant::now() < deadline
                && sent.fetch_add(1, Ordering::Relaxed) < args.max_requests
            {
                let (kind, path) = mix.pick(&mut rng);
                let s = stats.entry(kind).or_default();
                let t = Instant::now();
                let answer = client
                    .get(format!("{}{path}", args.url))
                    .header(reqwest::header::COOKIE, &cookie)
                    .send()
                    .await;
                match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(body) if status == 200 => {
                                s.lat.push(t.elapsed());
                                s.bytes += body.len() as u64;
                            }
                            Ok(_) if status == 429 => s.throttled += 1,
                            Ok(body) => {
                                s.errors += 1;
                                s.first_error.get_or_insert_with(|| {
                                    format!(
                                        "{path}: HTTP {status}: {}",
                                        String::from_utf8_lossy(&body[..body.len().min(200)])
                                    )
                                });
                            }
                            Err(e) => {
                                s.errors += 1;
                                s.first_error.get_or_insert_with(|| format!("{path}: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.first_error.get_or_insert_with(|| format!("{path}: {e}"));
                    }
                }
                if args.think_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(args.think_ms)).await;
                }
            }
            stats
        }));
    }
    let mut all: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for t in tasks {
        for (kind, s) in t.await? {
            let a = all.entry(kind).or_default();
            a.lat.extend(s.lat);
            a.errors += s.errors;
            a.throttled += s.throttled;
            a.bytes += s.bytes;
            if a.first_error.is_none() {
                a.first_error = s.first_error;
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu1: Vec<Option<u64>> = pids.iter().map(|(_, p)| cpu_ticks(p)).collect();

    println!(
        "clients={} think_ms={} window={:.1}s history_share={}",
        args.clients, args.think_ms, wall, args.history_share
    );
    println!(
        "{:<13} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>9}",
        "kind", "requests", "req/s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors", "429", "MiB"
    );
    let mut total = Stats::default();
    let mut live = Stats::default();
    let mut hist = Stats::default();
    let mut first_error = None;
    for (kind, s) in all.iter_mut() {
        row(kind, s, wall);
        let group = if kind.contains("hist") { &mut hist } else { &mut live };
        for g in [&mut total, group] {
            g.lat.extend(&s.lat);
            g.errors += s.errors;
            g.throttled += s.throttled;
            g.bytes += s.bytes;
        }
        if first_error.is_none() {
            first_error = s.first_error.take();
        }
    }
    row("live", &mut live, wall);
    row("history", &mut hist, wall);
    row("all", &mut total, wall);
    let hz = clock_ticks();
    for ((name, pid), (a, b)) in pids.iter().zip(cpu0.iter().zip(&cpu1)) {
        match (a, b) {
            (Some(a), Some(b)) => println!(
                "cpu {name} (pid {pid}): {:.1} % of one core over the window",
                100.0 * (b.saturating_sub(*a)) as f64 / hz / wall
            ),
            _ => println!("cpu {name} (pid {pid}): not readable"),
        }
    }
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    if total.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
