//! Host tuning from lqos.conf `[tuning]`, applied once at start-up before the data plane is
//! attached (LibreQoS does the same): the NAPI budget and BPF JIT sysctls, NIC offloads off
//! (XDP must see whole packets and VLAN tags), interrupt coalescing, the CPU frequency governor
//! and irqbalance.
//!
//! [`plan_tuning`] turns the settings into a list of [`TuningStep`]s without touching the host;
//! [`apply`] runs them through a [`Runner`] ([`SystemRunner`] for real) and never fails: a missing
//! `ethtool`, a feature the NIC cannot change or an absent cpufreq driver becomes one `warn!`
//! (or `debug!`) line naming the interface and setting, followed by one `info!` summary.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use lqos_config::{InterfaceMode, Tuning};

/// What a step does to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `value` to `/proc/sys/<key with dots as slashes>`.
    Sysctl {
        /// Dotted name, e.g. `net.core.netdev_budget`.
        key: String,
        /// The value written.
        value: String,
    },
    /// Write `value` to `<dir>/<entry>/<file>` for every entry of `dir` named `prefix` followed
    /// by digits (e.g. `/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor`). Entries
    /// without `file` are skipped quietly.
    WriteEach {
        /// Directory to list.
        dir: PathBuf,
        /// Entry name prefix (followed by digits only).
        prefix: String,
        /// Path of the file inside each entry.
        file: PathBuf,
        /// The value written.
        value: String,
    },
    /// Run `program args…`; when `only_if` is set, run it first and skip the step (debug line)
    /// if that program is missing or exits non-zero.
    Command {
        /// The program (looked up in `PATH`).
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Guard command `(program, args)`.
        only_if: Option<(String, Vec<String>)>,
    },
}

/// One tuning step: the action plus what to tell the operator about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningStep {
    /// What to do.
    pub action: Action,
    /// The interface it concerns, if any.
    pub interface: Option<String>,
    /// The setting: an ethtool feature (`gso`, `rx-usecs`), a sysctl key, `cpu governor`,
    /// `irqbalance`.
    pub setting: String,
    /// Human description, e.g. `turn gso off on eth0`.
    pub description: String,
    /// What the operator can do when the step fails.
    pub fix: String,
}

impl TuningStep {
    /// `eth0: gso`, or just the setting when no interface is concerned.
    pub fn subject(&self) -> String {
        match &self.interface {
            Some(i) => format!("{i}: {}", self.setting),
            None => self.setting.clone(),
        }
    }
}

/// Path of a sysctl under `/proc/sys`.
pub fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// The interfaces lqos shapes on: both bridge members, or the stick interface.
pub fn shaping_interfaces(mode: &InterfaceMode) -> Vec<String> {
    match mode {
        InterfaceMode::Bridge { to_internet, to_network, .. } => {
            vec![to_internet.0.clone(), to_network.0.clone()]
        }
        InterfaceMode::Stick { interface, .. } => vec![interface.0.clone()],
    }
}

fn sysctl(key: &str, value: u32, fix: &str) -> TuningStep {
    TuningStep {
        action: Action::Sysctl { key: key.to_owned(), value: value.to_string() },
        interface: None,
        setting: key.to_owned(),
        description: format!("set {key} = {value}"),
        fix: fix.to_owned(),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn ethtool(
    iface: &str,
    args: Vec<String>,
    setting: &str,
    description: String,
    fix: String,
) -> TuningStep {
    TuningStep {
        action: Action::Command { program: "ethtool".into(), args, only_if: None },
        interface: Some(iface.to_owned()),
        setting: setting.to_owned(),
        description,
        fix,
    }
}

/// The steps for `tuning` on `interfaces`, in the order they are applied: sysctls, CPU
/// governor, irqbalance, then per interface the offloads (`disable_offload` in order, then
/// `rxvlan`/`txvlan` when asked and not already listed) and the coalescing (`rx-usecs`,
/// `tx-usecs`). Offload names are trimmed, lower-cased and de-duplicated; empty names dropped.
pub fn plan_tuning(tuning: &Tuning, interfaces: &[String]) -> Vec<TuningStep> {
    let root_fix =
        "run lqosd as root; check that /proc/sys is writable (not a read-only container)";
    let mut steps = vec![
        sysctl("net.core.bpf_jit_enable", 1, root_fix),
        sysctl(
            "net.core.netdev_budget_usecs",
            tuning.netdev_budget_usecs,
            "run lqosd as root, or set netdev_budget_usecs in [tuning] to a value the kernel accepts",
        ),
        sysctl(
            "net.core.netdev_budget",
            tuning.netdev_budget_packets,
            "run lqosd as root, or set netdev_budget_packets in [tuning] to a value the kernel accepts",
        ),
    ];
    if tuning.set_cpu_governor_performance {
        steps.push(TuningStep {
            action: Action::WriteEach {
                dir: PathBuf::from("/sys/devices/system/cpu"),
                prefix: "cpu".into(),
                file: PathBuf::from("cpufreq/scaling_governor"),
                value: "performance".into(),
            },
            interface: None,
            setting: "cpu governor".into(),
            description: "set the CPU frequency governor to performance".into(),
            fix: "load the cpufreq driver for this CPU, or set set_cpu_governor_performance = false in [tuning]".into(),
        });
    }
    if tuning.stop_irq_balance {
        steps.push(TuningStep {
            action: Action::Command {
                program: "systemctl".into(),
                args: strs(&["stop", "irqbalance"]),
                only_if: Some(("systemctl".into(), strs(&["is-active", "--quiet", "irqbalance"]))),
            },
            interface: None,
            setting: "irqbalance".into(),
            description: "stop irqbalance".into(),
            fix: "stop it by hand (systemctl stop irqbalance), or set stop_irq_balance = false in [tuning]".into(),
        });
    }
    let mut features: Vec<String> = Vec::new();
    for f in &tuning.disable_offload {
        let f = f.trim().to_ascii_lowercase();
        if !f.is_empty() && !features.contains(&f) {
            features.push(f);
        }
    }
    for (flag, name) in [(tuning.disable_rxvlan, "rxvlan"), (tuning.disable_txvlan, "txvlan")] {
        if flag && !features.iter().any(|f| f == name) {
            features.push(name.to_owned());
        }
    }
    for iface in interfaces {
        for f in &features {
            steps.push(ethtool(
                iface,
                vec!["-K".into(), iface.clone(), f.clone(), "off".into()],
                f,
                format!("turn {f} off on {iface}"),
                format!(
                    "the driver of {iface} cannot turn {f} off (check `ethtool -k {iface}`); remove \"{f}\" from disable_offload in [tuning] to silence this"
                ),
            ));
        }
        for (name, value, key) in
            [("rx-usecs", tuning.rx_usecs, "rx_usecs"), ("tx-usecs", tuning.tx_usecs, "tx_usecs")]
        {
            steps.push(ethtool(
                iface,
                vec!["-C".into(), iface.clone(), name.into(), value.to_string()],
                name,
                format!("set {name} = {value} on {iface}"),
                format!(
                    "the driver of {iface} does not support {name} coalescing (check `ethtool -c {iface}`); harmless on virtual NICs, or adjust {key} in [tuning]"
                ),
            ));
        }
    }
    steps
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// The host door used by [`apply`]: write a file, list a directory, run a command.
pub trait Runner {
    /// Writes `value` to an existing file (never creates one: a missing file is `NotFound`).
    fn write_file(&self, path: &Path, value: &str) -> std::io::Result<()>;
    /// Names of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// Runs `program args…` to completion. A missing program is `ErrorKind::NotFound`.
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<CommandOutput>;
}

/// The real host: files under /proc and /sys, commands from `PATH` (run with `LC_ALL=C`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn write_file(&self, path: &Path, value: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn run(&self, program: &str, args: &[String]) -> std::io::Result<CommandOutput> {
        let out = std::process::Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()?;
        Ok(CommandOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuningReport {
    /// Steps that took effect.
    pub applied: usize,
    /// Steps skipped on purpose (no cpufreq, irqbalance not running); logged at debug.
    pub skipped: usize,
    /// Subjects (`eth0: rx-usecs`) the NIC or kernel does not support.
    pub not_supported: Vec<String>,
    /// Subjects that failed for another reason.
    pub failed: Vec<String>,
    /// Programs not found (`ethtool`); every step needing one is counted in `not_run`.
    pub missing_programs: Vec<String>,
    /// Steps not run because their program is missing.
    pub not_run: usize,
    /// The text of every warning logged, in order.
    pub warnings: Vec<String>,
}

impl TuningReport {
    /// One line, e.g. `tuning: 9 applied, 2 not supported (eth0: rx-usecs, eth0: tx-usecs)`.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} applied", self.applied)];
        if !self.not_supported.is_empty() {
            parts.push(format!(
                "{} not supported ({})",
                self.not_supported.len(),
                self.not_supported.join(", ")
            ));
        }
        if !self.failed.is_empty() {
            parts.push(format!("{} failed ({})", self.failed.len(), self.failed.join(", ")));
        }
        if self.not_run > 0 {
            parts.push(format!(
                "{} not run ({} not found)",
                self.not_run,
                self.missing_programs.join(", ")
            ));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        format!("tuning: {}", parts.join(", "))
    }

    fn warn(&mut self, step: &TuningStep, what: &str, error: &str) {
        let text = format!("{}: {what} ({error}); fix: {}", step.subject(), step.fix);
        tracing::warn!(
            interface = step.interface.as_deref().unwrap_or("-"),
            setting = %step.setting,
            error = %error,
            fix = %step.fix,
            "tuning: {}: {what}",
            step.subject()
        );
        self.warnings.push(text);
    }
}

/// True when ethtool's output says the driver cannot do what was asked.
fn unsupported(out: &CommandOutput) -> bool {
    let text = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
    ["not supported", "cannot change", "could not change", "[requested"]
        .iter()
        .any(|m| text.contains(m))
}

/// The first non-empty line of stderr, else of stdout, else the exit status.
fn first_line(out: &CommandOutput) -> String {
    out.stderr
        .lines()
        .chain(out.stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| match out.status {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_owned(),
        })
}

fn apply_write_each(
    step: &TuningStep,
    runner: &dyn Runner,
    report: &mut TuningReport,
    (dir, prefix, file, value): (&Path, &str, &Path, &str),
) {
    let mut entries: Vec<(u32, String)> = runner
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix)?.parse::<u32>().ok().map(|i| (i, n)))
        .collect();
    entries.sort();
    let (mut written, mut errors) = (0usize, Vec::new());
    for (_, name) in &entries {
        match runner.write_file(&dir.join(name).join(file), value) {
            Ok(()) => written += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if written == 0 && errors.is_empty() {
        tracing::debug!(dir = %dir.display(), file = %file.display(), "tuning: {} skipped: not present (usual on virtual machines)", step.setting);
        report.skipped += 1;
    } else if errors.is_empty() {
        report.applied += 1;
    } else {
        let n = errors.len();
        report.failed.push(step.subject());
        report.warn(
            step,
            &format!("could not {} on {n} of {} CPUs", step.description, written + n),
            &errors[0],
        );
    }
}

/// A guard command: program and arguments.
type Guard = (String, Vec<String>);

fn apply_command(
    step: &TuningStep,
    runner: &dyn Runner,
    report: &mut TuningReport,
    missing: &mut BTreeSet<String>,
    (program, args, only_if): (&str, &[String], Option<&Guard>),
) {
    if missing.contains(program) {
        report.not_run += 1;
        return;
    }
    if let Some((gp, ga)) = only_if {
        match runner.run(gp, ga) {
            Ok(out) if out.success() => {}
            Ok(_) => {
                tracing::debug!(
                    "tuning: {} skipped: `{gp} {}` says no",
                    step.description,
                    ga.join(" ")
                );
                report.skipped += 1;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "tuning: {} skipped: {gp} not available", step.description);
                report.skipped += 1;
                return;
            }
        }
    }
    match runner.run(program, args) {
        Ok(out) if out.success() && !out.stdout.contains("[requested off]") => report.applied += 1,
        Ok(out) if unsupported(&out) => {
            report.not_supported.push(step.subject());
            report.warn(
                step,
                &format!("cannot {}: not supported", step.description),
                &first_line(&out),
            );
        }
        Ok(out) => {
            report.failed.push(step.subject());
            report.warn(step, &format!("could not {}", step.description), &first_line(&out));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing.insert(program.to_owned());
            report.missing_programs.push(program.to_owned());
            report.not_run += 1;
            let text = format!(
                "{program} not found: could not {} and no later {program} step runs; fix: install it (apt install {program}) and restart lqosd",
                step.description
            );
            tracing::warn!(
                program,
                interface = step.interface.as_deref().unwrap_or("-"),
                "tuning: {text}"
            );
            report.warnings.push(text);
        }
        Err(e) => {
            report.failed.push(step.subject());
            report.warn(step, &format!("could not {}", step.description), &e.to_string());
        }
    }
}

/// Runs `steps` in order through `runner`, never stopping at a failure. Each failure logs one
/// `warn!` naming the interface/setting and the fix; intentional skips log at `debug!`; the
/// summary is logged once at `info!` and returned in the report.
pub fn apply(steps: &[TuningStep], runner: &dyn Runner) -> TuningReport {
    let mut report = TuningReport::default();
    let mut missing = BTreeSet::new();
    for step in steps {
        match &step.action {
            Action::Sysctl { key, value } => match runner.write_file(&sysctl_path(key), value) {
                Ok(()) => report.applied += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.not_supported.push(step.subject());
                    report.warn(
                        step,
                        &format!("cannot {}: this kernel has no such sysctl", step.description),
                        &e.to_string(),
                    );
                }
                Err(e) => {
                    report.failed.push(step.subject());
                    report.warn(step, &format!("could not {}", step.description), &e.to_string());
                }
            },
            Action::WriteEach { dir, prefix, file, value } => {
                apply_write_each(step, runner, &mut report, (dir, prefix, file, value));
            }
            Action::Command { program, args, only_if } => {
                apply_command(
                    step,
                    runner,
                    &mut report,
                    &mut missing,
                    (program, args, only_if.as_ref()),
                );
            }
        }
    }
    tracing::info!("{}", report.summary());
    report
}

/// Plans and applies `[tuning]` on the host for `interfaces` (start-up, once).
pub fn apply_at_startup(tuning: &Tuning, interfaces: &[String]) -> TuningReport {
    apply(&plan_tuning(tuning, interfaces), &SystemRunner)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io::{Error, ErrorKind};

    use lqos_config::conf::*;

    use super::*;

    fn default_tuning() -> Tuning {
        Tuning {
            set_cpu_governor_performance: DEFAULT_SET_CPU_GOVERNOR_PERFORMANCE,
            stop_irq_balance: DEFAULT_STOP_IRQ_BALANCE,
            netdev_budget_usecs: DEFAULT_NETDEV_BUDGET_USECS,
            netdev_budget_packets: DEFAULT_NETDEV_BUDGET_PACKETS,
            rx_usecs: DEFAULT_RX_USECS,
            tx_usecs: DEFAULT_TX_USECS,
            disable_rxvlan: DEFAULT_DISABLE_RXVLAN,
            disable_txvlan: DEFAULT_DISABLE_TXVLAN,
            disable_offload: DEFAULT_DISABLE_OFFLOAD.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn ifaces() -> Vec<String> {
        vec!["eth0".into(), "eth1".into()]
    }

    /// Each step as one comparable line.
    fn render(steps: &[TuningStep]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match &s.action {
                Action::Sysctl { key, value } => format!("sysctl {key}={value}"),
                Action::WriteEach { dir, prefix, file, value } => {
                    format!("write {}/{prefix}N/{} {value}", dir.display(), file.display())
                }
                Action::Command { program, args, only_if } => {
                    let guard = only_if
                        .as_ref()
                        .map(|(p, a)| format!(" if {p} {}", a.join(" ")))
                        .unwrap_or_default();
                    format!("{program} {}{guard}", args.join(" "))
                }
            })
            .collect()
    }

    #[test]
    fn default_plan_on_two_interfaces() {
        let steps = plan_tuning(&default_tuning(), &ifaces());
        let mut want = vec![
            "sysctl net.core.bpf_jit_enable=1".to_owned(),
            "sysctl net.core.netdev_budget_usecs=8000".into(),
            "sysctl net.core.netdev_budget=300".into(),
            "write /sys/devices/system/cpu/cpuN/cpufreq/scaling_governor performance".into(),
            "systemctl stop irqbalance if systemctl is-active --quiet irqbalance".into(),
        ];
        for i in ["eth0", "eth1"] {
            for f in ["gso", "tso", "lro", "sg", "gro", "rxvlan", "txvlan"] {
                want.push(format!("ethtool -K {i} {f} off"));
            }
            want.push(format!("ethtool -C {i} rx-usecs 8"));
            want.push(format!("ethtool -C {i} tx-usecs 8"));
        }
        assert_eq!(render(&steps), want);
        assert_eq!(steps[5].subject(), "eth0: gso");
        assert_eq!(steps[5].description, "turn gso off on eth0");
        assert_eq!(steps[0].subject(), "net.core.bpf_jit_enable");
        assert_eq!(
            sysctl_path("net.core.netdev_budget"),
            Path::new("/proc/sys/net/core/netdev_budget")
        );
    }

    #[test]
    fn no_offload_steps_for_empty_list_and_vlan_flags_off() {
        let t = Tuning {
            disable_offload: vec![],
            disable_rxvlan: false,
            disable_txvlan: false,
            set_cpu_governor_performance: false,
            stop_irq_balance: false,
            ..default_tuning()
        };
        let r = render(&plan_tuning(&t, &ifaces()));
        assert!(!r.iter().any(|l| l.starts_with("ethtool -K")), "{r:?}");
        assert_eq!(r.len(), 3 + 2 * 2, "sysctls and coalescing only: {r:?}");
    }

    #[test]
    fn offload_names_are_normalised_and_vlan_not_repeated() {
        let t = Tuning {
            disable_offload: vec![" GSO".into(), "gso".into(), "".into(), "rxvlan".into()],
            ..default_tuning()
        };
        let r = render(&plan_tuning(&t, &["eth0".to_owned()]));
        let k: Vec<_> = r.iter().filter(|l| l.starts_with("ethtool -K")).cloned().collect();
        assert_eq!(
            k,
            ["ethtool -K eth0 gso off", "ethtool -K eth0 rxvlan off", "ethtool -K eth0 txvlan off"]
        );
    }

    #[test]
    fn shaping_interfaces_of_bridge_and_stick() {
        let b = InterfaceMode::Bridge {
            to_internet: lqos_config::InterfaceName("a".into()),
            to_network: lqos_config::InterfaceName("b".into()),
            use_xdp_bridge: false,
            mtu: None,
        };
        assert_eq!(shaping_interfaces(&b), ["a", "b"]);
        let s = InterfaceMode::Stick {
            interface: lqos_config::InterfaceName("t".into()),
            internet_vlan: 1,
            network_vlan: 2,
            mtu: None,
        };
        assert_eq!(shaping_interfaces(&s), ["t"]);
    }

    /// Records every call; answers from scripted tables.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<String>>,
        /// Files that exist (writable).
        files: BTreeSet<PathBuf>,
        /// Files whose write fails with this kind.
        bad_files: BTreeMap<PathBuf, ErrorKind>,
        dirs: BTreeMap<PathBuf, Vec<String>>,
        /// Command line prefix → output (first match wins); unmatched commands succeed.
        outputs: Vec<(String, CommandOutput)>,
        missing: BTreeSet<String>,
    }

    impl Fake {
        fn host() -> Fake {
            let mut f = Fake::default();
            for k in ["bpf_jit_enable", "netdev_budget_usecs", "netdev_budget"] {
                f.files.insert(PathBuf::from("/proc/sys/net/core").join(k));
            }
            f
        }
        fn fail(mut self, cmd: &str, status: i32, stderr: &str) -> Fake {
            self.outputs.push((
                cmd.to_owned(),
                CommandOutput {
                    status: Some(status),
                    stdout: String::new(),
                    stderr: stderr.into(),
                },
            ));
            self
        }
    }

    impl Runner for Fake {
        fn write_file(&self, path: &Path, value: &str) -> std::io::Result<()> {
            self.calls.borrow_mut().push(format!("write {} {value}", path.display()));
            if let Some(k) = self.bad_files.get(path) {
                return Err(Error::from(*k));
            }
            if self.files.contains(path) { Ok(()) } else { Err(Error::from(ErrorKind::NotFound)) }
        }
        fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            self.dirs.get(dir).cloned().ok_or_else(|| Error::from(ErrorKind::NotFound))
        }
        fn run(&self, program: &str, args: &[String]) -> std::io::Result<CommandOutput> {
            let line = format!("{program} {}", args.join(" "));
            self.calls.borrow_mut().push(format!("run {line}"));
            if self.missing.contains(program) {
                return Err(Error::from(ErrorKind::NotFound));
            }
            Ok(self
                .outputs
                .iter()
                .find(|(p, _)| line.starts_with(p.as_str()))
                .map(|(_, o)| o.clone())
                .unwrap_or(CommandOutput { status: Some(0), ..Default::default() }))
        }
    }

    #[test]
    fn unsupported_feature_warns_names_it_and_continues() {
        let fake = Fake::host()
            .fail("ethtool -K eth0 lro off", 1, "Could not change any device features\n")
            .fail("ethtool -C eth0 rx-usecs", 1, "netlink error: Operation not supported\n")
            .fail("systemctl is-active", 3, "");
        let steps = plan_tuning(&default_tuning(), &ifaces());
        let report = apply(&steps, &fake);
        assert_eq!(report.not_supported, ["eth0: lro", "eth0: rx-usecs"]);
        assert!(report.failed.is_empty(), "{report:?}");
        // 3 sysctls + 18 ethtool steps - 2 unsupported; governor absent and irqbalance inactive
        assert_eq!(report.applied, 3 + 18 - 2);
        assert_eq!(report.skipped, 2);
        assert_eq!(report.warnings.len(), 2);
        assert!(report.warnings[0].starts_with("eth0: lro: cannot turn lro off on eth0: not supported (Could not change any device features)"), "{}", report.warnings[0]);
        assert!(report.warnings[0].contains("remove \"lro\" from disable_offload"));
        assert!(
            report.warnings[1].contains("eth0: rx-usecs")
                && report.warnings[1].contains("Operation not supported")
        );
        // It went on to the steps after the failure, on both interfaces.
        let calls = fake.calls.borrow();
        assert!(calls.contains(&"run ethtool -K eth0 sg off".to_owned()));
        assert!(calls.contains(&"run ethtool -C eth1 tx-usecs 8".to_owned()));
        assert!(!calls.iter().any(|c| c.contains("systemctl stop")), "irqbalance is not active");
        assert_eq!(
            report.summary(),
            "tuning: 19 applied, 2 not supported (eth0: lro, eth0: rx-usecs), 2 skipped"
        );
    }

    #[test]
    fn missing_ethtool_is_one_warning_and_nothing_else_runs() {
        let mut fake = Fake::host();
        fake.missing.insert("ethtool".into());
        let t = Tuning {
            set_cpu_governor_performance: false,
            stop_irq_balance: false,
            ..default_tuning()
        };
        let report = apply(&plan_tuning(&t, &ifaces()), &fake);
        assert_eq!(report.applied, 3);
        assert_eq!(report.not_run, 18);
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].contains("ethtool not found")
                && report.warnings[0].contains("apt install ethtool")
        );
        assert_eq!(fake.calls.borrow().iter().filter(|c| c.starts_with("run ethtool")).count(), 1);
        assert_eq!(report.summary(), "tuning: 3 applied, 18 not run (ethtool not found)");
    }

    #[test]
    fn governor_writes_each_cpu_and_irqbalance_stops_when_active() {
        let mut fake = Fake::host();
        let cpu = PathBuf::from("/sys/devices/system/cpu");
        fake.dirs.insert(
            cpu.clone(),
            vec!["cpu1".into(), "cpu0".into(), "cpufreq".into(), "online".into()],
        );
        for c in ["cpu0", "cpu1"] {
            fake.files.insert(cpu.join(c).join("cpufreq/scaling_governor"));
        }
        let report = apply(&plan_tuning(&default_tuning(), &[]), &fake);
        assert_eq!(report.applied, 5, "{report:?}");
        assert!(report.warnings.is_empty());
        let calls = fake.calls.borrow();
        assert_eq!(
            calls[3..].to_vec(),
            [
                "write /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor performance",
                "write /sys/devices/system/cpu/cpu1/cpufreq/scaling_governor performance",
                "run systemctl is-active --quiet irqbalance",
                "run systemctl stop irqbalance",
            ]
        );
    }

    #[test]
    fn governor_absent_is_skipped_without_warning_and_sysctl_denied_warns() {
        let mut fake = Fake::host();
        let cpu = PathBuf::from("/sys/devices/system/cpu");
        fake.dirs.insert(cpu, (0..8).map(|i| format!("cpu{i}")).collect());
        fake.missing.insert("systemctl".into());
        fake.bad_files.insert(sysctl_path("net.core.netdev_budget"), ErrorKind::PermissionDenied);
        let report = apply(&plan_tuning(&default_tuning(), &[]), &fake);
        assert_eq!((report.applied, report.skipped), (2, 2));
        assert_eq!(report.failed, ["net.core.netdev_budget"]);
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].contains("set net.core.netdev_budget = 300")
                && report.warnings[0].contains("run lqosd as root")
        );
    }
}
