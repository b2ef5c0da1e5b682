//! The lab: an Internet host, a shaper (Linux bridge over two 4-queue veths) and a subscriber
//! host, each in its own network namespace, plus lab inputs and an lqos.conf.
//!
//! ```text
//!  [<p>-inet]  inet0 ──veth── eth-inet ┐             ┌ eth-sub ──veth── sub0  [<p>-sub]
//!  198.18.0.1                          └─ br0 (<p>-shaper) ┘          198.18.1.x (N subscribers)
//!  2001:db8::1                            lqosd: XDP + tc + HTB           2001:db8::1:x
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netns::{LabError, Netns, run_quiet};

/// Interface names inside the shaper namespace.
pub const SHAPER_TO_INTERNET: &str = "eth-inet";
/// Subscriber-facing interface in the shaper namespace.
pub const SHAPER_TO_NETWORK: &str = "eth-sub";
/// The Internet host's address.
pub const INTERNET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The Internet host's IPv6 address.
pub const INTERNET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The unprivileged user lqos_web runs as in the lab (`nobody`; production uses `lqos`).
pub const WEB_UID: u32 = 65534;
/// Its group (`nogroup`).
pub const WEB_GID: u32 = 65534;

/// Remounts /sys for the current network namespace, keeping the host's bpffs, then execs
/// its arguments (same pid).
const SYSFS_WRAPPER: &str = "set -e; d=$(mktemp -d); mount --bind /sys/fs/bpf \"$d\"; \
mount -t sysfs sysfs /sys; mount --bind \"$d\" /sys/fs/bpf; exec \"$@\"";

/// One lab subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriber {
    /// Circuit ID.
    pub circuit_id: String,
    /// Name.
    pub name: String,
    /// IPv4 address.
    pub ipv4: Ipv4Addr,
    /// IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Download ceil, Mbps.
    pub download_mbps: f64,
    /// Upload ceil, Mbps.
    pub upload_mbps: f64,
    /// Parent node.
    pub parent: String,
    /// Whether it is written to ShapedDevices.csv (false = an unmapped host).
    pub shaped: bool,
}

impl Subscriber {
    /// Lab subscriber `i` (0-based): circuit `c<i+1>`, addresses [`subscriber_v4`] and
    /// [`subscriber_v6`], even ones under `AP_A1`, odd ones under `Site_B`. `shaped = false`
    /// leaves it out of ShapedDevices.csv (an unmapped host).
    pub fn numbered(i: usize, download_mbps: f64, upload_mbps: f64, shaped: bool) -> Self {
        Subscriber {
            circuit_id: format!("c{}", i + 1),
            name: format!("Subscriber {}", i + 1),
            ipv4: subscriber_v4(i),
            ipv6: subscriber_v6(i),
            download_mbps,
            upload_mbps,
            parent: if i.is_multiple_of(2) { "AP_A1".into() } else { "Site_B".into() },
            shaped,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Namespace prefix (`lqlab` for the demo; tests use their own).
    pub prefix: String,
    /// Subscribers.
    pub subscribers: Vec<Subscriber>,
    /// Where inputs, state, logs and the bus socket go.
    pub dir: PathBuf,
    /// `webserver_listen` for lqosd.
    pub web_listen: String,
}

/// The address of subscriber `i` (0-based).
pub fn subscriber_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// The IPv6 address of subscriber `i`.
pub fn subscriber_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1 + i as u16)
}

impl LabSpec {
    /// The demo lab: `n` subscribers with plans 10/5, 25/5, 50/10, 100/20 Mbps in turn, half
    /// under `AP_A1`, half under `Site_B`.
    pub fn demo(prefix: &str, n: usize, dir: PathBuf) -> Self {
        let plans = [(10.0, 5.0), (25.0, 5.0), (50.0, 10.0), (100.0, 20.0)];
        let subscribers = (0..n)
            .map(|i| {
                let (d, u) = plans[i % plans.len()];
                Subscriber::numbered(i, d, u, true)
            })
            .collect();
        LabSpec { prefix: prefix.to_owned(), subscribers, dir, web_listen: "[::]:9123".into() }
    }

    /// Namespace names: (internet, shaper, subscribers).
    pub fn ns_names(&self) -> (String, String, String) {
        (
            format!("{}-inet", self.prefix),
            format!("{}-shaper", self.prefix),
            format!("{}-sub", self.prefix),
        )
    }

    /// The lqos.conf path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("lqos.conf")
    }

    /// The bpffs directory for this lab's pinned maps (never a production lqosd's
    /// `/sys/fs/bpf/lqos`); removed with the lab.
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir_for(&self.prefix)
    }

    /// The bus socket lqosd listens on in this lab.
    pub fn bus_path(&self) -> PathBuf {
        self.dir.join("bus")
    }

    /// lqos.conf text for the lab.
    pub fn config_text(&self) -> String {
        format!(
            r#"# lqos lab configuration (written by lqos-lab)
version = "1.5"
lqos_directory = "{dir}"
state_directory = "{dir}/state"
node_id = "lqos-lab"
node_name = "lqos lab shaper"
packet_capture_time = 10
queue_check_period_ms = 1000
webserver_listen = "{web}"

[bridge]
use_xdp_bridge = false
to_internet = "{inet}"
to_network = "{sub}"

[queues]
# This lab kernel has no sch_cake or fq_codel: circuits get HTB classes with the kernel's
# default FIFO leaf.
default_sqm = "none"
monitor_only = false
downlink_bandwidth_mbps = 1000
uplink_bandwidth_mbps = 1000
generated_pn_download_mbps = 1000
generated_pn_upload_mbps = 1000
dry_run = false
sudo = false
use_binpacking = false

[ip_ranges]
allow_subnets = ["198.18.0.0/15", "2001:db8::/32"]
ignore_subnets = []

[integration_common]
circuit_name_as_address = false
queue_refresh_interval_mins = 30

[tuning]
stop_irq_balance = false
netdev_budget_usecs = 8000
netdev_budget_packets = 300
rx_usecs = 8
tx_usecs = 8
disable_rxvlan = true
disable_txvlan = true
disable_offload = ["gso", "tso", "lro", "sg", "gro"]
"#,
            dir = self.dir.display(),
            web = self.web_listen,
            inet = SHAPER_TO_INTERNET,
            sub = SHAPER_TO_NETWORK
        )
    }

    /// network.json for the lab.
    pub fn network_json(&self) -> String {
        r#"{
  "Site_A": {
    "downloadBandwidthMbps": 1000,
    "uploadBandwidthMbps": 1000,
    "type": "site",
    "children": {
      "AP_A1": { "downloadBandwidthMbps": 500, "uploadBandwidthMbps": 500, "type": "ap" }
    }
  },
  "Site_B": { "downloadBandwidthMbps": 1000, "uploadBandwidthMbps": 1000, "type": "site" }
}
"#
        .to_owned()
    }

    /// ShapedDevices.csv for the lab.
    pub fn shaped_devices_csv(&self) -> String {
        let mut s = String::from(
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n",
        );
        for (i, sub) in self.subscribers.iter().enumerate().filter(|(_, s)| s.shaped) {
            let _ = writeln!(
                s,
                "{},{},d{},{} router,{},,,,{},{},{},{},{},{},lab",
                sub.circuit_id,
                sub.name,
                i + 1,
                sub.name,
                sub.parent,
                sub.ipv4,
                sub.ipv6,
                (sub.download_mbps / 4.0).max(1.0),
                (sub.upload_mbps / 4.0).max(1.0),
                sub.download_mbps,
                sub.upload_mbps
            );
        }
        s
    }

    /// Writes lqos.conf, network.json and ShapedDevices.csv into `dir`.
    pub fn write_inputs(&self) -> Result<(), LabError> {
        std::fs::create_dir_all(self.dir.join("state"))
            .map_err(|e| LabError::Other(format!("create {}: {e}", self.dir.display())))?;
        for (name, text) in [
            ("lqos.conf", self.config_text()),
            ("network.json", self.network_json()),
            ("ShapedDevices.csv", self.shaped_devices_csv()),
        ] {
            let path = self.dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| LabError::Other(format!("write {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

/// A running lab. Dropping it removes the namespaces (and with them lqosd and all links).
#[derive(Debug)]
pub struct Lab {
    /// The spec it was built from.
    pub spec: LabSpec,
    /// Internet host namespace.
    pub inet: Netns,
    /// Shaper namespace.
    pub shaper: Netns,
    /// Subscriber namespace.
    pub sub: Netns,
    lqosd: Option<Child>,
    web: Option<Child>,
    detached: bool,
}

fn veth_pair(a_ns: &Netns, a: &str, b_ns: &Netns, b: &str) -> Result<(), LabError> {
    crate::netns::run(
        "ip",
        &[
            "link",
            "add",
            a,
            "netns",
            a_ns.name(),
            "numtxqueues",
            "4",
            "numrxqueues",
            "4",
            "type",
            "veth",
            "peer",
            "name",
            b,
            "netns",
            b_ns.name(),
            "numtxqueues",
            "4",
            "numrxqueues",
            "4",
        ],
    )?;
    for (ns, dev) in [(a_ns, a), (b_ns, b)] {
        // A veth uses one real queue until told otherwise; the lab wants 4 of each.
        let _ = ns.exec("ethtool", &["-L", dev, "tx", "4", "rx", "4"]);
        // TCP through XDP redirect on veth needs these offloads off.
        let _ =
            ns.exec("ethtool", &["-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
        ns.exec("ip", &["link", "set", dev, "up"])?;
    }
    Ok(())
}

impl Lab {
    /// Builds the namespaces, links, bridge and addresses, and writes the inputs.
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        let (inet_name, shaper_name, sub_name) = spec.ns_names();
        let inet = Netns::create(&inet_name)?;
        let shaper = Netns::create(&shaper_name)?;
        let sub = Netns::create(&sub_name)?;
        veth_pair(&shaper, SHAPER_TO_INTERNET, &inet, "inet0")?;
        veth_pair(&shaper, SHAPER_TO_NETWORK, &sub, "sub0")?;
        shaper.exec("ip", &["link", "add", "br0", "type", "bridge"])?;
        shaper.exec(
            "ip",
            &["link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"],
        )?;
        for dev in [SHAPER_TO_INTERNET, SHAPER_TO_NETWORK] {
            shaper.exec("ip", &["link", "set", dev, "master", "br0"])?;
        }
        shaper.exec("ip", &["link", "set", "br0", "up"])?;
        inet.exec("ip", &["addr", "add", &format!("{INTERNET_V4}/16"), "dev", "inet0"])?;
        inet.exec(
            "ip",
            &["-6", "addr", "add", &format!("{INTERNET_V6}/64"), "dev", "inet0", "nodad"],
        )?;
        for s in &spec.subscribers {
            sub.exec("ip", &["addr", "add", &format!("{}/16", s.ipv4), "dev", "sub0"])?;
            sub.exec(
                "ip",
                &["-6", "addr", "add", &format!("{}/64", s.ipv6), "dev", "sub0", "nodad"],
            )?;
        }
        spec.write_inputs()?;
        Ok(Lab { spec, inet, shaper, sub, lqosd: None, web: None, detached: false })
    }

    /// Starts `lqosd` (the binary at `lqosd_bin`) inside the shaper namespace with the lab's
    /// config and bus path, logging to `<dir>/lqosd.log`, and waits until it answers a Ping.
    pub fn start_lqosd(&mut self, lqosd_bin: &Path) -> Result<(), LabError> {
        let log_path = self.spec.dir.join("lqosd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LabError::Other(format!("open {}: {e}", log_path.display())))?;
        let log2 = log.try_clone().map_err(|e| LabError::Other(e.to_string()))?;
        // nsenter --net keeps the host's mounts, so /sys would show the host's interfaces:
        // give lqosd a private mount namespace with this namespace's sysfs, and the host's
        // bpffs bound back on top so its pins survive restarts.
        let child = self
            .shaper
            .command("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                SYSFS_WRAPPER,
                "lqosd-wrapper",
            ])
            .arg(lqosd_bin)
            .args(["--config", &self.spec.config_path().display().to_string()])
            .env("LQOS_BUS", self.spec.bus_path())
            // lqos_web runs as nobody here: its group may change state over the bus, as
            // group lqos-admin does in production.
            .env("LQOS_BUS_ADMIN_GIDS", WEB_GID.to_string())
            .env("LQOS_PIN_DIR", self.spec.pin_dir())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| LabError::Spawn { command: "lqosd".into(), source })?;
        self.lqosd = Some(child);
        self.wait_for_lqosd(Duration::from_secs(30))
    }

    /// Waits until lqosd answers on the lab bus.
    pub fn wait_for_lqosd(&mut self, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.lqosd.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(LabError::Other(format!(
                    "lqosd exited ({status}); see {}:\n{}",
                    self.spec.dir.join("lqosd.log").display(),
                    self.lqosd_log_tail(30)
                )));
            }
            if let Ok(mut c) = lqos_bus::BusClient::connect(&self.spec.bus_path())
                && matches!(c.request(&lqos_bus::Command::Ping), Ok(lqos_bus::Response::Pong))
            {
                // lqos_web runs as WEB_UID and reaches the bus through its group (mode 0660).
                let _ = std::os::unix::fs::chown(self.spec.bus_path(), None, Some(WEB_GID));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(LabError::Other(format!(
            "lqosd did not answer within {limit:?}; log:\n{}",
            self.lqosd_log_tail(30)
        )))
    }

    /// Starts `lqos_web` (the binary at `web_bin`) inside the shaper namespace as the
    /// unprivileged user [`WEB_UID`]:[`WEB_GID`] (no supplementary groups, no new privileges),
    /// with the lab's config and bus, logging to `<dir>/lqos_web.log`, and waits until it
    /// listens. The lab directory and the files the GUI writes are given to that user, and the
    /// bus socket to its group, as the packaging does for user `lqos`.
    pub fn start_web(&mut self, web_bin: &Path) -> Result<(), LabError> {
        let dir = &self.spec.dir;
        for p in [
            dir.clone(),
            dir.join("ShapedDevices.csv"),
            dir.join("network.json"),
            dir.join("lqos.conf"),
            dir.join("lqusers.toml"),
        ] {
            if p.exists() {
                std::os::unix::fs::chown(&p, Some(WEB_UID), Some(WEB_GID))
                    .map_err(|e| LabError::Other(format!("chown {}: {e}", p.display())))?;
            }
        }
        let _ = std::os::unix::fs::chown(self.spec.bus_path(), None, Some(WEB_GID));
        let log_path = dir.join("lqos_web.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LabError::Other(format!("open {}: {e}", log_path.display())))?;
        let log2 = log.try_clone().map_err(|e| LabError::Other(e.to_string()))?;
        let child = self
            .shaper
            .command("setpriv")
            .args([
                &format!("--reuid={WEB_UID}"),
                &format!("--regid={WEB_GID}"),
                "--clear-groups",
                "--no-new-privs",
                "--",
            ])
            .arg(web_bin)
            .args(["--config", &self.spec.config_path().display().to_string()])
            .env("LQOS_BUS", self.spec.bus_path())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| LabError::Spawn { command: "lqos_web".into(), source })?;
        self.web = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.web.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(LabError::Other(format!(
                    "lqos_web exited ({status}); see {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 30)
                )));
            }
            if std::fs::read_to_string(&log_path).is_ok_and(|t| t.contains("web server listening"))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::Other(format!(
            "lqos_web did not listen within 30 s; log:\n{}",
            tail(&log_path, 30)
        )))
    }

    /// lqos_web's process id, if running.
    pub fn web_pid(&self) -> Option<u32> {
        self.web.as_ref().map(Child::id)
    }

    /// The last `n` lines of lqosd's log.
    pub fn lqosd_log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.spec.dir.join("lqosd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// lqosd's process id, if running.
    pub fn lqosd_pid(&self) -> Option<u32> {
        self.lqosd.as_ref().map(Child::id)
    }

    /// Sends `signal` to lqosd and waits (bounded) for it to exit.
    pub fn stop_lqosd(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.lqosd.take()?;
        // The child is nsenter, which execs lqosd in place: same pid.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// A bus client to the lab's lqosd.
    pub fn bus(&self) -> Result<lqos_bus::BusClient, lqos_bus::BusError> {
        lqos_bus::BusClient::connect(&self.spec.bus_path())
    }

    /// Removes everything the lab created.
    pub fn down(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.detached {
            return;
        }
        for mut c in [self.web.take(), self.lqosd.take()].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.sub.delete();
        self.shaper.delete();
        self.inet.delete();
        remove_pin_dir(&self.spec.pin_dir());
    }

    /// Keeps the namespaces and lqosd after this process exits (`lqos-lab up`).
    pub fn detach(mut self) -> LabSpec {
        if let Some(c) = self.lqosd.take() {
            let _ = std::fs::write(self.spec.dir.join("lqosd.pid"), c.id().to_string());
            std::mem::forget(c);
        }
        if let Some(c) = self.web.take() {
            let _ = std::fs::write(self.spec.dir.join("lqos_web.pid"), c.id().to_string());
            std::mem::forget(c);
        }
        self.detached = true;
        self.inet.set_keep();
        self.shaper.set_keep();
        self.sub.set_keep();
        self.spec.clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn pin_dir_for(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/lqos-lab-{prefix}"))
}

/// Removes a lab's pinned maps (files directly in `dir`, then `dir`).
fn remove_pin_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes a lab by prefix (for `lqos-lab down`), whether or not this process built it.
pub fn down_by_prefix(prefix: &str, dir: &Path) {
    for suffix in ["sub", "shaper", "inet"] {
        Netns::adopt(&format!("{prefix}-{suffix}")).delete();
    }
    for name in ["lqos_web.pid", "lqosd.pid"] {
        let pidfile = dir.join(name);
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            run_quiet("kill", &["-9", pid.trim()]);
            let _ = std::fs::remove_file(pidfile);
        }
    }
    remove_pin_dir(&pin_dir_for(prefix));
}
