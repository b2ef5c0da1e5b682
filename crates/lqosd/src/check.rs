//! `lqosd --check`: every start-up check of lqosd, run without changing anything, as one line
//! per check (PASS / WARN / FAIL) with the fix for each failure.
//!
//! What it looks at: the configuration, lqosd's capabilities, each shaping interface (exists,
//! up, at least two RX/TX queues; not the packaged `CHANGE-ME` placeholder), bpffs, the kernel
//! (TCX needs Linux ≥ 6.6; older kernels fall back to a netlink clsact filter), BPF (the embedded
//! programs are loaded and verified, nothing is pinned or attached), the leaf qdiscs (`cake`,
//! `fq_codel`; probed in a throw-away network namespace) and the input/state directories.
//!
//! The host is read through [`Host`] (file paths) and [`Probes`] (kernel calls) so that the
//! unit tests run the whole report against a fake `/sys` and `/proc` without root.

use std::fmt;
use std::path::{Path, PathBuf};

use lqos_config::{CakeParams, Config, ConfigError, FqCodelParams, InterfaceMode, LeafQdisc};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Holds.
    Pass,
    /// Does not stop lqosd, but the operator should know.
    Warn,
    /// lqosd would refuse to start (or fail later).
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Outcome.
    pub status: Status,
    /// What was checked (`config`, `interface eth1`, `qdisc cake`, …).
    pub name: String,
    /// What was found.
    pub detail: String,
    /// What to do (for WARN and FAIL).
    pub fix: Option<String>,
}

/// The whole report.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Lines in check order.
    pub lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, status: Status, name: impl Into<String>, detail: impl Into<String>) {
        self.lines.push(Line { status, name: name.into(), detail: detail.into(), fix: None });
    }
    fn push_fix(
        &mut self,
        status: Status,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.lines.push(Line {
            status,
            name: name.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.lines.iter().filter(|l| l.status == Status::Fail).count()
    }
    /// The exit code of `lqosd --check`: 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failures() > 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            let tag = match l.status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            writeln!(f, "{tag}  {:<22} {}", l.name, l.detail)?;
            if let Some(fix) = &l.fix {
                writeln!(f, "      {:<22} fix: {fix}", "")?;
            }
        }
        let (fail, warn) =
            (self.failures(), self.lines.iter().filter(|l| l.status == Status::Warn).count());
        if fail == 0 {
            writeln!(f, "lqosd --check: all {} checks passed ({warn} warning(s))", self.lines.len())
        } else {
            writeln!(
                f,
                "lqosd --check: {fail} of {} checks FAILED ({warn} warning(s)); lqosd would not start",
                self.lines.len()
            )
        }
    }
}

/// Where the host is read from (the real paths, or a fake tree in tests).
#[derive(Debug, Clone)]
pub struct Host {
    /// `/sys/class/net`.
    pub sys_class_net: PathBuf,
    /// `/proc/self/mounts`.
    pub mounts: PathBuf,
    /// `/proc/self/status` (for `CapEff`).
    pub proc_status: PathBuf,
    /// `/proc/sys/kernel/osrelease`.
    pub osrelease: PathBuf,
    /// Where bpffs is mounted (`/sys/fs/bpf`).
    pub bpffs: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            sys_class_net: "/sys/class/net".into(),
            mounts: "/proc/self/mounts".into(),
            proc_status: "/proc/self/status".into(),
            osrelease: "/proc/sys/kernel/osrelease".into(),
            bpffs: "/sys/fs/bpf".into(),
        }
    }
}

/// The checks that need the kernel. Neither may leave anything behind.
pub trait Probes {
    /// Does the kernel accept `leaf` as a qdisc? (lqosd probes in a scratch network namespace.)
    fn qdisc(&self, leaf: &LeafQdisc) -> Result<bool, String>;
    /// Loads (verifies) the embedded eBPF programs without pinning or attaching anything.
    fn bpf_load(&self) -> Result<(), String>;
}

/// The real kernel.
#[derive(Debug, Default)]
pub struct KernelProbes;

impl Probes for KernelProbes {
    fn qdisc(&self, leaf: &LeafQdisc) -> Result<bool, String> {
        lqos_tc::transport::probe_in_scratch_netns(leaf).map_err(|e| crate::engine::error_chain(&e))
    }
    fn bpf_load(&self) -> Result<(), String> {
        let opts = lqos_bpf::LoadOptions::default();
        lqos_bpf::Dataplane::load(&opts).map(drop).map_err(|e| crate::engine::error_chain(&e))
    }
}

/// Interface names the package ships in /etc/lqos.conf until the operator sets real ones.
pub const PLACEHOLDER_PREFIX: &str = "CHANGE-ME";

/// Capabilities lqosd needs: (bit, name, why).
const NEEDED_CAPS: [(u32, &str, &str); 3] = [
    (12, "CAP_NET_ADMIN", "qdiscs, classes, XDP/tc attach"),
    (39, "CAP_BPF", "load eBPF programs and maps"),
    (38, "CAP_PERFMON", "pointer arithmetic in the verifier, tracing programs"),
];
const CAP_SYS_ADMIN: u32 = 21;

/// Parses `CapEff:` of /proc/<pid>/status.
pub fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Is a bpf filesystem mounted at `at` according to a mounts table?
pub fn bpffs_mounted(mounts: &str, at: &Path) -> bool {
    let at = at.to_string_lossy();
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, mnt, fstype) = (f.next(), f.next(), f.next());
        mnt == Some(at.as_ref()) && fstype == Some("bpf")
    })
}

/// `6.6.12-amd64` → (6, 6).
pub fn kernel_version(osrelease: &str) -> Option<(u32, u32)> {
    let mut it = osrelease.trim().split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.chars().take_while(char::is_ascii_digit).collect::<String>();
    Some((major, minor.parse().ok()?))
}

fn check_config(path: &Path, report: &mut Report) -> Option<Config> {
    match lqos_config::load_config(path) {
        Ok((config, warnings)) => {
            report.push(
                Status::Pass,
                "config",
                format!("{} is valid ({} warning(s))", path.display(), warnings.len()),
            );
            for w in &warnings {
                report.push_fix(
                    Status::Warn,
                    "config",
                    w.to_string(),
                    format!("edit {}", path.display()),
                );
            }
            Some(config)
        }
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                report.push_fix(
                    Status::Fail,
                    "config",
                    d.to_string(),
                    format!(
                        "edit {} (packaging/lqos.example.conf documents every key)",
                        path.display()
                    ),
                );
            }
            None
        }
        Err(e) => {
            report.push_fix(
                Status::Fail,
                "config",
                crate::engine::error_chain(&e),
                format!("create {} (the package ships one; see lqos.example.conf)", path.display()),
            );
            None
        }
    }
}

fn check_caps(host: &Host, bpffs_present: bool, report: &mut Report) {
    let caps = std::fs::read_to_string(&host.proc_status).ok().and_then(|s| effective_caps(&s));
    let Some(caps) = caps else {
        report.push_fix(
            Status::Warn,
            "capabilities",
            format!("cannot read CapEff from {}", host.proc_status.display()),
            "run lqosd --check as root",
        );
        return;
    };
    let mut missing: Vec<String> = NEEDED_CAPS
        .iter()
        .filter(|(bit, ..)| caps & (1u64 << bit) == 0)
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect();
    if !bpffs_present && caps & (1u64 << CAP_SYS_ADMIN) == 0 {
        missing.push("CAP_SYS_ADMIN (mount bpffs, which is not mounted)".into());
    }
    if missing.is_empty() {
        report.push(Status::Pass, "capabilities", "CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON present");
    } else {
        report.push_fix(
            Status::Fail,
            "capabilities",
            format!("missing {}", missing.join(", ")),
            "run as root (sudo lqosd --check); the lqosd unit grants these through CapabilityBoundingSet/AmbientCapabilities",
        );
    }
}

fn check_interfaces(config: &Config, host: &Host, report: &mut Report) {
    let mut ifaces: Vec<(&str, &str)> = Vec::new();
    match &config.interfaces {
        None => {
            report.push_fix(
                Status::Fail,
                "interfaces",
                format!("{} has neither [bridge] nor [single_interface]", config.path.display()),
                "add one of the two sections (see lqos.example.conf)",
            );
            return;
        }
        Some(InterfaceMode::Bridge { to_internet, to_network, .. }) => {
            ifaces.push((&to_internet.0, "to_internet"));
            ifaces.push((&to_network.0, "to_network"));
        }
        Some(InterfaceMode::Stick { interface, .. }) => {
            ifaces.push((&interface.0, "single_interface"));
        }
    }
    // The start-up preflight's rules, one line per interface.
    for f in crate::preflight::mode_checks(config) {
        report.push_fix(Status::Fail, "interfaces", f.cause, f.fix);
    }
    for (name, role) in ifaces {
        let mut out = Vec::new();
        crate::preflight::check_interface(&host.sys_class_net, name, role, &mut out);
        let label = format!("interface {role}");
        if out.is_empty() {
            let rx = crate::preflight::count_queues(&host.sys_class_net.join(name), "rx-");
            let tx = crate::preflight::count_queues(&host.sys_class_net.join(name), "tx-");
            report.push(
                Status::Pass,
                label.clone(),
                format!("{name}: exists, up, {rx} RX / {tx} TX queues"),
            );
        }
        for f in out {
            report.push_fix(Status::Fail, label.clone(), f.cause, f.fix);
        }
    }
}

fn check_kernel(host: &Host, report: &mut Report) {
    let release = std::fs::read_to_string(&host.osrelease).unwrap_or_default();
    match kernel_version(&release) {
        Some(v) if v >= (6, 6) => report.push(
            Status::Pass,
            "kernel TCX",
            format!("Linux {}: TCX egress attach available", release.trim()),
        ),
        Some(_) => report.push_fix(
            Status::Warn,
            "kernel TCX",
            format!(
                "Linux {} is older than 6.6: tc programs fall back to a netlink clsact filter",
                release.trim()
            ),
            "upgrade to Linux >= 6.6 (Debian 12: bookworm-backports kernel)",
        ),
        None => report.push_fix(
            Status::Warn,
            "kernel TCX",
            format!("cannot read the kernel version from {}", host.osrelease.display()),
            "check that /proc is mounted",
        ),
    }
}

fn check_bpffs(host: &Host, report: &mut Report) -> bool {
    let mounts = std::fs::read_to_string(&host.mounts).unwrap_or_default();
    if bpffs_mounted(&mounts, &host.bpffs) {
        report.push(Status::Pass, "bpffs", format!("mounted on {}", host.bpffs.display()));
        true
    } else if host.bpffs.is_dir() {
        report.push_fix(
            Status::Warn,
            "bpffs",
            format!("not mounted on {}; lqosd mounts it at start", host.bpffs.display()),
            format!("mount -t bpf bpf {} (or let lqosd do it)", host.bpffs.display()),
        );
        false
    } else {
        report.push_fix(
            Status::Fail,
            "bpffs",
            format!(
                "{} does not exist, so pinned maps cannot survive a restart",
                host.bpffs.display()
            ),
            "use a kernel with CONFIG_BPF_SYSCALL and sysfs mounted on /sys",
        );
        false
    }
}

fn check_bpf(probes: &dyn Probes, report: &mut Report) {
    match probes.bpf_load() {
        Ok(()) => report.push(
            Status::Pass,
            "BPF",
            "XDP and tc programs load and pass the verifier (nothing attached or pinned)",
        ),
        Err(e) => report.push_fix(
            Status::Fail,
            "BPF",
            format!("loading the eBPF programs failed: {e}"),
            "needs a kernel with CONFIG_BPF_SYSCALL, CONFIG_XDP_SOCKETS/CONFIG_NET_CLS_BPF, root (CAP_BPF) and LimitMEMLOCK=infinity",
        ),
    }
}

fn check_qdiscs(config: &Config, probes: &dyn Probes, report: &mut Report) {
    let configured = config.queues.default_sqm.leaf.as_ref().map(LeafQdisc::kind);
    let kinds = [
        (LeafQdisc::Cake(CakeParams::default()), "sch_cake"),
        (LeafQdisc::FqCodel(FqCodelParams::default()), "sch_fq_codel"),
    ];
    for (leaf, module) in kinds {
        let kind = leaf.kind();
        let needed = configured == Some(kind);
        let name = format!("qdisc {kind}");
        match probes.qdisc(&leaf) {
            Ok(true) => report.push(
                Status::Pass,
                name,
                format!("supported{}", if needed { " (default_sqm)" } else { "" }),
            ),
            Ok(false) => report.push_fix(
                if needed { Status::Fail } else { Status::Warn },
                name,
                format!(
                    "the kernel has no {kind} qdisc{}",
                    if needed { " but default_sqm uses it" } else { "" }
                ),
                format!("modprobe {module} (install the kernel modules package), or choose another default_sqm in [queues]"),
            ),
            Err(e) => report.push_fix(
                if needed { Status::Fail } else { Status::Warn },
                name,
                format!("cannot probe: {e}"),
                "run lqosd --check as root",
            ),
        }
    }
}

fn check_dirs(config: &Config, report: &mut Report) {
    let input = &config.lqos_directory;
    if input.join("network.json").is_file() && input.join("ShapedDevices.csv").is_file() {
        report.push(
            Status::Pass,
            "inputs",
            format!("{} has network.json and ShapedDevices.csv", input.display()),
        );
    } else {
        report.push_fix(
            Status::Warn,
            "inputs",
            format!("{} lacks network.json or ShapedDevices.csv: lqosd starts and waits for a Reload", input.display()),
            "enable a CRM integration (lqos_scheduler) or write the two files, then `libreqos --validate`",
        );
    }
    let state = &config.state_directory;
    let usable = if state.exists() {
        state.is_dir() && nix::unistd::access(state, nix::unistd::AccessFlags::W_OK).is_ok()
    } else {
        state.ancestors().skip(1).find(|p| p.exists()).is_some_and(Path::is_dir)
    };
    if usable {
        report.push(
            Status::Pass,
            "state_directory",
            format!("{} is writable (or can be created)", state.display()),
        );
    } else {
        report.push_fix(
            Status::Fail,
            "state_directory",
            format!("{} is not a writable directory", state.display()),
            "fix state_directory in lqos.conf or its permissions (the package uses /var/lib/lqos/state)",
        );
    }
}

/// Runs every check. Changes nothing: the qdisc probes use a scratch namespace and the BPF
/// probe loads programs that are released when it returns.
pub fn run(config_path: &Path, host: &Host, probes: &dyn Probes) -> Report {
    let mut report = Report::default();
    let config = check_config(config_path, &mut report);
    let bpffs = check_bpffs(host, &mut report);
    check_caps(host, bpffs, &mut report);
    check_kernel(host, &mut report);
    check_bpf(probes, &mut report);
    if let Some(config) = config {
        check_interfaces(&config, host, &mut report);
        check_qdiscs(&config, probes, &mut report);
        check_dirs(&config, &mut report);
    } else {
        report.push_fix(
            Status::Fail,
            "interfaces",
            "not checked: the configuration is invalid",
            "fix the config lines above, then run lqosd --check again",
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeProbes {
        cake: bool,
        bpf: Result<(), String>,
    }
    impl Probes for FakeProbes {
        fn qdisc(&self, leaf: &LeafQdisc) -> Result<bool, String> {
            Ok(leaf.kind() != "cake" || self.cake)
        }
        fn bpf_load(&self) -> Result<(), String> {
            self.bpf.clone()
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        host: Host,
    }

    fn fixture(caps: &str, bpffs_mounted: bool, release: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let net = root.join("net");
        for (name, oper, q) in [("wan0", "up", 4), ("lan0", "up", 4), ("one0", "up", 1)] {
            let dev = net.join(name);
            for i in 0..q {
                std::fs::create_dir_all(dev.join(format!("queues/rx-{i}"))).expect("mkdir");
                std::fs::create_dir_all(dev.join(format!("queues/tx-{i}"))).expect("mkdir");
            }
            std::fs::create_dir_all(&dev).expect("mkdir");
            std::fs::write(dev.join("operstate"), oper).expect("write");
        }
        let bpffs = root.join("bpf");
        std::fs::create_dir_all(&bpffs).expect("mkdir");
        let mounts = if bpffs_mounted {
            format!("sysfs /sys sysfs rw 0 0\nbpf {} bpf rw 0 0\n", bpffs.display())
        } else {
            "sysfs /sys sysfs rw 0 0\n".to_owned()
        };
        std::fs::write(root.join("mounts"), mounts).expect("write");
        std::fs::write(root.join("status"), format!("Name:\tlqosd\nCapEff:\t{caps}\n"))
            .expect("write");
        std::fs::write(root.join("osrelease"), release).expect("write");
        std::fs::create_dir_all(root.join("lib/state")).expect("mkdir");
        let host = Host {
            sys_class_net: net,
            mounts: root.join("mounts"),
            proc_status: root.join("status"),
            osrelease: root.join("osrelease"),
            bpffs,
        };
        Fixture { dir, host }
    }

    fn write_conf(f: &Fixture, interfaces: &str, sqm: &str) -> PathBuf {
        let lib = f.dir.path().join("lib");
        let text = format!(
            "version = \"1.5\"\nlqos_directory = \"{}\"\nstate_directory = \"{}\"\n{interfaces}\n[queues]\ndefault_sqm = \"{sqm}\"\ndownlink_bandwidth_mbps = 1000\nuplink_bandwidth_mbps = 1000\n",
            lib.display(),
            lib.join("state").display()
        );
        let p = f.dir.path().join("lqos.conf");
        std::fs::write(&p, text).expect("write");
        p
    }

    const ALL_CAPS: &str = "000001ffffffffff";
    const BRIDGE: &str = "[bridge]\nto_internet = \"wan0\"\nto_network = \"lan0\"\n";

    fn statuses(r: &Report, name: &str) -> Vec<Status> {
        r.lines.iter().filter(|l| l.name == name).map(|l| l.status).collect()
    }

    #[test]
    fn healthy_host_passes_every_check_and_exits_zero() {
        let f = fixture(ALL_CAPS, true, "6.12.0-amd64\n");
        let conf = write_conf(&f, BRIDGE, "cake diffserv4");
        let r = run(&conf, &f.host, &FakeProbes { cake: true, bpf: Ok(()) });
        let text = r.to_string();
        assert_eq!(r.failures(), 0, "{text}");
        assert_eq!(r.exit_code(), 0);
        for name in [
            "config",
            "bpffs",
            "capabilities",
            "kernel TCX",
            "BPF",
            "interface to_internet",
            "interface to_network",
            "qdisc cake",
            "qdisc fq_codel",
            "state_directory",
        ] {
            assert_eq!(statuses(&r, name), vec![Status::Pass], "{name}\n{text}");
        }
        assert!(text.contains("all") && text.contains("checks passed"), "{text}");
    }

    #[test]
    fn packaged_placeholders_fail_with_the_key_to_set() {
        let f = fixture(ALL_CAPS, true, "6.12.0\n");
        let conf = write_conf(
            &f,
            "[bridge]\nto_internet = \"CHANGE-ME-wan\"\nto_network = \"CHANGE-ME-lan\"\n",
            "cake diffserv4",
        );
        let r = run(&conf, &f.host, &FakeProbes { cake: true, bpf: Ok(()) });
        let text = r.to_string();
        assert_eq!(r.exit_code(), 1, "{text}");
        let line = r.lines.iter().find(|l| l.name == "interface to_internet").expect("line");
        assert_eq!(line.status, Status::Fail);
        assert!(line.detail.contains("not configured"), "{text}");
        assert!(line.fix.as_deref().unwrap_or("").contains("to_internet"), "{text}");
    }

    #[test]
    fn each_host_problem_is_its_own_failing_line_with_a_fix() {
        // No CAP_BPF/CAP_NET_ADMIN, bpffs unmounted, old kernel, one-queue NIC, no cake,
        // BPF load refused.
        let f = fixture("0000000000000000", false, "5.10.0-28-amd64\n");
        let conf = write_conf(
            &f,
            "[bridge]\nto_internet = \"wan0\"\nto_network = \"one0\"\n",
            "cake diffserv4",
        );
        let r = run(&conf, &f.host, &FakeProbes { cake: false, bpf: Err("EPERM".into()) });
        let text = r.to_string();
        assert_eq!(statuses(&r, "capabilities"), vec![Status::Fail], "{text}");
        assert!(text.contains("CAP_BPF") && text.contains("CAP_SYS_ADMIN"), "{text}");
        assert_eq!(statuses(&r, "bpffs"), vec![Status::Warn], "{text}");
        assert_eq!(statuses(&r, "kernel TCX"), vec![Status::Warn], "{text}");
        assert_eq!(statuses(&r, "BPF"), vec![Status::Fail], "{text}");
        assert_eq!(statuses(&r, "interface to_network"), vec![Status::Fail], "{text}");
        assert_eq!(statuses(&r, "interface to_internet"), vec![Status::Pass], "{text}");
        assert_eq!(statuses(&r, "qdisc cake"), vec![Status::Fail], "{text}");
        assert!(text.contains("modprobe sch_cake"), "{text}");
        assert!(r.lines.iter().filter(|l| l.status != Status::Pass).all(|l| l.fix.is_some()));
        assert_eq!(r.exit_code(), 1);
        assert!(text.contains("FAILED"), "{text}");
    }

    #[test]
    fn missing_cake_only_warns_when_fq_codel_is_configured() {
        let f = fixture(ALL_CAPS, true, "6.6.0\n");
        let conf = write_conf(&f, BRIDGE, "fq_codel");
        let r = run(&conf, &f.host, &FakeProbes { cake: false, bpf: Ok(()) });
        assert_eq!(statuses(&r, "qdisc cake"), vec![Status::Warn], "{r}");
        assert_eq!(r.exit_code(), 0, "{r}");
    }

    #[test]
    fn invalid_or_missing_config_fails_and_names_the_file() {
        let f = fixture(ALL_CAPS, true, "6.6.0\n");
        let missing = f.dir.path().join("nope.conf");
        let r = run(&missing, &f.host, &FakeProbes { cake: true, bpf: Ok(()) });
        assert_eq!(r.exit_code(), 1);
        assert!(r.lines[0].detail.contains("nope.conf"), "{r}");
        let bad = f.dir.path().join("bad.conf");
        std::fs::write(&bad, "[bridge]\nto_internet = 5\n").expect("write");
        let r = run(&bad, &f.host, &FakeProbes { cake: true, bpf: Ok(()) });
        assert!(r.lines.iter().any(|l| l.name == "config" && l.status == Status::Fail), "{r}");
        assert!(r.lines.iter().any(|l| l.name == "interfaces" && l.detail.contains("not checked")));
    }

    #[test]
    fn parsers_of_proc_files() {
        assert_eq!(
            effective_caps("CapInh:\t0\nCapEff:\t000001ffffffffff\n"),
            Some(0x1ff_ffff_ffff)
        );
        assert_eq!(effective_caps("CapEff:\tzz\n"), None);
        assert_eq!(kernel_version("6.6.12-amd64"), Some((6, 6)));
        assert_eq!(kernel_version("6.12.0+deb13"), Some((6, 12)));
        assert_eq!(kernel_version("6.1rc2"), Some((6, 1)));
        assert_eq!(kernel_version("garbage"), None);
        assert!(bpffs_mounted("bpf /sys/fs/bpf bpf rw 0 0\n", Path::new("/sys/fs/bpf")));
        assert!(!bpffs_mounted("none /sys/fs/bpf tmpfs rw 0 0\n", Path::new("/sys/fs/bpf")));
    }
}
