//! [`Dataplane`]: loads the embedded object, owns its maps and attachments.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::Map,
    programs::{
        SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode,
        tc::SchedClassifierLinkId, xdp::XdpLinkId,
    },
};
use ipnet::IpNet;

use crate::{
    BpfError, BpfKernel,
    layout::{self, LayoutMismatch},
    maps::{
        self, CpuMap, DEFAULT_CPUMAP_QUEUE_SIZE, DataplaneSettings, InterfaceConfig, InterfaceRole,
        IpMap, IpMapping, MappingBatch, Settings,
    },
    stats::{
        DataplaneStats, Flow, FlowKey, FlowTable, RttHistogram, RttHistograms, SlotCounterMap,
        SlotCounters, StatsMap, UnknownAddress, UnknownTable,
    },
};

/// The compiled object (`bpf/lqos_kern.c`), embedded at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lqos_kern.o"));

/// Where lqosd pins the maps that survive a restart.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lqos";
/// bpffs mount point.
pub const BPFFS_PATH: &str = "/sys/fs/bpf";

const PROG_XDP: &str = "lqos_xdp";
const PROG_XDP_PASS: &str = "lqos_xdp_pass";
const PROG_TC_EGRESS: &str = "lqos_tc_egress";
const PROG_TC_STICK: &str = "lqos_tc_stick_ingress";

/// Maps pinned (and reused across restarts) when a pin directory is given. A pin whose
/// layout differs from this build's is recreated at load (see [`crate::check_pinned_layouts`]).
pub const PINNED_MAPS: [&str; 6] =
    [maps::IP_MAP, maps::EPOCH, maps::SLOT_COUNTERS, maps::RTT_HIST, maps::FLOWS, maps::FLOW_GEN];

/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;
/// `TC_ACT_OK`.
pub const TC_ACT_OK: u32 = 0;
/// `TC_ACT_REDIRECT`.
pub const TC_ACT_REDIRECT: u32 = 7;

/// Default number of counter slots (slot 0 = unshaped, so 65 535 circuits).
pub const DEFAULT_MAX_SLOTS: u32 = 65_536;
/// Default flow-table capacity.
pub const DEFAULT_MAX_FLOWS: u32 = 65_536;
/// Default classification-cache entries per CPU (2 MiB per CPU).
pub const DEFAULT_CACHE_ENTRIES: u32 = crate::abi::CACHE_ENTRIES;
/// Default IP-mapping trie capacity.
pub const DEFAULT_MAX_MAPPINGS: u32 = 262_144;

/// How to load the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Pin (or reuse pinned) the maps of [`PINNED_MAPS`] here, e.g. [`DEFAULT_PIN_DIR`].
    /// `None`: private maps that die with the process.
    pub pin_dir: Option<PathBuf>,
    /// Queue size of each cpumap slot.
    pub cpumap_queue_size: u32,
    /// Counter slots (per-CPU counters: 64 B × slots × possible CPUs; RTT histograms:
    /// 272 B × slots). Slots at or beyond this are counted in slot 0.
    pub max_slots: u32,
    /// Flow-table capacity: a power of two ≥ 4 (192 B per entry, preallocated; 4-way sets,
    /// so a table can refuse a new flow before it is full).
    pub max_flows: u32,
    /// Classification-cache entries per CPU: a power of two ≥ 4 (32 B each, 2-way sets).
    /// Addresses active at once beyond this miss the cache and pay an LPM lookup.
    pub cache_entries: u32,
    /// IP-mapping trie capacity (prefixes).
    pub max_mappings: u32,
    /// Track TCP/UDP flows, TCP RTT and retransmits (default). `false` leaves only
    /// classify + count + steer (for very high packet rates; the verifier removes the code).
    pub track_flows: bool,
    /// Benchmark only, 0 in production: when non-zero the XDP program adds
    /// `(packet number × 2654435761) & (bench_spread - 1)` to the subscriber address
    /// (IPv4: the address, IPv6: bits 32..64) so one `BPF_PROG_TEST_RUN` frame walks many
    /// subscribers. Must be a power of two. The verifier removes the code when 0.
    pub bench_spread: u32,
    /// Benchmark only: with `bench_spread`, each address gets this many packets in a row (a
    /// power of two; 0 or 1 = every packet another address), like the trains of segments a
    /// TCP sender's TSO/GRO bursts put on the wire.
    pub bench_train: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            pin_dir: None,
            cpumap_queue_size: DEFAULT_CPUMAP_QUEUE_SIZE,
            max_slots: DEFAULT_MAX_SLOTS,
            max_flows: DEFAULT_MAX_FLOWS,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            max_mappings: DEFAULT_MAX_MAPPINGS,
            track_flows: true,
            bench_spread: 0,
            bench_train: 0,
        }
    }
}

/// How XDP ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Native (driver) XDP: metadata reaches tc.
    Driver,
    /// Generic (skb) XDP: tc does its own lookup.
    Generic,
}

/// Result of one `BPF_PROG_TEST_RUN` of an XDP program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpTestResult {
    /// The XDP action (see [`XDP_PASS`], [`XDP_REDIRECT`]).
    pub action: u32,
    /// Average time per run as measured by the kernel.
    pub duration: Duration,
    /// Metadata the program left in front of the frame.
    pub meta: Vec<u8>,
    /// The frame after the program (e.g. rewritten VLAN tag).
    pub frame: Vec<u8>,
}

/// Result of one `BPF_PROG_TEST_RUN` of a tc program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcTestResult {
    /// The tc action (see [`TC_ACT_OK`], [`TC_ACT_REDIRECT`]).
    pub action: u32,
    /// `skb->priority` after the program (the class handle).
    pub priority: u32,
    /// Average time per run.
    pub duration: Duration,
    /// The frame after the program (e.g. a swapped VLAN tag).
    pub frame: Vec<u8>,
}

/// Runs the loaded XDP program through `BPF_PROG_TEST_RUN` (see
/// [`Dataplane::ip_map_and_runner`]).
#[derive(Clone, Copy)]
pub struct XdpRunner<'a> {
    ebpf: &'a Ebpf,
}

impl std::fmt::Debug for XdpRunner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpRunner").finish_non_exhaustive()
    }
}

impl XdpRunner<'_> {
    /// Same as [`Dataplane::test_run_xdp`].
    pub fn test_run_xdp(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<XdpTestResult, BpfError> {
        run_xdp(self.ebpf, PROG_XDP, frame, ingress_ifindex, repeat)
    }
}

struct Attached {
    xdp: Vec<(String, XdpLinkId)>,
    tc: Vec<(String, &'static str, SchedClassifierLinkId)>,
}

/// The loaded data plane: programs, typed maps and attachments. Dropping it detaches every
/// program (the links belong to this process), leaving pinned maps in place.
pub struct Dataplane {
    ebpf: Ebpf,
    ip_map: IpMap,
    cpu_map: CpuMap,
    if_config: InterfaceConfig,
    settings: Settings,
    slots: SlotCounterMap,
    rtt: RttHistograms,
    flows: FlowTable,
    unknown: UnknownTable,
    stats: StatsMap,
    attached: Attached,
    cpus: Vec<u32>,
    recreated: Vec<LayoutMismatch>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("xdp", &self.attached.xdp.iter().map(|a| &a.0).collect::<Vec<_>>())
            .field("tc", &self.attached.tc.iter().map(|a| (&a.0, a.1)).collect::<Vec<_>>())
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, BpfError> {
    ebpf.take_map(name).ok_or(BpfError::Missing { kind: "map", name })
}

fn possible_cpus() -> Result<usize, BpfError> {
    aya::util::nr_cpus().map_err(|(path, source)| BpfError::Cpus { path, source })
}

fn ifindex(ifname: &str) -> Result<u32, BpfError> {
    nix::net::if_::if_nametoindex(ifname)
        .map_err(|source| BpfError::NoInterface { ifname: ifname.to_string(), source })
}

impl Dataplane {
    /// Loads the embedded object: creates (or reopens pinned) maps, sizes the cpumap from the
    /// possible CPUs and fills it for the online ones, and verifies every program. Nothing is
    /// attached yet, so a verifier failure leaves any running data plane untouched.
    pub fn load(opts: &LoadOptions) -> Result<Self, BpfError> {
        let ncpus = possible_cpus()?;
        if opts.bench_spread != 0 && !opts.bench_spread.is_power_of_two() {
            return Err(BpfError::InvalidOption {
                option: "bench_spread",
                reason: "must be 0 or a power of two",
            });
        }
        if opts.max_slots == 0 || opts.max_mappings == 0 {
            return Err(BpfError::InvalidOption {
                option: "max_slots/max_mappings",
                reason: "must be at least 1",
            });
        }
        if opts.max_flows < crate::abi::FLOW_WAYS || !opts.max_flows.is_power_of_two() {
            return Err(BpfError::InvalidOption {
                option: "max_flows",
                reason: "must be a power of two, at least 4 (one set of ways)",
            });
        }
        if opts.cache_entries < 4 || !opts.cache_entries.is_power_of_two() {
            return Err(BpfError::InvalidOption {
                option: "cache_entries",
                reason: "must be a power of two, at least 4",
            });
        }
        let ncpus_u32 = u32::try_from(ncpus).unwrap_or(u32::MAX).max(1);
        let cache_sets = opts.cache_entries / 2;
        let (Some(slot_entries), Some(cache_total)) =
            (opts.max_slots.checked_mul(ncpus_u32), cache_sets.checked_mul(ncpus_u32))
        else {
            return Err(BpfError::InvalidOption {
                option: "max_slots/cache_entries",
                reason: "times the possible CPUs must fit in 32 bits",
            });
        };
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(maps::CPU_MAP, ncpus_u32);
        loader.map_max_entries(maps::SLOT_COUNTERS, slot_entries);
        loader.map_max_entries(maps::RTT_HIST, opts.max_slots);
        loader.map_max_entries(maps::FLOWS, opts.max_flows);
        loader.map_max_entries(maps::SLOT_FLOWS, opts.max_slots);
        loader.map_max_entries(maps::CACHE, cache_total);
        loader.map_max_entries(maps::IP_MAP, opts.max_mappings);
        let Some(pfx_buckets) = crate::pfx::buckets_for(opts.max_mappings) else {
            return Err(BpfError::InvalidOption {
                option: "max_mappings",
                reason: "must be at most 2^31 (the prefix hash is a power of two of buckets)",
            });
        };
        loader.map_max_entries(crate::pfx::PFX_HASH, pfx_buckets);
        let pfx_mask = pfx_buckets - 1;
        loader.override_global("lqos_pfx_mask", &pfx_mask, true);
        loader.override_global("lqos_cache_sets", &cache_sets, true);
        // Both are powers of two ≥ 2: the shift keeps the top log2(sets) bits of the hash.
        let cache_shift = 64 - cache_sets.trailing_zeros();
        loader.override_global("lqos_cache_shift", &cache_shift, true);
        let flow_sets = opts.max_flows / crate::abi::FLOW_WAYS;
        let flow_shift = 64 - flow_sets.trailing_zeros();
        loader.override_global("lqos_flow_shift", &flow_shift, true);
        let flow_mask = flow_sets - 1;
        loader.override_global("lqos_flow_mask", &flow_mask, true);
        // One slot opens at most 1/16 of the table per flow generation (a flood against or
        // from one subscriber then holds at most about a fifth of it: entries stay until
        // idle for two generations).
        let flow_budget = (opts.max_flows / 16).max(16);
        loader.override_global("lqos_flow_budget", &flow_budget, true);
        if opts.bench_train > 1 && !opts.bench_train.is_power_of_two() {
            return Err(BpfError::InvalidOption {
                option: "bench_train",
                reason: "must be 0, 1 or a power of two",
            });
        }
        let train_shift = opts.bench_train.max(1).trailing_zeros();
        loader.override_global("lqos_bench_train_shift", &train_shift, true);
        let max_slot_index = opts.max_slots;
        let spread_mask = opts.bench_spread.wrapping_sub(1);
        let spread_on = u32::from(opts.bench_spread != 0);
        loader.override_global("lqos_max_slots", &max_slot_index, true);
        loader.override_global("lqos_bench_spread_on", &spread_on, true);
        let track = u32::from(opts.track_flows);
        loader.override_global("lqos_track_flows", &track, true);
        loader.override_global("lqos_bench_spread_mask", &spread_mask, true);
        let mut recreated = Vec::new();
        let pin_paths: Vec<(&'static str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|source| BpfError::PinDir { path: dir.clone(), source })?;
                recreated = layout::repair_pins(dir, opts, ncpus_u32)?;
                PINNED_MAPS.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT).map_err(|source| BpfError::Object { source })?;
        for name in [PROG_XDP, PROG_XDP_PASS] {
            let prog: &mut Xdp = prog_mut(&mut ebpf, name)?;
            prog.load().map_err(|source| BpfError::ProgramLoad { program: name, source })?;
        }
        for name in [PROG_TC_EGRESS, PROG_TC_STICK] {
            let prog: &mut SchedClassifier = prog_mut(&mut ebpf, name)?;
            prog.load().map_err(|source| BpfError::ProgramLoad { program: name, source })?;
        }
        let ip_map = IpMap::new(
            take_map(&mut ebpf, maps::IP_MAP)?,
            take_map(&mut ebpf, maps::CACHE)?,
            take_map(&mut ebpf, maps::EPOCH)?,
            take_map(&mut ebpf, crate::pfx::PFX_HASH)?,
            take_map(&mut ebpf, crate::pfx::PFX_LENS_MAP)?,
        )?;
        let mut cpu_map = CpuMap::new(take_map(&mut ebpf, maps::CPU_MAP)?);
        let if_config = InterfaceConfig::new(take_map(&mut ebpf, maps::IF_CONFIG)?)?;
        let mut settings = Settings::new(take_map(&mut ebpf, maps::SETTINGS)?)?;
        settings.set(&DataplaneSettings::default())?;
        let slots = SlotCounterMap::new(take_map(&mut ebpf, maps::SLOT_COUNTERS)?, ncpus)?;
        let rtt = RttHistograms::new(take_map(&mut ebpf, maps::RTT_HIST)?)?;
        let flows = FlowTable::new(
            take_map(&mut ebpf, maps::FLOWS)?,
            take_map(&mut ebpf, maps::FLOW_GEN)?,
        )?;
        let unknown = UnknownTable::new(take_map(&mut ebpf, maps::UNKNOWN)?)?;
        let stats = StatsMap::new(take_map(&mut ebpf, maps::STATS)?)?;
        let cpus = cpu_map.fill_online(opts.cpumap_queue_size)?;
        tracing::info!(
            possible_cpus = ncpus,
            online = cpus.len(),
            pinned = opts.pin_dir.is_some(),
            max_slots = opts.max_slots,
            max_flows = opts.max_flows,
            cache_entries_per_cpu = opts.cache_entries,
            cache_mib_per_cpu = u64::from(opts.cache_entries) * 32 / (1 << 20),
            prefix_hash_mib = u64::from(pfx_buckets) * 64 / (1 << 20),
            recreated = recreated.len(),
            "eBPF data plane loaded"
        );
        Ok(Dataplane {
            ebpf,
            ip_map,
            cpu_map,
            if_config,
            settings,
            slots,
            rtt,
            flows,
            unknown,
            stats,
            attached: Attached { xdp: Vec::new(), tc: Vec::new() },
            cpus,
            recreated,
        })
    }

    /// Pins that [`Dataplane::load`] found with a different layout and recreated (empty).
    pub fn recreated_maps(&self) -> &[LayoutMismatch] {
        &self.recreated
    }

    /// Stores the interface's role for the programs (done by the attach calls too).
    pub fn set_interface(&mut self, ifname: &str, role: InterfaceRole) -> Result<u32, BpfError> {
        let idx = ifindex(ifname)?;
        self.if_config.set(idx, role)?;
        Ok(idx)
    }

    /// Sets the role of an ifindex directly (tests: `lo` is ifindex 1).
    pub fn set_interface_index(
        &mut self,
        ifindex: u32,
        role: InterfaceRole,
    ) -> Result<(), BpfError> {
        self.if_config.set(ifindex, role)
    }

    /// Attaches XDP to the ingress of `ifname` (driver mode, generic as fallback).
    /// Equivalent: `ip link set dev IF xdpdrv …` through a bpf_link.
    pub fn attach_xdp(
        &mut self,
        ifname: &str,
        role: InterfaceRole,
    ) -> Result<XdpAttachMode, BpfError> {
        self.set_interface(ifname, role)?;
        let prog: &mut Xdp = prog_mut(&mut self.ebpf, PROG_XDP)?;
        let (id, mode) =
            match prog.attach(ifname, XdpMode::Driver) {
                Ok(id) => (id, XdpAttachMode::Driver),
                Err(err) => {
                    tracing::warn!(ifname, error = %err, "driver XDP refused, using generic XDP");
                    let id = prog.attach(ifname, XdpMode::Skb).map_err(|source| {
                        BpfError::Attach { program: PROG_XDP, ifname: ifname.to_string(), source }
                    })?;
                    (id, XdpAttachMode::Generic)
                }
            };
        self.attached.xdp.push((ifname.to_string(), id));
        tracing::info!(ifname, ?mode, ?role, "XDP attached");
        Ok(mode)
    }

    /// Attaches the egress classifier to `ifname` with TCX (kernel ≥ 6.6; aya falls back to a
    /// netlink clsact filter on older kernels). On a stick, also attaches the ingress hairpin
    /// that sends tagged frames back out of the same NIC.
    pub fn attach_tc_egress(&mut self, ifname: &str, role: InterfaceRole) -> Result<(), BpfError> {
        self.set_interface(ifname, role)?;
        self.attach_tc(ifname, PROG_TC_EGRESS, TcAttachType::Egress)?;
        if matches!(role, InterfaceRole::Stick { .. }) {
            self.attach_tc(ifname, PROG_TC_STICK, TcAttachType::Ingress)?;
        }
        Ok(())
    }

    fn attach_tc(
        &mut self,
        ifname: &str,
        name: &'static str,
        at: TcAttachType,
    ) -> Result<(), BpfError> {
        let prog: &mut SchedClassifier = prog_mut(&mut self.ebpf, name)?;
        let id = prog.attach(ifname, at).map_err(|source| BpfError::Attach {
            program: name,
            ifname: ifname.to_string(),
            source,
        })?;
        self.attached.tc.push((ifname.to_string(), name, id));
        tracing::info!(ifname, program = name, "tc program attached");
        Ok(())
    }

    /// Detaches every program this data plane attached (maps stay).
    pub fn detach(&mut self) -> Result<(), BpfError> {
        let mut first_err = None;
        for (ifname, id) in std::mem::take(&mut self.attached.xdp) {
            let res = prog_mut::<Xdp>(&mut self.ebpf, PROG_XDP).and_then(|p| {
                p.detach(id).map_err(|source| BpfError::Detach {
                    program: PROG_XDP,
                    ifname: ifname.clone(),
                    source,
                })
            });
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        for (ifname, name, id) in std::mem::take(&mut self.attached.tc) {
            let res = prog_mut::<SchedClassifier>(&mut self.ebpf, name).and_then(|p| {
                p.detach(id).map_err(|source| BpfError::Detach {
                    program: name,
                    ifname: ifname.clone(),
                    source,
                })
            });
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The IP mapping table.
    pub fn ip_map(&mut self) -> &mut IpMap {
        &mut self.ip_map
    }

    /// The IP mapping table and a runner of the XDP program at once, so that one thread can
    /// change mappings while another classifies (tests and benchmarks of concurrent updates).
    pub fn ip_map_and_runner(&mut self) -> (&mut IpMap, XdpRunner<'_>) {
        (&mut self.ip_map, XdpRunner { ebpf: &self.ebpf })
    }

    /// The cpumap.
    pub fn cpu_map(&mut self) -> &mut CpuMap {
        &mut self.cpu_map
    }

    /// Interface roles.
    pub fn interfaces(&mut self) -> &mut InterfaceConfig {
        &mut self.if_config
    }

    /// Writes the global switches (observe mode, sampling rates).
    pub fn set_settings(&mut self, s: &DataplaneSettings) -> Result<(), BpfError> {
        self.settings.set(s)
    }

    /// Reads the global switches.
    pub fn settings(&self) -> Result<DataplaneSettings, BpfError> {
        self.settings.get()
    }

    /// `queue_mode = "observe"` on or off (keeps the sampling rates).
    pub fn set_observe(&mut self, observe: bool) -> Result<(), BpfError> {
        let s = DataplaneSettings { observe, ..self.settings.get()? };
        self.settings.set(&s)
    }

    /// Per-slot counters.
    pub fn slot_counters(&mut self) -> &mut SlotCounterMap {
        &mut self.slots
    }

    /// Per-slot RTT histograms.
    pub fn rtt_histograms(&mut self) -> &mut RttHistograms {
        &mut self.rtt
    }

    /// The flow table.
    pub fn flows(&mut self) -> &mut FlowTable {
        &mut self.flows
    }

    /// The flow table and a test runner at once (tests that read and age the table while
    /// packets run on another thread).
    pub fn flows_and_runner(&mut self) -> (&mut FlowTable, XdpRunner<'_>) {
        (&mut self.flows, XdpRunner { ebpf: &self.ebpf })
    }

    /// The sampled unknown-address table.
    pub fn unknown(&mut self) -> &mut UnknownTable {
        &mut self.unknown
    }

    /// The programs' health counters.
    pub fn stats(&self) -> Result<DataplaneStats, BpfError> {
        self.stats.read()
    }

    /// Zeroes the counters and RTT histograms of slots (call before reusing a freed slot).
    pub fn reset_slots(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        self.slots.reset(slots)?;
        self.rtt.reset(slots)
    }

    /// Online CPUs enabled in the cpumap at load.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// Runs the XDP program once per `repeat` over `frame` as if received on `ingress_ifindex`.
    pub fn test_run_xdp(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<XdpTestResult, BpfError> {
        run_xdp(&self.ebpf, PROG_XDP, frame, ingress_ifindex, repeat)
    }

    /// Same as [`Dataplane::test_run_xdp`] for the empty benchmark anchor (`return XDP_PASS`).
    pub fn test_run_xdp_pass(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        repeat: u32,
    ) -> Result<XdpTestResult, BpfError> {
        run_xdp(&self.ebpf, PROG_XDP_PASS, frame, ingress_ifindex, repeat)
    }

    /// Runs the egress classifier over `frame` as if leaving `ifindex` (no XDP metadata).
    pub fn test_run_tc_egress(&self, frame: &[u8], ifindex: u32) -> Result<TcTestResult, BpfError> {
        run_tc(&self.ebpf, PROG_TC_EGRESS, frame, ifindex)
    }

    /// Runs the stick ingress hairpin over `frame` as if received on `ifindex`.
    pub fn test_run_tc_stick_ingress(
        &self,
        frame: &[u8],
        ifindex: u32,
    ) -> Result<TcTestResult, BpfError> {
        run_tc(&self.ebpf, PROG_TC_STICK, frame, ifindex)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            tracing::warn!(error = %e, "detach on drop failed; links close with the process");
        }
    }
}

fn prog_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    let prog = ebpf.program_mut(name).ok_or(BpfError::Missing { kind: "program", name })?;
    prog.try_into().map_err(|_| BpfError::Missing { kind: "program", name })
}

fn prog_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a T, BpfError>
where
    &'a T: TryFrom<&'a aya::programs::Program>,
{
    let prog = ebpf.program(name).ok_or(BpfError::Missing { kind: "program", name })?;
    prog.try_into().map_err(|_| BpfError::Missing { kind: "program", name })
}

fn run_xdp(
    ebpf: &Ebpf,
    name: &'static str,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
) -> Result<XdpTestResult, BpfError> {
    let prog: &Xdp = prog_ref(ebpf, name)?;
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
    let mut ctx_in = [0u8; 24];
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    ctx_in[4..8].copy_from_slice(&len.to_ne_bytes());
    ctx_in[12..16].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    let mut ctx_out = [0u8; 24];
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut data_out);
    opts.ctx_in = Some(&ctx_in);
    opts.ctx_out = Some(&mut ctx_out);
    opts.repeat = repeat.max(1);
    let res = prog.test_run(opts).map_err(|source| BpfError::TestRun { program: name, source })?;
    // ctx_out.data = bytes of metadata in front of the frame in data_out.
    let meta_len = u32::from_ne_bytes([ctx_out[0], ctx_out[1], ctx_out[2], ctx_out[3]]) as usize;
    let out_len = (res.data_size_out as usize).min(data_out.len());
    let meta_len = meta_len.min(out_len);
    Ok(XdpTestResult {
        action: res.return_value,
        duration: res.duration,
        meta: data_out[..meta_len].to_vec(),
        frame: data_out[meta_len..out_len].to_vec(),
    })
}

fn run_tc(
    ebpf: &Ebpf,
    name: &'static str,
    frame: &[u8],
    ifindex: u32,
) -> Result<TcTestResult, BpfError> {
    let prog: &SchedClassifier = prog_ref(ebpf, name)?;
    // struct __sk_buff: priority at 32, ifindex at 40; only allowed fields may be non-zero.
    let mut ctx_in = [0u8; 48];
    ctx_in[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    let mut ctx_out = [0u8; 192];
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut data_out);
    opts.ctx_in = Some(&ctx_in);
    opts.ctx_out = Some(&mut ctx_out);
    let res = prog.test_run(opts).map_err(|source| BpfError::TestRun { program: name, source })?;
    let out_len = (res.data_size_out as usize).min(data_out.len());
    Ok(TcTestResult {
        action: res.return_value,
        priority: u32::from_ne_bytes([ctx_out[32], ctx_out[33], ctx_out[34], ctx_out[35]]),
        duration: res.duration,
        frame: data_out[..out_len].to_vec(),
    })
}

/// Mounts bpffs on `/sys/fs/bpf` unless it is already there. Returns true if it mounted.
/// Equivalent: `mount -t bpf bpf /sys/fs/bpf`.
pub fn ensure_bpffs() -> Result<bool, BpfError> {
    ensure_bpffs_at(Path::new(BPFFS_PATH))
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// [`ensure_bpffs`] on another mount point.
pub fn ensure_bpffs_at(path: &Path) -> Result<bool, BpfError> {
    if let Ok(st) = nix::sys::statfs::statfs(path) {
        #[expect(clippy::unnecessary_cast, reason = "fsword type differs between libc targets")]
        if st.filesystem_type().0 as i64 == BPF_FS_MAGIC {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(path)
        .map_err(|source| BpfError::PinDir { path: path.to_path_buf(), source })?;
    nix::mount::mount(Some("bpf"), path, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
        .map_err(|source| BpfError::Mount { path: path.to_path_buf(), source })?;
    tracing::info!(path = %path.display(), "mounted bpffs");
    Ok(true)
}

/// Removes the pins [`Dataplane::load`] creates under `dir` (for `--clear` and tests).
pub fn remove_pins(dir: &Path) -> Result<(), BpfError> {
    for name in PINNED_MAPS.iter().chain(layout::LEGACY_PINS.iter()) {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BpfError::PinDir { path: dir.join(name), source });
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Something else lives there; leave it.
        Err(_) => Ok(()),
    }
}

impl BpfKernel for Dataplane {
    fn apply_mappings(&mut self, batch: &MappingBatch) -> Result<u32, BpfError> {
        self.ip_map.apply(batch)
    }

    fn clear_mappings(&mut self) -> Result<u32, BpfError> {
        self.ip_map.clear()
    }

    fn list_mappings(&self) -> Result<Vec<(IpNet, IpMapping)>, BpfError> {
        self.ip_map.list()
    }

    fn read_slot_counters(
        &self,
        range: std::ops::Range<u32>,
        out: &mut Vec<SlotCounters>,
    ) -> Result<(), BpfError> {
        self.slots.read(range, out)
    }

    fn read_rtt_histograms(
        &self,
        range: std::ops::Range<u32>,
        out: &mut Vec<RttHistogram>,
    ) -> Result<(), BpfError> {
        self.rtt.read(range, out)
    }

    fn reset_slots(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        Dataplane::reset_slots(self, slots)
    }

    fn read_flows(&self) -> Result<Vec<Flow>, BpfError> {
        self.flows.read_all()
    }

    fn remove_flows(&mut self, keys: &[FlowKey]) -> Result<usize, BpfError> {
        self.flows.remove(keys)
    }

    fn read_unknown(&self) -> Result<Vec<UnknownAddress>, BpfError> {
        self.unknown.read_all()
    }

    fn clear_unknown(&mut self) -> Result<(), BpfError> {
        self.unknown.clear()
    }

    fn set_settings(&mut self, s: &DataplaneSettings) -> Result<(), BpfError> {
        self.settings.set(s)
    }
}
