//! Fuzzing on stable Rust (issue 13, item 6): proptest generators shaped like the real files
//! (known keys and columns with hostile values, deep nesting, mutations) drive the parsers
//! and the validator. Each property asserts no panic and bounded output (what is kept grows
//! at most linearly with the input, so memory does too).
//!
//! The normal suite runs a short budget (64 cases each). The long run:
//! `PROPTEST_CASES=100000 cargo test --release -p lqos-config --test it fuzz_`.

use std::path::Path;

use lqos_config::{
    CSV_HEADER, parse_config_str, parse_network_str, parse_shaped_devices_str, validate_inputs,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// 64 cases unless `PROPTEST_CASES` asks for more.
fn budget() -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 64;
    }
    c.failure_persistence = None;
    c
}

/// Hostile scalar text: numbers at the edges, separators, quotes, control characters.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("1e999".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("0.0000001".to_owned()),
        Just("#comment".to_owned()),
        Just("\"".to_owned()),
        Just("a,b".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\r\n".to_owned()),
        Just("0.0.0.0/0".to_owned()),
        Just("::/0".to_owned()),
        Just("10.0.0.1/33".to_owned()),
        Just("2001:db8::/129".to_owned()),
        Just("cake".to_owned()),
        Just("fq_codel/cake".to_owned()),
        Just("cake rtt 0ms overhead 99999999999".to_owned()),
        "[0-9]{1,6}(\\.[0-9]{1,4})?",
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "2001:db8:[0-9a-f]{1,4}::[0-9a-f]{0,4}(/[0-9]{1,3})?",
        "\\PC{0,12}",
    ]
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A ShapedDevices.csv: the real header (sometimes shuffled, with unknown or duplicate
/// columns), rows of hostile cells, comment lines, ragged rows, lists of many addresses.
fn shaped_devices() -> impl Strategy<Value = (String, usize)> {
    let header = prop_oneof![
        3 => Just(CSV_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        1 => Just(CSV_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>()).prop_shuffle(),
        1 => prop::collection::vec(
            prop_oneof![
                prop::sample::select(CSV_HEADER.to_vec()).prop_map(str::to_owned),
                "[A-Za-z ]{1,10}",
            ],
            0..20,
        ),
    ];
    let row = prop_oneof![
        8 => prop::collection::vec(cell(), 0..20).prop_map(|cells| {
            cells.iter().map(|c| csv_quote(c)).collect::<Vec<_>>().join(",")
        }),
        1 => "#[^\n]{0,30}",
        1 => prop::collection::vec("10\\.0\\.[0-9]{1,3}\\.[0-9]{1,3}", 0..200)
            .prop_map(|ips| format!("c1,n,d,dn,,,,,\"{}\",,1,1,10,10,,", ips.join(", "))),
    ];
    (header, prop::collection::vec(row, 0..40)).prop_map(|(h, rows)| {
        let n = rows.len();
        let mut text = h.iter().map(|c| csv_quote(c)).collect::<Vec<_>>().join(",");
        for r in rows {
            text.push('\n');
            text.push_str(&r);
        }
        (text, n)
    })
}

/// A network.json object tree with the known keys, values of every JSON type.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        cell().prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("downloadBandwidthMbps".to_owned()),
        Just("uploadBandwidthMbps".to_owned()),
        Just("children".to_owned()),
        Just("type".to_owned()),
        Just("virtual".to_owned()),
        Just("id".to_owned()),
        Just("name".to_owned()),
        Just("parent_site".to_owned()),
        "[A-Za-z0-9 ]{1,6}",
    ];
    leaf.prop_recursive(8, 128, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Cuts `text` at a char boundary near `at` and splices `junk` in (a damaged file).
fn mutate(text: &str, at: usize, junk: &str) -> String {
    let mut i = at.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}{junk}{}", &text[..i], &text[i..])
}

/// An lqos.conf: known sections and keys with values of every TOML type.
fn conf_text() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "",
        "bridge",
        "single_interface",
        "queues",
        "integration_common",
        "uisp",
        "splynx",
        "netzur",
        "tuning",
        "metrics",
        "web",
        "ip_ranges",
        "flows",
        "unknown",
    ]);
    let key = prop::sample::select(vec![
        "version",
        "lqos_directory",
        "state_directory",
        "node_name",
        "to_internet",
        "to_network",
        "interface",
        "internet_vlan",
        "network_vlan",
        "default_sqm",
        "downlink_bandwidth_mbps",
        "uplink_bandwidth_mbps",
        "generated_pn_download_mbps",
        "monitor_only",
        "queue_refresh_interval_mins",
        "enable_uisp",
        "token",
        "url",
        "stop_irq_balance",
        "disable_offload",
        "netdev_budget_usecs",
        "enabled",
        "listen",
        "allow_subnets",
        "ignore_subnets",
        "queues_available_override",
        "use_binpacking",
        "webserver_listen",
        "disable_webserver",
        "weird key",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1e308".to_owned()),
        Just("inf".to_owned()),
        Just("nan".to_owned()),
        Just("-0.0".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        cell().prop_map(|s| format!("{s:?}")),
        Just("1979-05-27T07:32:00Z".to_owned()),
        prop::collection::vec(cell(), 0..5).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1, b = [1, \"x\"] }".to_owned()),
        Just("[[[[[[[[[[]]]]]]]]]]".to_owned()),
    ];
    prop::collection::vec((section, prop::collection::vec((key, value), 0..6)), 0..8).prop_map(
        |sections| {
            let mut t = String::new();
            for (s, kvs) in sections {
                if !s.is_empty() {
                    t.push_str(&format!("[{s}]\n"));
                }
                for (k, v) in kvs {
                    let k = if k.contains(' ') { format!("{k:?}") } else { k.to_owned() };
                    t.push_str(&format!("{k} = {v}\n"));
                }
            }
            t
        },
    )
}

proptest! {
    #![proptest_config(budget())]

    // Invariant: any CSV shaped like ShapedDevices.csv parses and validates without panic;
    // it never yields more circuits than rows, nor unbounded diagnostics.
    #[test]
    fn fuzz_shaped_devices_csv((text, rows) in shaped_devices(), at in 0usize..4096, junk in cell()) {
        for t in [text.clone(), mutate(&text, at, &junk)] {
            let (circuits, diags) = parse_shaped_devices_str(&t, "ShapedDevices.csv");
            let lines = t.lines().count() + 1;
            prop_assert!(circuits.len() <= rows.max(lines));
            prop_assert!(diags.len() <= 64 * lines, "{} diagnostics for {lines} lines", diags.len());
            let v = validate_inputs(&lqos_config::Network::default(), &circuits, "network.json", "ShapedDevices.csv");
            let devices: usize = circuits.iter().map(|c| c.devices.len()).sum::<usize>() + 1;
            let addresses: usize = circuits.iter().flat_map(|c| &c.devices).map(|d| d.ipv4.len() + d.ipv6.len()).sum::<usize>() + 1;
            prop_assert!(v.len() <= 16 * (devices + addresses), "{} diagnostics", v.len());
        }
    }

    // Invariant: any JSON document (object trees with network.json's keys, damaged or not)
    // parses without panic; nodes never outnumber the objects in the text.
    #[test]
    fn fuzz_network_json(v in json_value(), at in 0usize..4096, junk in cell()) {
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        for t in [text.clone(), mutate(&text, at, &junk)] {
            let (net, diags) = parse_network_str(&t, "network.json");
            let objects = t.matches('{').count();
            prop_assert!(net.nodes.len() <= objects, "{} nodes from {objects} objects", net.nodes.len());
            prop_assert!(diags.len() <= 16 * (t.len() + 1));
            let _ = validate_inputs(&net, &[], "network.json", "ShapedDevices.csv");
        }
    }

    // Invariant: any lqos.conf built from the known sections and keys with values of any
    // TOML type, damaged or not, parses to a config or diagnostics, never a panic.
    #[test]
    fn fuzz_lqos_conf(text in conf_text(), at in 0usize..4096, junk in cell()) {
        for t in [text.clone(), mutate(&text, at, &junk)] {
            let (config, diags) = parse_config_str(&t, Path::new("lqos.conf"));
            prop_assert!(config.is_some() || !diags.is_empty(), "refused without a reason: {t}");
        }
    }
}

/// Nesting far beyond any real file ends in one diagnostic, not a stack overflow.
#[test]
fn fuzz_deep_nesting_is_refused_not_a_crash() {
    for depth in [200usize, 10_000, 200_000] {
        let json = format!("{}{}", "{\"a\": ".repeat(depth), "}".repeat(depth));
        let (_, d) = parse_network_str(&json, "network.json");
        assert!(d.iter().any(|d| d.is_error()), "depth {depth}");
        let arr = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (_, d) = parse_network_str(&arr, "network.json");
        assert!(d.iter().any(|d| d.is_error()), "depth {depth}");
        let toml = format!("x = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let (c, d) = parse_config_str(&toml, Path::new("lqos.conf"));
        assert!(c.is_none() || !d.is_empty(), "depth {depth}");
        let table = format!("x = {}1{}\n", "{ a = ".repeat(depth), " }".repeat(depth));
        let (c, d) = parse_config_str(&table, Path::new("lqos.conf"));
        assert!(c.is_none() || !d.is_empty(), "depth {depth}");
    }
}
