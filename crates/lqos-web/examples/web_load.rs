//! Load test: N concurrent keep-alive clients hammer the API of a running `web_demo` for a
//! while and report errors and latency percentiles. A tiny HTTP/1.1 client on tokio keeps the
//! build light.
//!
//! `cargo run --release -p lqos-web --example web_load -- --addr 127.0.0.1:9123 \
//!   --user admin --password admin-password --clients 200 --seconds 10`
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9123")]
    addr: String,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, default_value = "admin-password")]
    password: String,
    #[arg(long, default_value_t = 200)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

type Conn = BufReader<TcpStream>;

/// Sends one request on a keep-alive connection; returns (status, headers, body).
async fn request(
    conn: &mut Conn,
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = String::new();
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        headers.push_str(&line);
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await?;
    Ok((status, headers, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut conn = BufReader::new(TcpStream::connect(&args.addr).await?);
    let login = serde_json::json!({"username": args.user, "password": args.password}).to_string();
    let (status, headers, _) =
        request(&mut conn, &args.addr, "POST", "/api/v1/login", "", &login).await?;
    if status != 200 {
        return Err(format!("login failed: HTTP {status}").into());
    }
    let cookie = headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|v| v.split(';').next())
        .ok_or("no cookie")?
        .to_owned();
    let paths = [
        "/api/v1/status",
        "/api/v1/circuits?page=3&per_page=50&sort=download_bps&order=desc",
        "/api/v1/circuits?search=subscriber%2012&per_page=50",
        "/api/v1/top?n=10",
        "/api/v1/circuits/c00042",
        "/api/v1/nodes",
    ];
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.clients {
        let (addr, cookie) = (args.addr.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut conn: Option<Conn> = None;
            let mut i = w;
            while Instant::now() < deadline {
                if conn.is_none() {
                    match TcpStream::connect(&addr).await {
                        Ok(s) => conn = Some(BufReader::new(s)),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let path = paths[i % paths.len()];
                i += 1;
                let t = Instant::now();
                match request(c, &addr, "GET", path, &cookie, "").await {
                    Ok((200, _, _)) => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "clients={} seconds={} requests={} errors={} rps={:.0} p50={:.1}ms p90={:.1}ms p99={:.1}ms max={:.1}ms",
        args.clients,
        args.seconds,
        all.len(),
        errors,
        all.len() as f64 / wall,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
