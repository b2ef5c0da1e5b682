//! Properties: the parsers never panic on any input, and write → parse round-trips.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{Ipv4Net, Ipv6Net};
use lqos_config::{
    Circuit, CircuitId, Device, Network, NetworkNode, RateKbit, SqmKind, SqmOverride,
    network_to_string, parse_config_str, parse_network_str, parse_shaped_devices_str,
    shaped_devices_to_string,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Invariant: no input string makes a parser panic.
    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = parse_config_str(&s, Path::new("x"));
        let _ = parse_network_str(&s, "x");
        let _ = parse_shaped_devices_str(&s, "x");
        let _ = lqos_config::parse_sqm_tokens(&s);
    }

    // Invariant: near-valid inputs (mutated structure) never panic either.
    #[test]
    fn parsers_never_panic_on_structured_noise(
        parts in prop::collection::vec(prop::sample::select(vec![
            "{", "}", "[", "]", ",", ":", "\"a\"", "\"children\"", "1e999", "-0", "null",
            "\n", "\"downloadBandwidthMbps\"", "\\u", "#", "\"", "Circuit ID", "10.0.0.1/33",
            "[bridge]", "=", "1.5", "\u{feff}", "\r\n",
        ]), 0..60)
    ) {
        let s: String = parts.concat();
        let _ = parse_config_str(&s, Path::new("x"));
        let _ = parse_network_str(&s, "x");
        let _ = parse_shaped_devices_str(&s, "x");
    }
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_ .é\"\\\\,-]{0,8}[A-Za-z0-9]"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn rate() -> impl Strategy<Value = RateKbit> {
    (10u64..50_000_000).prop_map(RateKbit)
}

fn opt_rate() -> impl Strategy<Value = Option<RateKbit>> {
    prop::option::of(rate())
}

/// A tree shape: each node's children, generated recursively.
#[derive(Debug, Clone)]
struct Shape(Vec<Shape>);

fn shape() -> impl Strategy<Value = Vec<Shape>> {
    let leaf = Just(Shape(vec![]));
    let tree =
        leaf.prop_recursive(4, 24, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Shape));
    prop::collection::vec(tree, 0..4)
}

#[derive(Debug, Clone)]
struct NodeData {
    id: Option<String>,
    display: Option<String>,
    ty: Option<String>,
    is_virtual: bool,
    rates: [Option<RateKbit>; 4],
    extra: Option<(String, i64)>,
}

fn node_data() -> impl Strategy<Value = NodeData> {
    (
        prop::option::of("[a-z]{1,6}"),
        prop::option::of(name()),
        prop::option::of(prop::sample::select(vec!["site", "ap", "virtual"])),
        any::<bool>(),
        [opt_rate(), opt_rate(), opt_rate(), opt_rate()],
        prop::option::of(("x[a-z]{0,5}", any::<i64>())),
    )
        .prop_map(|(id, display, ty, v, rates, extra)| NodeData {
            id,
            display,
            ty: ty.map(str::to_string),
            is_virtual: v,
            rates,
            extra,
        })
}

fn build(net: &mut Network, shapes: &[Shape], parent: Option<usize>, data: &[NodeData]) {
    for s in shapes {
        let i = net.nodes.len();
        let d = &data[i % data.len()];
        let mut extra = serde_json::Map::new();
        if let Some((k, v)) = &d.extra {
            extra.insert(k.clone(), serde_json::json!({"nested": {"v": v}, "list": [v, "s"]}));
        }
        let type_virtual = d.ty.as_deref() == Some("virtual");
        net.nodes.push(NetworkNode {
            name: format!("n{i}"),
            id: d.id.as_ref().map(|id| format!("{id}{i}")),
            display_name: d.display.as_ref().map(|n| format!("{n}{i}")),
            node_type: d.ty.clone(),
            is_virtual: d.is_virtual || type_virtual,
            download: d.rates[0],
            upload: d.rates[1],
            // keep min <= max so the network stays valid
            download_min: d.rates[2].filter(|m| d.rates[0].is_some_and(|x| *m <= x)),
            upload_min: d.rates[3].filter(|m| d.rates[1].is_some_and(|x| *m <= x)),
            parent,
            children: vec![],
            line: 0,
            extra,
        });
        match parent {
            Some(p) => net.nodes[p].children.push(i),
            None => net.roots.push(i),
        }
        build(net, &s.0, Some(i), data);
    }
}

fn network() -> impl Strategy<Value = Network> {
    (shape(), prop::collection::vec(node_data(), 1..8)).prop_map(|(shapes, data)| {
        let mut net = Network::default();
        build(&mut net, &shapes, None, &data);
        net
    })
}

fn zero_lines(net: &mut Network) {
    for n in &mut net.nodes {
        n.line = 0;
    }
}

fn sqm_kind() -> impl Strategy<Value = Option<SqmKind>> {
    prop::option::of(prop::sample::select(vec![SqmKind::Cake, SqmKind::FqCodel, SqmKind::None]))
}

fn v4() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())
}

fn v6() -> impl Strategy<Value = Ipv6Net> {
    // Includes /32 delegations, which the original wrote back as bare addresses.
    (any::<u128>(), prop::sample::select(vec![32u8, 48, 56, 64, 127, 128]))
        .prop_map(|(a, p)| Ipv6Net::new(Ipv6Addr::from(a), p).unwrap().trunc())
}

fn device() -> impl Strategy<Value = Device> {
    (
        name(),
        name(),
        prop::option::of(name()),
        prop::collection::vec(v4(), 0..3),
        prop::collection::vec(v6(), 0..3),
    )
        .prop_map(|(id, n, comment, ipv4, ipv6)| Device {
            id,
            name: n,
            mac: String::new(),
            ipv4,
            ipv6,
            comment: comment.unwrap_or_default(),
            line: 0,
        })
}

fn circuits() -> impl Strategy<Value = Vec<Circuit>> {
    prop::collection::vec(
        (
            name(),
            prop::option::of(name()),
            prop::option::of(name()),
            [rate(), rate()],
            [rate(), rate()],
            sqm_kind(),
            sqm_kind(),
            prop::collection::vec(device(), 1..3),
        ),
        0..6,
    )
    .prop_map(|cs| {
        cs.into_iter()
            .enumerate()
            .map(|(i, (n, parent, pid, a, b, down, up, devices))| Circuit {
                // '#'-free, unique ids; parents never the literal "none"
                id: CircuitId(format!("c{i}-{n}")),
                name: n,
                parent_node: parent.filter(|p| !p.eq_ignore_ascii_case("none")),
                parent_node_id: pid,
                anchor_node_id: None,
                download_min: a[0].min(a[1]),
                download_max: a[0].max(a[1]),
                upload_min: b[0].min(b[1]),
                upload_max: b[0].max(b[1]),
                sqm: (down.is_some() || up.is_some()).then_some(SqmOverride::kinds(down, up)),
                devices,
                line: 0,
            })
            .collect()
    })
}

fn zero_csv_lines(cs: &mut [Circuit]) {
    for c in cs {
        c.line = 0;
        for d in &mut c.devices {
            d.line = 0;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Invariant: network_to_string → parse_network_str gives the same network, no errors
    // (depth and promotion warnings aside, which the generator may trigger).
    #[test]
    fn network_round_trips(net in network()) {
        let text = network_to_string(&net);
        let (mut back, d) = parse_network_str(&text, "network.json");
        let blocking: Vec<_> = d.iter().filter(|d| d.is_error() && !d.message.contains("site level")).collect();
        prop_assert!(blocking.is_empty(), "{blocking:#?}\n{text}");
        zero_lines(&mut back);
        prop_assert_eq!(&back, &net, "{}", text);
        prop_assert_eq!(network_to_string(&back), text);
    }

    // Invariant: shaped_devices_to_string → parse gives the same circuits (IPv6 /32 included).
    #[test]
    fn shaped_devices_round_trip(cs in circuits()) {
        let text = shaped_devices_to_string(&cs);
        let (mut back, d) = parse_shaped_devices_str(&text, "ShapedDevices.csv");
        prop_assert!(d.is_empty(), "{d:#?}\n{text}");
        zero_csv_lines(&mut back);
        prop_assert_eq!(&back, &cs, "{}", text);
    }
}
