use std::path::Path;

use lqos_config::{
    InterfaceMode, LazyQueues, LeafQdisc, QueueMode, TopologyStrategy, parse_config_str,
};

use crate::only_error;

const MINIMAL: &str = "version = \"1.5\"\nlqos_directory = \"/opt/libreqos/src\"\nnode_id = \"x\"\n\
                       [bridge]\nto_internet = \"eth1\"\nto_network = \"eth2\"\n";

fn parse(text: &str) -> (Option<lqos_config::Config>, Vec<lqos_config::Diagnostic>) {
    parse_config_str(text, Path::new("lqos.conf"))
}

#[test]
fn example_conf_parses_with_zero_diagnostics() {
    let text = include_str!("../../../../packaging/lqos.example.conf");
    let (c, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    let c = c.unwrap();
    assert_eq!(c.queues.downlink.0, 1_000_000);
    assert_eq!(c.state_directory, Path::new("/opt/libreqos/state"));
    assert!(matches!(c.interfaces, Some(InterfaceMode::Bridge { .. })));
    assert!(matches!(c.queues.default_sqm.leaf, Some(LeafQdisc::Cake(_))));
    assert_eq!(c.integration_common.max_shrink_ratio, 0.5);
    assert!(c.uisp.is_some() && c.splynx.is_some() && c.netzur.is_some());
}

#[test]
fn missing_sections_take_documented_defaults() {
    let (c, d) = parse(MINIMAL);
    assert!(d.is_empty(), "{d:#?}");
    let c = c.unwrap();
    assert_eq!(c.queues.default_sqm.tokens, lqos_config::conf::DEFAULT_SQM);
    assert_eq!(c.queues.fast_queues_fq_codel_mbps, 1000.0);
    assert_eq!(c.queues.lazy_queues, LazyQueues::No);
    assert_eq!(c.integration_common.queue_refresh_interval_mins, 30);
    assert_eq!(c.ip_ranges.allow_subnets.len(), 4);
    assert_eq!(c.tuning.netdev_budget_usecs, 8000);
    assert_eq!(c.state_directory, Path::new("/opt/libreqos/state"));
    assert!(c.uisp.is_none() && c.flows.is_none());
}

#[test]
fn both_interface_sections_is_an_error_at_the_second() {
    let text = format!(
        "{MINIMAL}[single_interface]\ninterface = \"eth1\"\ninternet_vlan = 2\nnetwork_vlan = 3\n"
    );
    let (_, d) = parse(&text);
    let e = only_error(&d);
    assert_eq!(e.line, Some(7));
    assert!(e.message.contains("both [bridge] and [single_interface]"));
}

#[test]
fn neither_interface_section_warns_and_leaves_interfaces_none() {
    let text = "version = \"1.5\"\nlqos_directory = \"/srv/lqos\"\n";
    let (c, d) = parse(text);
    let c = c.unwrap();
    assert!(c.interfaces.is_none());
    assert_eq!(c.state_directory, Path::new("/srv/lqos/state"));
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
    assert!(d[0].message.contains("neither [bridge] nor [single_interface]"));
}

#[test]
fn single_interface_parses_vlans() {
    let text = "version = \"1.5\"\nlqos_directory = \"/x\"\n[single_interface]\ninterface = \"eth1\"\ninternet_vlan = 2\nnetwork_vlan = 3\nmtu = 1500\n";
    let (c, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    let Some(InterfaceMode::Stick { internet_vlan, network_vlan, mtu, .. }) = c.unwrap().interfaces
    else {
        panic!("not stick")
    };
    assert_eq!((internet_vlan, network_vlan, mtu), (2, 3, Some(1500)));
}

#[test]
fn bare_ip_in_ip_ranges_is_an_error_with_line_not_a_panic() {
    let text = format!(
        "{MINIMAL}[ip_ranges]\nallow_subnets = [\"10.0.0.0/8\",\n  \"192.168.1.1\"]\nignore_subnets = []\n"
    );
    let (_, d) = parse(&text);
    let e = only_error(&d);
    assert_eq!(e.line, Some(9));
    assert_eq!(e.field.as_deref(), Some("ip_ranges.allow_subnets"));
    assert!(e.hint.as_deref().unwrap().contains("192.168.1.1/32"));
}

#[test]
fn unknown_key_and_section_warn_with_line() {
    let text = format!(
        "{MINIMAL}[queues]\ndefault_sqm = \"fq_codel\"\ndownlnk_bandwidth_mbps = 5\n[frobnicate]\nx = 1\n[stormguard]\nenabled = false\n"
    );
    let (c, d) = parse(&text);
    assert!(c.is_some());
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().all(|d| !d.is_error()));
    assert_eq!(d[0].line, Some(9));
    assert_eq!(d[0].field.as_deref(), Some("queues.downlnk_bandwidth_mbps"));
    assert_eq!(d[1].line, Some(10));
    assert_eq!(d[1].field.as_deref(), Some("frobnicate"));
}

#[test]
fn splynx_aliases_are_accepted() {
    let text = format!(
        "{MINIMAL}[spylnx_integration]\nenable_spylnx = true\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"https://s\"\n"
    );
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    let s = c.unwrap().splynx.unwrap();
    assert!(s.enabled);
    assert_eq!(s.strategy, TopologyStrategy::ApSite);
}

#[test]
fn queue_mode_wins_over_monitor_only() {
    let (c, _) = parse(&format!("{MINIMAL}[queues]\nmonitor_only = true\n"));
    assert_eq!(c.unwrap().queues.queue_mode, QueueMode::Observe);
    let (c, _) =
        parse(&format!("{MINIMAL}[queues]\nmonitor_only = true\nqueue_mode = \"shape\"\n"));
    assert_eq!(c.unwrap().queues.queue_mode, QueueMode::Shape);
}

#[test]
fn queue_options_are_read() {
    let text = format!(
        "{MINIMAL}[queues]\ndefault_sqm = \"none\"\noverride_available_queues = 0\nlazy_queues = \"Htb\"\nfast_queues_fq_codel = 500.5\nuse_binpacking = true\n"
    );
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    let q = c.unwrap().queues;
    assert_eq!(q.default_sqm.leaf, None);
    assert_eq!(q.override_available_queues, None);
    assert_eq!(q.lazy_queues, LazyQueues::Htb);
    assert_eq!(q.fast_queues_fq_codel_mbps, 500.5);
    assert!(q.use_binpacking);
}

#[test]
fn bad_default_sqm_is_an_error_on_its_line() {
    let (_, d) = parse(&format!("{MINIMAL}[queues]\ndefault_sqm = \"\"\n"));
    let e = only_error(&d);
    assert_eq!(e.line, Some(8));
    assert!(e.message.contains("cannot be empty"));
}

#[test]
fn wrong_version_and_wrong_type_are_errors() {
    let (_, d) = parse(&MINIMAL.replace("1.5", "1.4"));
    assert_eq!(only_error(&d).line, Some(1));
    let (_, d) = parse(&format!("{MINIMAL}[queues]\ndownlink_bandwidth_mbps = \"fast\"\n"));
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(8), Some("queues.downlink_bandwidth_mbps")));
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let (c, d) = parse("version = \"1.5\"\n[queues\n");
    assert!(c.is_none());
    let e = only_error(&d);
    assert_eq!(e.line, Some(2));
    assert!(e.column.is_some());
}

#[test]
fn mtu_range_and_compile_mode_are_checked() {
    let (_, d) = parse(&format!("{MINIMAL}mtu = 100\n"));
    assert_eq!(only_error(&d).field.as_deref(), Some("bridge.mtu"));
    let (c, d) = parse(&format!("{MINIMAL}[topology]\ncompile_mode = \"FULL2\"\n"));
    assert!(d.is_empty());
    assert_eq!(c.unwrap().topology.compile_mode, Some(TopologyStrategy::Full));
    let (_, d) = parse(&format!("{MINIMAL}[topology]\ncompile_mode = \"tree\"\n"));
    assert_eq!(only_error(&d).line, Some(8));
}

#[test]
fn enabled_integration_without_credentials_is_an_error() {
    let (_, d) =
        parse(&format!("{MINIMAL}[uisp_integration]\nenable_uisp = true\nurl = \"https://u\"\n"));
    assert_eq!(only_error(&d).field.as_deref(), Some("uisp_integration.token"));
}

/// One bad value per rule: (text appended to MINIMAL, expected line, expected field).
#[test]
fn each_rule_reports_its_line_and_field() {
    let cases: &[(&str, usize, &str)] = &[
        // C5: a bridge needs two different interfaces
        ("", 6, "bridge.to_network"),
        // C9: queue_mode / lazy_queues values
        ("[queues]\nqueue_mode = \"shaping\"\n", 8, "queues.queue_mode"),
        ("[queues]\nlazy_queues = \"sometimes\"\n", 8, "queues.lazy_queues"),
        // C10: bandwidth below 0.01 Mbps
        ("[queues]\nuplink_bandwidth_mbps = 0\n", 8, "queues.uplink_bandwidth_mbps"),
        // C15: lqos extension range
        (
            "[integration_common]\nmax_shrink_ratio = 2.0\n",
            8,
            "integration_common.max_shrink_ratio",
        ),
        (
            "[integration_common]\nqueue_refresh_interval_mins = 0\n",
            8,
            "integration_common.queue_refresh_interval_mins",
        ),
    ];
    for (i, (extra, line, field)) in cases.iter().enumerate() {
        let base = if i == 0 { MINIMAL.replace("eth2", "eth1") } else { MINIMAL.to_string() };
        let (_, d) = parse(&format!("{base}{extra}"));
        let e = only_error(&d);
        assert_eq!((e.line, e.field.as_deref()), (Some(*line), Some(*field)), "case {i}: {e}");
    }
    // C14: empty state_directory
    let (_, d) = parse(&format!("state_directory = \"\"\n{MINIMAL}"));
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("state_directory")));
}

#[test]
fn both_splynx_spellings_warn_and_the_correct_one_wins() {
    let text = format!(
        "{MINIMAL}[splynx_integration]\nenable_splynx = false\n[spylnx_integration]\nenable_spylnx = true\n"
    );
    let (c, d) = parse(&text);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].is_error()), (Some(9), false));
    assert!(!c.unwrap().splynx.unwrap().enabled);
}

#[test]
fn metrics_section_defaults_when_missing() {
    let (c, d) = parse(MINIMAL);
    assert!(d.is_empty(), "{d:#?}");
    let m = c.unwrap().metrics;
    assert_eq!(m, lqos_config::MetricsConfig::default());
    assert_eq!(m.enabled, lqos_config::conf::DEFAULT_METRICS_ENABLED);
    assert!(m.enabled && m.token.is_none());
}

#[test]
fn metrics_section_is_read() {
    let text = format!("{MINIMAL}[metrics]\nenabled = false\ntoken = \"s3cret-T0ken\"\n");
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    let m = c.unwrap().metrics;
    assert!(!m.enabled);
    assert_eq!(m.token.as_deref(), Some("s3cret-T0ken"));
}

#[test]
fn metrics_unknown_key_warns_and_bad_values_are_errors_with_line() {
    let text = format!("{MINIMAL}[metrics]\nenabled = true\ntokn = \"x\"\n");
    let (c, d) = parse(&text);
    assert!(c.unwrap().metrics.token.is_none());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(!d[0].is_error());
    assert_eq!(d[0].line, Some(9));
    assert_eq!(d[0].field.as_deref(), Some("metrics.tokn"));
    assert!(d[0].message.contains("unknown key 'metrics.tokn'"));

    let text = format!("{MINIMAL}[metrics]\nenabled = \"yes\"\ntoken = \"\"\n");
    let (_, d) = parse(&text);
    let errs = crate::errors(&d);
    assert_eq!(errs.len(), 2, "{d:#?}");
    assert_eq!((errs[0].line, errs[0].field.as_deref()), (Some(8), Some("metrics.enabled")));
    assert_eq!((errs[1].line, errs[1].field.as_deref()), (Some(9), Some("metrics.token")));
    assert!(errs[1].message.contains("must not be empty"));

    let (_, d) = parse(&format!("{MINIMAL}[metrics]\ntoken = \"two words\"\n"));
    assert!(only_error(&d).message.contains("printable ASCII"));
}

#[test]
fn uisp_libreqos_keys_parse_with_libreqos_defaults() {
    let (c, d) = parse(&format!("{MINIMAL}[uisp_integration]\nenable_uisp = false\n"));
    assert!(d.is_empty(), "{d:#?}");
    let c = c.unwrap();
    let u = c.uisp.unwrap();
    assert_eq!(u.airmax_flexible_frame_download_ratio, 0.8);
    assert!(u.infrastructure_transport_caps_enabled);
    assert!(!u.ignore_calculated_capacity && !u.use_ptmp_as_parent && !u.enable_squashing);
    assert!(c.integration_common.ethernet_port_limits_enabled);
    assert_eq!(c.integration_common.ethernet_port_limit_multiplier, 0.94);

    let text = format!(
        "{MINIMAL}[integration_common]\nethernet_port_limits_enabled = false\nethernet_port_limit_multiplier = 0.9\n\
         [uisp_integration]\nenable_uisp = false\nairmax_flexible_frame_download_ratio = 0.7\n\
         ignore_calculated_capacity = true\ninfrastructure_transport_caps_enabled = false\n\
         use_ptmp_as_parent = true\nsquash_sites = [\"A\"]\ndo_not_squash_sites = [\"B\"]\n\
         enable_squashing = true\nexception_cpes = [\"CPE 1:AP 1\", {{ cpe = \"CPE 2\", parent = \"AP 2\" }}]\n"
    );
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    let c = c.unwrap();
    let u = c.uisp.unwrap();
    assert_eq!(u.airmax_flexible_frame_download_ratio, 0.7);
    assert!(u.ignore_calculated_capacity && u.use_ptmp_as_parent && u.enable_squashing);
    assert!(!u.infrastructure_transport_caps_enabled);
    assert_eq!(
        (u.squash_sites, u.do_not_squash_sites),
        (vec!["A".to_string()], vec!["B".to_string()])
    );
    let cpes: Vec<(&str, &str)> =
        u.exception_cpes.iter().map(|e| (e.cpe.as_str(), e.parent.as_str())).collect();
    assert_eq!(cpes, [("CPE 1", "AP 1"), ("CPE 2", "AP 2")]);
    assert!(!c.integration_common.ethernet_port_limits_enabled);
    assert_eq!(c.integration_common.ethernet_port_limit_multiplier, 0.9);
}
