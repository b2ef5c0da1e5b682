//! A [`Backend`] with made-up, moving numbers: used by the API tests, the `web_demo` example
//! (browser tests) and the load test. It never touches the kernel.
//!
//! The tree is `Core` → `Site-N` → `AP-N-M`; circuits `c00001…` hang under the APs. Rates
//! follow slow sine waves of time so that live charts move; counters grow with them.

use std::sync::Mutex;
use std::time::Instant;

use lqos_bus::{
    CircuitStat, Command, CommandError, DaemonStatus, NodeStat, ObjectCounts, ReloadReport,
    Response, SchedulerState,
};

use super::{Backend, BoxFuture};

/// The fake apply task.
pub struct DemoBackend {
    started: Instant,
    nodes: Vec<NodeStat>,
    circuits: Mutex<Vec<CircuitStat>>,
    reloads: Mutex<u64>,
    reload_answer: Mutex<Option<Response>>,
    commands: Mutex<Vec<Command>>,
    shaped_devices: Mutex<Option<std::path::PathBuf>>,
    snapshot: Mutex<Option<(Instant, std::sync::Arc<Vec<CircuitStat>>)>>,
}

const APS_PER_SITE: usize = 4;

impl DemoBackend {
    /// `circuits` circuits spread over `sites` sites (4 APs each).
    pub fn new(circuits: usize, sites: usize) -> Self {
        let sites = sites.max(1);
        let mut nodes = vec![NodeStat {
            name: "Core".into(),
            parent: None,
            download_max_kbit: 10_000_000,
            upload_max_kbit: 10_000_000,
            ..Default::default()
        }];
        for s in 1..=sites {
            nodes.push(NodeStat {
                name: format!("Site-{s}"),
                parent: Some("Core".into()),
                download_max_kbit: 2_000_000,
                upload_max_kbit: 1_000_000,
                ..Default::default()
            });
            for a in 1..=APS_PER_SITE {
                nodes.push(NodeStat {
                    name: format!("AP-{s}-{a}"),
                    parent: Some(format!("Site-{s}")),
                    download_max_kbit: 500_000,
                    upload_max_kbit: 250_000,
                    ..Default::default()
                });
            }
        }
        let aps = sites * APS_PER_SITE;
        let list = (1..=circuits)
            .map(|i| {
                let ap = (i - 1) % aps;
                let (s, a) = (ap / APS_PER_SITE + 1, ap % APS_PER_SITE + 1);
                let plan = [25_000u64, 50_000, 100_000, 250_000][i % 4];
                CircuitStat {
                    id: format!("c{i:05}"),
                    name: format!("Subscriber {i}"),
                    parent: format!("AP-{s}-{a}"),
                    download_max_kbit: plan,
                    upload_max_kbit: plan / 5,
                    class: format!("1:{:x}", i + 2),
                    addresses: vec![format!("100.64.{}.{}/32", (i / 250) % 256, i % 250 + 1)],
                    ..Default::default()
                }
            })
            .collect();
        DemoBackend {
            started: Instant::now(),
            nodes,
            circuits: Mutex::new(list),
            reloads: Mutex::new(0),
            reload_answer: Mutex::new(None),
            commands: Mutex::new(Vec::new()),
            shaped_devices: Mutex::new(None),
            snapshot: Mutex::new(None),
        }
    }

    /// On Reload, take plan rates from this ShapedDevices.csv (as lqosd would apply them).
    pub fn follow_shaped_devices(&self, path: std::path::PathBuf) {
        if let Ok(mut g) = self.shaped_devices.lock() {
            *g = Some(path);
        }
    }

    fn reload_from_csv(&self) -> usize {
        let Some(path) = self.shaped_devices.lock().ok().and_then(|g| g.clone()) else { return 0 };
        let Ok(text) = std::fs::read_to_string(&path) else { return 0 };
        let (circuits, _) = lqos_config::parse_shaped_devices_str(&text, "ShapedDevices.csv");
        let mut changed = 0;
        for c in circuits {
            let (d, u) = (c.download_max.0, c.upload_max.0);
            if let Ok(mut list) = self.circuits.lock()
                && let Some(x) = list.iter_mut().find(|x| x.id == c.id.0)
                && (x.download_max_kbit, x.upload_max_kbit) != (d, u)
            {
                x.download_max_kbit = d;
                x.upload_max_kbit = u;
                changed += 1;
            }
        }
        changed
    }

    /// Makes the next reloads answer `answer` instead of a successful report.
    pub fn set_reload_answer(&self, answer: Option<Response>) {
        if let Ok(mut g) = self.reload_answer.lock() {
            *g = answer;
        }
    }

    /// Sets a circuit's plan rates (what a reload of an edited ShapedDevices.csv would do).
    pub fn set_plan(&self, id: &str, down_kbit: u64, up_kbit: u64) -> bool {
        let Ok(mut list) = self.circuits.lock() else { return false };
        match list.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.download_max_kbit = down_kbit;
                c.upload_max_kbit = up_kbit;
                drop(list);
                self.forget_snapshot();
                true
            }
            None => false,
        }
    }

    fn forget_snapshot(&self) {
        if let Ok(mut g) = self.snapshot.lock() {
            *g = None;
        }
    }

    /// Every command received so far.
    pub fn commands(&self) -> Vec<Command> {
        self.commands.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The live numbers, recomputed at most every 500 ms (like lqosd's own stats tick).
    fn live(&self) -> std::sync::Arc<Vec<CircuitStat>> {
        if let Ok(g) = self.snapshot.lock()
            && let Some((at, snap)) = g.as_ref()
            && at.elapsed() < std::time::Duration::from_millis(500)
        {
            return snap.clone();
        }
        let snap = std::sync::Arc::new(self.compute());
        if let Ok(mut g) = self.snapshot.lock() {
            *g = Some((Instant::now(), snap.clone()));
        }
        snap
    }

    fn compute(&self) -> Vec<CircuitStat> {
        let t = self.started.elapsed().as_secs_f64();
        let list = self.circuits.lock().map(|g| g.clone()).unwrap_or_default();
        list.into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let phase = i as f64 * 0.37;
                let load = 0.25 + 0.2 * (t / 7.0 + phase).sin() + 0.05 * (t * 1.3 + phase).sin();
                let load = if i % 7 == 0 { load * 3.0 } else { load * 0.4 };
                c.download_bps =
                    (c.download_max_kbit as f64 * 1000.0 * load.clamp(0.0, 1.0)) as u64;
                c.upload_bps =
                    (c.upload_max_kbit as f64 * 1000.0 * (load * 0.8).clamp(0.0, 1.0)) as u64;
                let avg = c.download_max_kbit as f64 * 1000.0 * 0.1;
                c.download_bytes = (avg * t / 8.0) as u64 + i as u64 * 1000;
                c.upload_bytes = c.download_bytes / 5;
                c.download_packets = c.download_bytes / 1200;
                c.upload_packets = c.upload_bytes / 300;
                c.drops = (t as u64 * (i as u64 % 3)) / 10;
                c.backlog_bytes = if load > 0.9 { 15_000 } else { 0 };
                c
            })
            .collect()
    }

    fn node_stats(&self, circuits: &[CircuitStat]) -> Vec<NodeStat> {
        let mut nodes = self.nodes.clone();
        let index: std::collections::HashMap<String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        for c in circuits {
            let mut cur = index.get(&c.parent).copied();
            if let Some(i) = cur {
                nodes[i].circuits += 1;
            }
            let mut depth = 0;
            while let Some(i) = cur {
                nodes[i].download_bps += c.download_bps;
                nodes[i].upload_bps += c.upload_bps;
                nodes[i].drops += c.drops;
                cur = nodes[i].parent.as_ref().and_then(|p| index.get(p).copied());
                depth += 1;
                if depth > 16 {
                    break;
                }
            }
        }
        nodes
    }

    fn status(&self) -> DaemonStatus {
        let circuits = self.live();
        let down: u64 = circuits.iter().map(|c| c.download_bps).sum();
        let up: u64 = circuits.iter().map(|c| c.upload_bps).sum();
        let t = self.started.elapsed().as_secs();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reloads = self.reloads.lock().map(|g| *g).unwrap_or(0);
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: t,
            mode: "bridge".into(),
            interfaces: vec!["eth1".into(), "eth2".into()],
            queues: 2,
            circuits: circuits.len(),
            nodes: self.nodes.len(),
            mappings: circuits.len(),
            last_apply_unix: Some(now - t.min(now)),
            last_reload: Some(format!("ok ({reloads} reloads from the web)")),
            download_bps: down + down / 10 + 1,
            upload_bps: up + up / 10 + 1,
            shaped_download_bps: down,
            shaped_upload_bps: up,
            drops: circuits.iter().map(|c| c.drops).sum(),
            scheduler: Some(SchedulerState {
                phase: "idle".into(),
                integration: "none".into(),
                last_run_unix: Some(now.saturating_sub(60)),
                last_result: Some("ok".into()),
                next_run_unix: Some(now + 1740),
                last_error: None,
            }),
            warnings: vec!["demo backend: numbers are made up".into()],
            history_bytes: Some(0),
            ..Default::default()
        }
    }

    fn answer(&self, cmd: Command) -> Response {
        if let Ok(mut g) = self.commands.lock()
            && g.len() < 10_000
        {
            g.push(cmd.clone());
        }
        match cmd {
            Command::Ping => Response::Pong,
            Command::Status => Response::Status(Box::new(self.status())),
            Command::CircuitStats { circuit: None } => Response::Circuits(self.live().to_vec()),
            Command::CircuitStats { circuit: Some(id) } => {
                Response::Circuits(self.live().iter().filter(|c| c.id == id).cloned().collect())
            }
            Command::TopCircuits { n } => {
                let live = self.live();
                let mut all: Vec<&CircuitStat> = live.iter().collect();
                all.sort_by(|a, b| {
                    (b.download_bps + b.upload_bps).cmp(&(a.download_bps + a.upload_bps))
                });
                all.truncate(n);
                Response::Circuits(all.into_iter().cloned().collect())
            }
            Command::NodeStats => Response::Nodes(self.node_stats(&self.live())),
            Command::History { kind, id, range } => {
                let known = match kind {
                    lqos_bus::HistoryKind::Circuit => self.live().iter().any(|c| c.id == id),
                    lqos_bus::HistoryKind::Node => self.nodes.iter().any(|n| n.name == id),
                };
                Response::History(Box::new(demo_history(kind, id, range, known)))
            }
            Command::CircuitQueue { circuit } => match self.live().iter().find(|c| c.id == circuit)
            {
                Some(c) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    let secs = self.started.elapsed().as_secs();
                    Response::Queue(Box::new(crate::circuit::demo_queue(
                        &c.id, &c.class, secs, now,
                    )))
                }
                None => Response::Error(lqos_bus::CommandError::Unavailable {
                    message: format!("circuit {circuit:?} is not in the applied plan"),
                }),
            },
            // The demo has no data plane, hence no flows.
            Command::CircuitFlows { circuit } => {
                if self.live().iter().any(|c| c.id == circuit) {
                    Response::Flows(Vec::new())
                } else {
                    Response::Error(lqos_bus::CommandError::Unavailable {
                        message: format!("circuit {circuit:?} is not in the applied plan"),
                    })
                }
            }
            Command::Reload { mode } => {
                if let Some(a) = self.reload_answer.lock().ok().and_then(|g| g.clone()) {
                    return a;
                }
                if let Ok(mut r) = self.reloads.lock() {
                    *r += 1;
                }
                let changed = self.reload_from_csv();
                self.forget_snapshot();
                let n = self.circuits.lock().map(|g| g.len()).unwrap_or(0);
                Response::Reload(Box::new(ReloadReport {
                    applied: true,
                    full_rebuild: mode == lqos_bus::ReloadMode::Full,
                    circuits: n,
                    nodes: self.nodes.len(),
                    queues: 2,
                    counts: ObjectCounts { changed, ..Default::default() },
                    validate_ms: 3,
                    plan_ms: 2,
                    apply_ms: 1,
                    ..Default::default()
                }))
            }
            Command::DryRun => Response::Reload(Box::default()),
            Command::Validate => Response::Validation(Vec::new()),
            Command::ListMappings => Response::Mappings(Vec::new()),
            Command::ClearTree | Command::SchedulerReport(_) => Response::Ack,
            Command::EditConfig { .. } => Response::Error(lqos_bus::CommandError::Unavailable {
                message: "the demo has no lqosd to write lqos.conf".into(),
            }),
            Command::Worst { kind, by, window, limit } => {
                let live = self.live();
                let nodes = self.node_stats(&live);
                Response::Worst(Box::new(demo_worst(&live, &nodes, kind, by, window, limit)))
            }
            Command::QoeDistribution => Response::Distribution(Box::new(demo_distribution(
                &self.live(),
                self.started.elapsed().as_secs(),
            ))),
            Command::UnknownAddresses { limit } => {
                Response::Unknown(Box::new(demo_unknown(limit, self.started.elapsed().as_secs())))
            }
        }
    }
}

impl Default for DemoBackend {
    fn default() -> Self {
        DemoBackend::new(200, 3)
    }
}

impl Backend for DemoBackend {
    fn request(&self, cmd: Command) -> BoxFuture<'_, Response> {
        Box::pin(async move { self.answer(cmd) })
    }
}

/// A backend whose every answer is an error (lqosd down / unavailable).
pub struct FailingBackend;

impl Backend for FailingBackend {
    fn request(&self, _cmd: Command) -> BoxFuture<'_, Response> {
        Box::pin(async {
            Response::Error(CommandError::Unavailable {
                message: "lqosd apply task is not running".into(),
            })
        })
    }
}

/// Made-up history for the demo: a daily wave of traffic and RTT for known circuits and nodes,
/// nothing for the rest (so the GUI's empty state can be seen too).
fn demo_history(
    kind: lqos_bus::HistoryKind,
    id: String,
    range: lqos_bus::HistoryRange,
    known: bool,
) -> lqos_bus::HistorySeries {
    let step = match range {
        lqos_bus::HistoryRange::Minutes10 => 1,
        lqos_bus::HistoryRange::Hour1 | lqos_bus::HistoryRange::Hours24 => 60,
        _ => 900,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let seed = id.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let points = if known {
        let n = range.secs() / step;
        (0..n)
            .map(|i| {
                let t = now - now % step - (n - 1 - i) * step;
                let day = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
                let load = 0.5 + 0.4 * day.sin() + (((t / step) ^ seed) % 7) as f64 / 70.0;
                let access = 2.0 + 18.0 * load.max(0.0);
                lqos_bus::HistoryPoint {
                    t,
                    down_bps: (load.max(0.0) * 40_000_000.0) as u64,
                    up_bps: (load.max(0.0) * 6_000_000.0) as u64,
                    rtt_access_ms: Some(lqos_bus::RttPercentiles {
                        p50: access,
                        p90: access * 1.6,
                        p99: access * 2.5,
                    }),
                    rtt_upstream_ms: Some(lqos_bus::RttPercentiles {
                        p50: 12.0,
                        p90: 15.0,
                        p99: 22.0,
                    }),
                    retransmits: lqos_bus::PerDirection {
                        down: (t ^ seed) % 5,
                        up: (t ^ seed) % 2,
                    },
                    tcp_packets: lqos_bus::PerDirection {
                        down: (load.max(0.0) * 3_000.0) as u64 * step,
                        up: (load.max(0.0) * 1_000.0) as u64 * step,
                    },
                    drops: (t ^ seed) % 3,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    lqos_bus::HistorySeries { kind, id, range, step_secs: step, now, points }
}

/// Made-up TCP quality of demo circuit `i` at second `t` of the demo: (p50 ms, p90 ms, RTT
/// samples, retransmits, TCP packets) over a window of `secs`. Every seventh circuit is busy
/// (as in `compute`) and its latency rises with its load; a few are plain bad.
fn demo_qoe(i: usize, t: u64, secs: u64) -> (f64, f64, u64, [u64; 2], [u64; 2]) {
    let h = (i as u64).wrapping_mul(2_654_435_761) % 1000;
    let phase = i as f64 * 0.37;
    let load = (0.25 + 0.2 * (t as f64 / 7.0 + phase).sin()).clamp(0.0, 1.0);
    let base = 2.0 + (h % 40) as f64 / 4.0;
    let bad = if h < 15 { 60.0 + (h * 7) as f64 } else { 0.0 };
    let p90 = base + if i.is_multiple_of(7) { 80.0 * load } else { 6.0 * load } + bad;
    let samples = if h.is_multiple_of(11) { 3 } else { secs.min(3_600) * (1 + h % 5) };
    let tcp = secs * (50 + h % 400);
    let retx = tcp * (h % 13) / if h < 30 { 100 } else { 2_000 };
    (p90 * 0.6, p90, samples, [retx, retx / 4], [tcp, tcp / 3])
}

fn demo_worst(
    circuits: &[CircuitStat],
    nodes: &[NodeStat],
    kind: lqos_bus::WorstKind,
    by: lqos_bus::WorstBy,
    window: lqos_bus::QoeWindow,
    limit: usize,
) -> lqos_bus::WorstList {
    use lqos_bus::{PerDirection, WorstBy, WorstEntry, WorstKind};
    let secs = window.secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = now / 10;
    let (min, unit) = match (by, window.from_history()) {
        (WorstBy::Rtt, false) => (20, "rtt samples"),
        (WorstBy::Rtt, true) => (3, "points with rtt"),
        (WorstBy::Retransmits, false) => (200, "tcp packets"),
        (WorstBy::Retransmits, true) => (1_000, "tcp packets"),
    };
    let entry =
        |id: &str, name: &str, parent: Option<String>, q: (f64, f64, u64, [u64; 2], [u64; 2])| {
            let (p50, p90, samples, retx, tcp) = q;
            let r = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
            WorstEntry {
                id: id.into(),
                name: name.into(),
                parent,
                rtt_access_p50_ms: Some(p50),
                rtt_access_p90_ms: Some(p90),
                rtt_samples: samples,
                retransmits: PerDirection { down: retx[0], up: retx[1] },
                tcp_packets: PerDirection { down: tcp[0], up: tcp[1] },
                retransmit_ratio_down: r(retx[0], tcp[0]),
                retransmit_ratio_up: r(retx[1], tcp[1]),
                retransmit_ratio: r(retx[0] + retx[1], tcp[0] + tcp[1]),
                ..WorstEntry::default()
            }
        };
    let mut all: Vec<WorstEntry> = match kind {
        WorstKind::Circuits => circuits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut e = entry(&c.id, &c.name, Some(c.parent.clone()), demo_qoe(i, t, secs));
                (e.download_bps, e.upload_bps) = (c.download_bps, c.upload_bps);
                (e.download_max_kbit, e.upload_max_kbit) = (c.download_max_kbit, c.upload_max_kbit);
                e
            })
            .collect(),
        WorstKind::Nodes => nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (p50, p90, s, r, tcp) = demo_qoe(i * 13 + 5, t, secs);
                let q = (p50, p90, s * 20, r, [tcp[0] * 20, tcp[1] * 20]);
                let mut e = entry(&n.name, &n.name, n.parent.clone(), q);
                (e.download_bps, e.upload_bps) = (n.download_bps, n.upload_bps);
                (e.download_max_kbit, e.upload_max_kbit) = (n.download_max_kbit, n.upload_max_kbit);
                e
            })
            .collect(),
    };
    let total = all.len();
    all.retain(|e| match by {
        WorstBy::Rtt => e.rtt_samples >= min,
        WorstBy::Retransmits => e.tcp_packets.down + e.tcp_packets.up >= min,
    });
    let key = |e: &WorstEntry| match by {
        WorstBy::Rtt => e.rtt_access_p90_ms.unwrap_or(0.0),
        WorstBy::Retransmits => e.retransmit_ratio.unwrap_or(0.0),
    };
    all.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.id.cmp(&b.id)));
    let ranked = all.len();
    all.truncate(limit.min(lqos_bus::WORST_LIMIT_MAX));
    lqos_bus::WorstList {
        kind,
        by,
        window,
        min_samples: min,
        sample_unit: unit.into(),
        ranked,
        total,
        computed_unix: now,
        entries: all,
    }
}

fn demo_distribution(circuits: &[CircuitStat], t: u64) -> lqos_bus::QoeDistribution {
    let edges = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
    let mut buckets: Vec<lqos_bus::DistributionBucket> = Vec::new();
    let mut lower = 0.0;
    for e in edges {
        buckets.push(lqos_bus::DistributionBucket {
            lower_ms: lower,
            upper_ms: Some(e),
            circuits: 0,
        });
        lower = e;
    }
    buckets.push(lqos_bus::DistributionBucket { lower_ms: lower, upper_ms: None, circuits: 0 });
    let mut p90s = Vec::new();
    for i in 0..circuits.len() {
        let (_, p90, samples, _, _) = demo_qoe(i, t / 10, 60);
        if samples < 20 {
            continue;
        }
        p90s.push(p90);
        let b = edges.iter().position(|e| p90 < *e).unwrap_or(edges.len());
        if let Some(b) = buckets.get_mut(b) {
            b.circuits += 1;
        }
    }
    p90s.sort_by(f64::total_cmp);
    lqos_bus::QoeDistribution {
        percentile: "p90".into(),
        path: "access".into(),
        window: "60s".into(),
        min_samples: 20,
        buckets,
        circuits_measured: p90s.len() as u64,
        circuits_total: circuits.len() as u64,
        median_p90_ms: p90s.get(p90s.len() / 2).copied(),
    }
}

fn demo_unknown(limit: usize, t: u64) -> lqos_bus::UnknownList {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let addrs = ["100.64.250.17", "100.64.251.3", "2001:db8:ffff::42", "100.64.252.200"];
    let entries: Vec<lqos_bus::UnknownEntry> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let rate = if i == 3 { 0 } else { 3_000_000 / (i as u64 + 1) };
            let bytes = rate / 8 * (t + 60);
            lqos_bus::UnknownEntry {
                address: (*a).into(),
                bytes: lqos_bus::PerDirection { down: bytes, up: bytes / 8 },
                packets: lqos_bus::PerDirection { down: bytes / 1200, up: bytes / 8 / 300 },
                rate_bps: lqos_bus::PerDirection { down: rate, up: rate / 8 },
                last_seen_unix: if i == 3 { now.saturating_sub(240) } else { now - now % 10 },
            }
        })
        .take(limit.min(lqos_bus::UNKNOWN_LIMIT_MAX))
        .collect();
    lqos_bus::UnknownList {
        window_secs: 10,
        read_unix: Some(now - now % 10),
        tracked: addrs.len(),
        entries,
    }
}
