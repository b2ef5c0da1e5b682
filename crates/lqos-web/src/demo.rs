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
                    drops: (t ^ seed) % 3,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    lqos_bus::HistorySeries { kind, id, range, step_secs: step, now, points }
}
