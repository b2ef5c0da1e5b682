//! The one table of every lqos.conf key lqos knows: each LibreQoS 1.5 key (and lqos's own
//! extensions) with what lqos does with it. After parsing, `audit` walks the file against
//! this table and reports, once each and with its line:
//! * a key marked [`KeyStatus::NoEffect`]: warning "accepted, has no effect in lqos";
//! * a section marked [`KeyStatus::SectionNoEffect`] (`[long_term_stats]`, `[influxdb]`, …):
//!   one warning for the section, whatever it holds;
//! * a key the table does not list: warning "unknown key, ignored".
//!
//! Keys marked [`KeyStatus::Honoured`] change lqos's behaviour. To wire a key, flip its
//! status here (the `docs/config-keys.md` list is checked against this table by a test).

use toml_edit::{Item, TableLike};

use crate::diag::Diagnostic;
use crate::pos::LineIndex;

/// What lqos does with one key or section of lqos.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Read and acted upon. A table with this status is a section whose keys are listed
    /// one by one.
    Honoured,
    /// Parsed (and type-checked when lqos stores it) but does nothing in lqos; warned once.
    NoEffect,
    /// A whole LibreQoS section lqos does not implement; one warning for the section.
    SectionNoEffect,
}

/// Every known key, by dotted path. Order = the order of `docs/config-keys.md`.
pub const KEYS: &[(&str, KeyStatus)] = {
    use KeyStatus::{Honoured as H, NoEffect as N, SectionNoEffect as S};
    &[
        // top level
        ("version", H),
        ("lqos_directory", H),
        ("state_directory", H),
        ("node_id", H),
        ("node_name", H),
        ("queue_check_period_ms", H),
        ("disable_webserver", H),
        ("webserver_listen", H),
        ("exclude_efficiency_cores", H),
        ("packet_capture_time", N),
        ("qoo_profile_id", N),
        ("display_cobrand", N),
        ("disable_icmp_ping", N),
        ("enable_circuit_heatmaps", N),
        ("enable_site_heatmaps", N),
        ("enable_asn_heatmaps", N),
        ("rtt_thresholds", S),
        // [tuning]
        ("tuning", H),
        ("tuning.set_cpu_governor_performance", H),
        ("tuning.stop_irq_balance", H),
        ("tuning.netdev_budget_usecs", H),
        ("tuning.netdev_budget_packets", H),
        ("tuning.rx_usecs", H),
        ("tuning.tx_usecs", H),
        ("tuning.disable_rxvlan", H),
        ("tuning.disable_txvlan", H),
        ("tuning.disable_offload", H),
        // [bridge] / [single_interface]
        ("bridge", H),
        ("bridge.use_xdp_bridge", H),
        ("bridge.to_internet", H),
        ("bridge.to_network", H),
        ("bridge.mtu", N),
        ("single_interface", H),
        ("single_interface.interface", H),
        ("single_interface.internet_vlan", H),
        ("single_interface.network_vlan", H),
        ("single_interface.mtu", N),
        // [queues]
        ("queues", H),
        ("queues.default_sqm", H),
        ("queues.queue_mode", H),
        ("queues.monitor_only", H),
        ("queues.uplink_bandwidth_mbps", H),
        ("queues.downlink_bandwidth_mbps", H),
        ("queues.generated_pn_download_mbps", H),
        ("queues.generated_pn_upload_mbps", H),
        ("queues.dry_run", H),
        ("queues.override_available_queues", H),
        ("queues.use_binpacking", H),
        ("queues.fast_queues_fq_codel", H),
        ("queues.max_quarantine_ratio", H), // lqos extension (branch "plan")
        ("queues.sudo", N),
        ("queues.lazy_queues", N),
        ("queues.lazy_expire_seconds", N),
        ("queues.lazy_threshold_bytes", N),
        // [ip_ranges]
        ("ip_ranges", H),
        ("ip_ranges.ignore_subnets", H),
        ("ip_ranges.allow_subnets", H),
        ("ip_ranges.unknown_ip_honors_ignore", N),
        ("ip_ranges.unknown_ip_honors_allow", N),
        // [flows]
        ("flows", H),
        ("flows.flow_timeout_seconds", N),
        ("flows.netflow_enabled", N),
        ("flows.netflow_port", N),
        ("flows.netflow_ip", N),
        ("flows.netflow_version", N),
        ("flows.do_not_track_subnets", N),
        // [integration_common]
        ("integration_common", H),
        ("integration_common.queue_refresh_interval_mins", H),
        ("integration_common.promote_to_root", H),
        ("integration_common.client_bandwidth_multiplier", H),
        ("integration_common.max_shrink_ratio", H),
        ("integration_common.circuit_name_as_address", H),
        ("integration_common.use_mikrotik_ipv6", H),
        ("integration_common.ethernet_port_limits_enabled", H),
        ("integration_common.ethernet_port_limit_multiplier", H),
        ("integration_common.topology_attachment_health", S),
        // [topology]
        ("topology", H),
        ("topology.compile_mode", H),
        ("topology.queue_auto_virtualize_threshold_mbps", N),
        // [mikrotik_ipv6]
        ("mikrotik_ipv6", H),
        ("mikrotik_ipv6.config_path", H),
        // [uisp_integration]
        ("uisp_integration", H),
        ("uisp_integration.enable_uisp", H),
        ("uisp_integration.token", H),
        ("uisp_integration.url", H),
        ("uisp_integration.site", H),
        ("uisp_integration.strategy", H),
        ("uisp_integration.suspended_strategy", H),
        ("uisp_integration.airmax_capacity", H),
        ("uisp_integration.ltu_capacity", H),
        ("uisp_integration.exclude_sites", H),
        ("uisp_integration.bandwidth_overhead_factor", H),
        ("uisp_integration.commit_bandwidth_multiplier", H),
        ("uisp_integration.exception_cpes", H),
        ("uisp_integration.insecure_ssl", H),
        ("uisp_integration.ipv6_with_mikrotik", H),
        ("uisp_integration.airmax_flexible_frame_download_ratio", H),
        ("uisp_integration.ignore_calculated_capacity", H),
        ("uisp_integration.infrastructure_transport_caps_enabled", H),
        ("uisp_integration.squash_sites", H),
        ("uisp_integration.do_not_squash_sites", H),
        ("uisp_integration.enable_squashing", N),
        ("uisp_integration.use_ptmp_as_parent", H),
        // [splynx_integration] (also read as [spylnx_integration])
        ("splynx_integration", H),
        ("splynx_integration.enable_splynx", H),
        ("splynx_integration.enable_spylnx", H),
        ("splynx_integration.api_key", H),
        ("splynx_integration.api_secret", H),
        ("splynx_integration.url", H),
        ("splynx_integration.strategy", H),
        // [netzur_integration]
        ("netzur_integration", H),
        ("netzur_integration.enable_netzur", H),
        ("netzur_integration.api_key", H),
        ("netzur_integration.api_url", H),
        ("netzur_integration.timeout_secs", H),
        // [metrics] (lqos extension)
        ("metrics", H),
        ("metrics.enabled", H),
        ("metrics.token", H),
        ("metrics.public", H),
        // [web] (lqos extension: lqos_web's HTTPS, proxies and DNS-rebinding guard)
        ("web", H),
        ("web.tls", H),
        ("web.tls_cert", H),
        ("web.tls_key", H),
        ("web.trusted_proxies", H),
        ("web.allowed_hosts", H),
        // [history] (lqos extension)
        ("history", H),
        ("history.enabled", H),
        ("history.max_disk_mb", H),
        // LibreQoS sections lqos does not implement
        ("long_term_stats", S),
        ("local_api", S),
        ("ssl", S),
        ("treeguard", S),
        ("stormguard", S),
        ("dynamic_circuits", S),
        ("radius_accounting", S),
        ("influxdb", S),
        ("visp_integration", S),
        ("wispgate_integration", S),
        ("powercode_integration", S),
        ("sonar_integration", S),
    ]
};

/// The status of a dotted key path, `None` when lqos does not know it.
pub fn status(path: &str) -> Option<KeyStatus> {
    KEYS.iter().find(|(k, _)| *k == path).map(|&(_, s)| s)
}

/// The message of a [`KeyStatus::NoEffect`] warning.
pub const NO_EFFECT: &str = "accepted, has no effect in lqos";
/// The message of a [`KeyStatus::SectionNoEffect`] warning.
pub const SECTION_NO_EFFECT: &str = "section accepted, has no effect in lqos (not implemented)";

fn line_of(idx: &LineIndex, t: &dyn TableLike, key: &str, item: &Item) -> Option<usize> {
    let span = t.key(key).and_then(|k| k.span()).or_else(|| item.span());
    span.map(|s| idx.line(s.start))
}

/// Walks the document against [`KEYS`] and returns one warning per key or section that has
/// no effect and per unknown key, in file order of the walk.
pub(crate) fn audit(label: &str, idx: &LineIndex, top: &dyn TableLike) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    walk(label, idx, top, "", "", &mut out);
    out
}

/// `prefix` is the dotted path used for the table lookup, `shown` the path as written.
fn walk(
    label: &str,
    idx: &LineIndex,
    t: &dyn TableLike,
    prefix: &str,
    shown_prefix: &str,
    out: &mut Vec<Diagnostic>,
) {
    for (k, item) in t.iter() {
        if item.is_none() {
            continue;
        }
        // The misspelt Splynx section reads as the real one.
        let section =
            if prefix.is_empty() && k == "spylnx_integration" { "splynx_integration" } else { k };
        let path = format!("{prefix}{section}");
        let shown = format!("{shown_prefix}{k}");
        let line = line_of(idx, t, k, item);
        let at = |d: Diagnostic| match line {
            Some(l) => d.at_line(l),
            None => d,
        };
        match status(&path) {
            Some(KeyStatus::Honoured) => {
                if let Some(sub) = item.as_table_like()
                    && KEYS.iter().any(|(p, _)| p.starts_with(&format!("{path}.")))
                {
                    walk(label, idx, sub, &format!("{path}."), &format!("{shown}."), out);
                }
            }
            Some(KeyStatus::NoEffect) => {
                out.push(at(Diagnostic::warning(label, NO_EFFECT).field(shown)));
            }
            Some(KeyStatus::SectionNoEffect) => {
                out.push(at(Diagnostic::warning(label, SECTION_NO_EFFECT).field(shown)));
            }
            None => out.push(
                at(Diagnostic::warning(label, format!("unknown key '{shown}', ignored"))
                    .field(shown.clone()))
                .hint("check the spelling against packaging/lqos.example.conf"),
            ),
        }
    }
}

/// The list written to `docs/config-keys.md`: one line per key, `honoured` or `warned`.
pub fn markdown_table() -> String {
    let mut s = String::from("| key | status |\n|---|---|\n");
    for (k, st) in KEYS {
        let what = match st {
            KeyStatus::Honoured => "honoured",
            KeyStatus::NoEffect => "warned: accepted, has no effect in lqos",
            KeyStatus::SectionNoEffect => "warned once for the whole section: not implemented",
        };
        s.push_str(&format!("| `{k}` | {what} |\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_doc_matches_the_table() {
        let doc = include_str!("../docs/config-keys.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/config-keys.md is out of date; paste keys::markdown_table() into it:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn every_path_is_listed_once() {
        for (i, (k, _)) in KEYS.iter().enumerate() {
            assert!(KEYS[i + 1..].iter().all(|(o, _)| o != k), "{k} twice");
        }
    }
}
