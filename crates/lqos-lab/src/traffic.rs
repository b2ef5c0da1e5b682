//! Bounded iperf3 runs between the lab's Internet host and its subscribers.

use std::process::Stdio;
use std::time::Duration;

use crate::lab::{INTERNET_V4, INTERNET_V6, Lab};
use crate::netns::LabError;

/// One iperf3 result.
#[derive(Debug, Clone, Copy)]
pub struct IperfResult {
    /// Payload rate the receiver saw, bits/s.
    pub received_bps: f64,
    /// Payload rate the sender sent, bits/s.
    pub sent_bps: f64,
    /// The sender's mean smoothed RTT (TCP_INFO), microseconds, when iperf3 reports it.
    pub sender_mean_rtt_us: Option<f64>,
    /// Segments the sender retransmitted (TCP_INFO), when iperf3 reports it.
    pub sender_retransmits: Option<u64>,
}

/// Which way the traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Internet → subscriber.
    Download,
    /// Subscriber → Internet.
    Upload,
}

/// Runs one TCP iperf3 test of `secs` seconds for subscriber `idx` in direction `way`, over
/// IPv6 when `v6`. The server answers one test and exits; the client is bounded by
/// `secs` + 10 s.
pub fn iperf(
    lab: &Lab,
    idx: usize,
    way: Way,
    secs: u32,
    v6: bool,
    port: u16,
) -> Result<IperfResult, LabError> {
    iperf_omitting(lab, idx, way, secs, v6, port, 1)
}

/// [`iperf`] with the first `omit` seconds left out of iperf3's summary (`-O`); 0 keeps slow
/// start in the totals (retransmits, mean RTT), as a comparison with whole-run counters needs.
pub fn iperf_omitting(
    lab: &Lab,
    idx: usize,
    way: Way,
    secs: u32,
    v6: bool,
    port: u16,
    omit: u32,
) -> Result<IperfResult, LabError> {
    let sub = lab
        .spec
        .subscribers
        .get(idx)
        .ok_or_else(|| LabError::Other(format!("no subscriber {idx}")))?;
    let sub_addr = if v6 { sub.ipv6.to_string() } else { sub.ipv4.to_string() };
    let inet_addr = if v6 { INTERNET_V6.to_string() } else { INTERNET_V4.to_string() };
    // The receiver runs the server: download = subscriber receives.
    let (server_ns, client_ns, server_addr, client_bind) = match way {
        Way::Download => (&lab.sub, &lab.inet, sub_addr.clone(), inet_addr.clone()),
        Way::Upload => (&lab.inet, &lab.sub, inet_addr.clone(), sub_addr.clone()),
    };
    let port_s = port.to_string();
    let mut server = server_ns
        .command("iperf3")
        .args(["-s", "-1", "-B", &server_addr, "-p", &port_s])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Spawn { command: "iperf3 -s".into(), source })?;
    std::thread::sleep(Duration::from_millis(400));
    let secs_s = secs.to_string();
    let omit_s = omit.to_string();
    let timeout = (secs + omit + 10).to_string();
    let out = client_ns.exec(
        "timeout",
        &[
            &timeout,
            "iperf3",
            "-c",
            &server_addr,
            "-B",
            &client_bind,
            "-p",
            &port_s,
            "-t",
            &secs_s,
            "-J",
            "-O",
            &omit_s,
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let out = out?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| LabError::Other(format!("iperf3 output is not JSON: {e}")))?;
    let received_bps = v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
    let sent_bps = v["end"]["sum_sent"]["bits_per_second"].as_f64().unwrap_or(0.0);
    if received_bps <= 0.0 {
        return Err(LabError::Other(format!(
            "iperf3 reported no throughput: {}",
            v.get("error").map(|e| e.to_string()).unwrap_or_default()
        )));
    }
    let sender_mean_rtt_us = v["end"]["streams"][0]["sender"]["mean_rtt"].as_f64();
    let sender_retransmits = v["end"]["sum_sent"]["retransmits"].as_u64();
    Ok(IperfResult { received_bps, sent_bps, sender_mean_rtt_us, sender_retransmits })
}

/// Pings `target` from the Internet host `count` times (0.2 s apart, 1 s timeout each);
/// returns how many answered.
pub fn ping_from_internet(lab: &Lab, target: &str, count: u32) -> u32 {
    let count_s = count.to_string();
    let out =
        lab.inet.command("ping").args(["-c", &count_s, "-i", "0.2", "-W", "1", target]).output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            text.lines()
                .find(|l| l.contains("received"))
                .and_then(|l| l.split(',').nth(1))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        }
        Err(_) => 0,
    }
}
