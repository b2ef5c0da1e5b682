//! Issue 12, item 3: a real Prometheus server (Debian's `prometheus` package) scrapes
//! lqos_web's `/metrics` in the lab and answers a PromQL query for a circuit's RTT.
//!
//! Prometheus runs inside the shaper namespace (where lqos_web listens on 127.0.0.1), with its
//! own config and data directory under the lab directory, listening on 127.0.0.1 of that fresh
//! namespace, scraping every second over HTTPS (the lab's self-signed certificate:
//! `insecure_skip_verify`) with the bearer token that lqos.conf `[metrics] token` demands.
//! A [`Prometheus`] guard kills it and removes its files on every exit path, panics included;
//! the lab's namespace teardown kills whatever might survive that.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lqos_bus::{Command, ReloadMode, Response};
use lqos_lab::lab::{Lab, LabSpec};
use lqos_lab::traffic::{Way, iperf_omitting};

use crate::e2e::{lock, sub};

const TOKEN: &str = "lab-scrape-token-5f0c";
const WEB: &str = "127.0.0.1:9123";

/// A running Prometheus; dropping it kills the process and removes its directory.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    listen: String,
    /// The shaper namespace (`/run/netns/…`), where Prometheus listens.
    netns: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port nothing listens on inside `lab`'s shaper namespace (read from `ss`, so this
/// holds even when the namespace is not fresh).
fn free_port(lab: &Lab) -> u16 {
    let used = lab.shaper.exec_stdout("ss", &["-Htln"]).unwrap_or_default();
    (19090..19190)
        .find(|p| !used.contains(&format!(":{p} ")))
        .expect("a free port in 19090..19190 in the shaper namespace")
}

fn scrape_config(token: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lqos
    scheme: https
    tls_config:
      insecure_skip_verify: true
    authorization:
      type: Bearer
      credentials: "{token}"
    static_configs:
      - targets: ["{WEB}"]
"#
    )
}

impl Prometheus {
    /// Starts `prometheus` in the shaper namespace and waits (bounded) until it is ready.
    fn start(lab: &Lab, bin: &Path) -> Prometheus {
        let dir = lab.spec.dir.join("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create the Prometheus directory");
        let conf = dir.join("prometheus.yml");
        std::fs::write(&conf, scrape_config(TOKEN)).expect("write prometheus.yml");
        let listen = format!("127.0.0.1:{}", free_port(lab));
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let child = lab
            .shaper
            .command(&bin.display().to_string())
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus in the shaper namespace");
        let mut p = Prometheus { child, dir, listen, netns: lab.shaper.path() };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log_tail());
            }
            if p.get("/-/ready", &[]).is_some_and(|t| t.contains("Ready")) {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus not ready within 30 s:\n{}",
                p.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// GET `path` on Prometheus with URL-encoded `params`, through curl in the shaper
    /// namespace; `None` on any failure.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<String> {
        let url = format!("http://{}{path}", self.listen);
        let mut args = vec!["-sf".to_owned(), "--max-time".into(), "5".into(), "-G".into(), url];
        for (k, v) in params {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg("curl")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value of an instant vector query with exactly one series, if any.
    fn query_one(&self, promql: &str) -> Option<f64> {
        let text = self.get("/api/v1/query", &[("query", promql)])?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// The scrape target's state and last error, for failure messages.
    fn targets(&self) -> String {
        self.get("/api/v1/targets", &[]).unwrap_or_else(|| "(no answer)".into())
    }
}

fn circuit_p50_access_ms(lab: &Lab, id: &str) -> Option<f64> {
    let mut bus = lab.bus().expect("bus");
    match bus.request(&Command::CircuitStats { circuit: Some(id.to_owned()) }).expect("stats") {
        Response::Circuits(list) => list
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.qoe)
            .and_then(|q| q.rtt_ms.access)
            .filter(|a| a.samples > 0)
            .map(|a| a.p50),
        other => panic!("circuit stats: {other:?}"),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

#[test]
fn prometheus_scrapes_metrics_and_answers_a_circuit_rtt_query() {
    let _g = lock();
    if !lqos_lab::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(prometheus) = which("prometheus") else {
        eprintln!(
            "skipped: prometheus not installed (scripts/deps.sh installs Debian's prometheus \
             package)"
        );
        return;
    };
    let dir = std::env::temp_dir().join("lqos-e2e-lqprom");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = LabSpec {
        prefix: "lqprom".into(),
        subscribers: vec![sub(0, 10.0, 5.0, true), sub(1, 25.0, 5.0, true)],
        dir,
        web_listen: WEB.into(),
    };
    let mut lab = Lab::up(spec).expect("build lab namespaces");
    // /metrics demands the token from everyone once one is configured.
    let conf = lab.spec.config_path();
    let mut text = std::fs::read_to_string(&conf).expect("read lqos.conf");
    text.push_str(&format!("\n[metrics]\nenabled = true\ntoken = \"{TOKEN}\"\n"));
    std::fs::write(&conf, text).expect("write lqos.conf");
    lab.start_lqosd(&lqos_lab::find_binary("lqosd")).expect("start lqosd");
    let mut bus = lab.bus().expect("bus");
    match bus.request(&Command::Reload { mode: ReloadMode::Full }).expect("reload") {
        Response::Reload(r) => assert!(r.applied, "{r:?}"),
        other => panic!("reload: {other:?}\n{}", lab.lqosd_log_tail(30)),
    }
    lab.start_web(&lqos_lab::find_binary("lqos_web")).expect("start lqos_web");
    let url = format!("https://{WEB}/metrics");
    let anonymous = lab
        .shaper
        .exec_stdout("curl", &["-sk", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .unwrap_or_default();
    assert_eq!(anonymous, "401", "/metrics without the token");

    // Declared after the lab: dropped (killed) before the lab goes down.
    let prom = Prometheus::start(&lab, &prometheus);
    let start = Instant::now();
    while prom.query_one("up{job=\"lqos\"}") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Prometheus never scraped lqos_web successfully; targets: {}\n{}",
            prom.targets(),
            prom.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let id = lab.spec.subscribers[0].circuit_id.clone();
    let r = iperf_omitting(&lab, 0, Way::Download, 8, false, 5402, 0).expect("iperf3 download");
    let query = format!(
        "lqos_circuit_tcp_rtt_seconds{{circuit_id=\"{id}\",path=\"access\",quantile=\"0.5\"}}"
    );
    // lqosd reads the RTT histograms every 2 s and Prometheus scrapes every second: a few
    // seconds after the load the sample is there.
    let start = Instant::now();
    let seconds = loop {
        if let Some(v) = prom.query_one(&query) {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no answer to {query} within 20 s; targets: {}\n{}",
            prom.targets(),
            prom.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let bus_ms = circuit_p50_access_ms(&lab, &id).expect("lqosd has access RTT samples");
    let iperf_ms = r.sender_mean_rtt_us.unwrap_or(0.0) / 1000.0;
    eprintln!(
        "Prometheus: {query} = {:.3} ms; lqosd p50 now {bus_ms:.3} ms; iperf3 sender mean \
         RTT {iperf_ms:.3} ms at {:.2} Mbit/s",
        seconds * 1000.0,
        r.received_bps / 1e6
    );
    // Sane: a positive RTT under a second (the lab's is a few ms under load), and the same
    // number lqosd gives over the bus (the 60 s window barely moves between the scrape and
    // this read).
    assert!(seconds > 0.0 && seconds < 1.0, "RTT {seconds} s is not sane");
    let ratio = seconds * 1000.0 / bus_ms;
    assert!((0.5..=2.0).contains(&ratio), "Prometheus {seconds} s vs lqosd {bus_ms} ms");
    // The other contract series made it into Prometheus too.
    for q in [
        format!("lqos_circuit_tcp_packets_total{{circuit_id=\"{id}\",direction=\"down\"}}"),
        format!("lqos_circuit_tcp_rtt_seconds_count{{circuit_id=\"{id}\",path=\"access\"}}"),
        format!("lqos_circuit_bytes_total{{circuit_id=\"{id}\",direction=\"down\"}}"),
    ] {
        let v = prom.query_one(&q).unwrap_or_else(|| panic!("no answer to {q}"));
        assert!(v > 0.0, "{q} = {v}");
    }
    // The real answer of a loaded lqosd passes promtool's checks and lints too.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let real = lab.shaper.exec_stdout("curl", &["-sk", "-H", &auth, &url]).expect("curl /metrics");
    assert!(real.contains("lqos_circuit_tcp_rtt_seconds{"), "{real}");
    if which("promtool").is_some() {
        use std::io::Write;
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        child.stdin.take().expect("stdin").write_all(real.as_bytes()).expect("feed promtool");
        let out = child.wait_with_output().expect("promtool");
        let msg = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && msg.trim().is_empty(), "promtool: {msg}\n{real}");
    }

    // lqtop reads the same numbers from the bus: the loaded circuit's row has the access RTT
    // and a retransmit ratio, and its node's row in the node view has them too.
    let snap = lqtop::fetch(&mut bus, lqtop::View::Circuits);
    assert!(snap.error.is_none(), "lqtop fetch: {:?}", snap.error);
    let c = snap.top.iter().find(|c| c.id == id).expect("the loaded circuit in lqtop's list");
    let row = lqtop::Entry::circuit(c);
    let p50 = row.rtt_p50_ms.expect("lqtop shows a p50 access RTT for the loaded circuit");
    assert!((p50 / bus_ms - 1.0).abs() < 0.5, "lqtop p50 {p50} ms vs lqosd {bus_ms} ms");
    assert!(row.rtt_p90_ms.is_some_and(|p90| p90 >= p50), "{row:?}");
    assert!(row.retx_ratio.is_some(), "retransmit ratio after a TCP download: {row:?}");
    let nodes = lqtop::fetch(&mut bus, lqtop::View::Nodes);
    let parent = &lab.spec.subscribers[0].parent;
    let n = nodes.nodes.iter().find(|n| &n.name == parent).expect("the circuit's node");
    let node_row = lqtop::Entry::node(n);
    assert!(node_row.rtt_p90_ms.is_some(), "lqtop node row: {node_row:?}");
    eprintln!("lqtop: circuit row {row:?}\nlqtop: node row {node_row:?}");

    // The history store's size, when lqosd keeps history.
    let status = match bus.request(&Command::Status).expect("status") {
        Response::Status(s) => s,
        other => panic!("status: {other:?}"),
    };
    if let Some(bytes) = status.history_bytes {
        let v = prom.query_one("lqos_history_bytes").expect("lqos_history_bytes in Prometheus");
        assert!(v > 0.0 && bytes > 0, "history size: Prometheus {v}, lqosd {bytes}");
    }
    drop(prom);
    lab.down();
}
