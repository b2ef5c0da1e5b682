use lqos_config::parse_network_str;

use crate::only_error;

fn parse(text: &str) -> (lqos_config::Network, Vec<lqos_config::Diagnostic>) {
    parse_network_str(text, "network.json")
}

const SAMPLE: &str = r#"{
  "Site_1": {
    "id": "uisp:site:abc123",
    "type": "site",
    "downloadBandwidthMbps": 1000,
    "uploadBandwidthMbps": 1000,
    "latitude": 41.5,
    "uisp_site": {"id": "abc", "flags": [1, 2]},
    "children": {
      "AP_A": { "type": "ap", "downloadBandwidthMbps": 500, "uploadBandwidthMbps": 500 },
      "Town": { "virtual": true, "downloadBandwidthMbps": 500, "uploadBandwidthMbps": 0,
                "children": { "AP_9": { "downloadBandwidthMbps": 120.5, "uploadBandwidthMbps": 120 } } }
    }
  },
  "Site_2": {}
}"#;

#[test]
fn sample_parses_into_a_depth_first_arena() {
    let (n, d) = parse(SAMPLE);
    assert!(d.is_empty(), "{d:#?}");
    let names: Vec<_> = n.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["Site_1", "AP_A", "Town", "AP_9", "Site_2"]);
    assert_eq!(n.roots, [0, 4]);
    let s1 = &n.nodes[0];
    assert_eq!(s1.id.as_deref(), Some("uisp:site:abc123"));
    assert_eq!(s1.line, 2);
    assert_eq!(s1.children, [1, 2]);
    assert_eq!(s1.extra.len(), 2, "unknown object fields are kept, not taken as nodes");
    assert!(s1.extra.contains_key("uisp_site"));
    let town = &n.nodes[2];
    assert!(town.is_virtual);
    assert_eq!(town.upload, None, "0 inherits");
    assert_eq!(n.nodes[3].download.unwrap().0, 120_500);
    assert_eq!(n.nodes[3].parent, Some(2));
    assert_eq!(n.nodes[4].download, None);
    assert_eq!(n.path(3), "Site_1/Town/AP_9");
}

#[test]
fn empty_object_is_flat() {
    let (n, d) = parse(" {}\n");
    assert!(d.is_empty() && n.is_flat());
}

#[test]
fn duplicate_node_names_error_names_the_first_line() {
    let text = "{\n \"A\": {\"children\": {\n   \"B\": {}}},\n \"B\": {}\n}";
    let (_, d) = parse(text);
    let e = only_error(&d);
    assert_eq!((e.line, e.column), (Some(4), Some(2)));
    assert!(e.message.contains("first at line 3"), "{e}");
}

#[test]
fn bad_rates_report_line_and_column() {
    let text = "{\n  \"A\": {\n    \"downloadBandwidthMbps\": -5,\n    \"uploadBandwidthMbps\": \"fast\"\n  }\n}";
    let (_, d) = parse(text);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!((d[0].line, d[0].column), (Some(3), Some(30)));
    assert_eq!(d[0].field.as_deref(), Some("A.downloadBandwidthMbps"));
    assert_eq!((d[1].line, d[1].column), (Some(4), Some(28)));
    assert!(d[1].hint.as_deref().unwrap().contains("\"500\""));
}

#[test]
fn min_above_max_is_an_error() {
    let (_, d) = parse(r#"{"A": {"downloadBandwidthMbps": 10, "downloadBandwidthMbpsMin": 20}}"#);
    assert_eq!(only_error(&d).field.as_deref(), Some("A.downloadBandwidthMbpsMin"));
}

#[test]
fn syntax_errors_have_line_and_column() {
    let (n, d) = parse("{\n  \"A\": {},\n}\n");
    assert!(n.is_flat());
    let e = only_error(&d);
    assert_eq!((e.line, e.column), (Some(3), Some(1)));
    let (_, d) = parse("[1, 2]");
    assert!(only_error(&d).message.contains("must be an object"));
}

#[test]
fn non_object_node_and_bad_children_are_errors() {
    let (_, d) = parse(r#"{"A": 5, "B": {"children": []}, "C": {"virtual": "maybe"}}"#);
    let e = crate::errors(&d);
    assert_eq!(e.len(), 3, "{d:#?}");
    assert_eq!(e[1].field.as_deref(), Some("B.children"));
    assert_eq!(e[2].field.as_deref(), Some("C.virtual"));
}

fn chain(levels: usize, virtual_at: Option<usize>) -> String {
    let mut s = String::new();
    for i in 1..=levels {
        let v = if Some(i) == virtual_at { "\"virtual\": true, " } else { "" };
        s.push_str(&format!("{{\"L{i}\": {{{v}\"children\": "));
    }
    s.push_str("{}");
    for _ in 1..=levels {
        s.push_str("}}");
    }
    s
}

/// Issue 9: a tree deeper than HTB allows is flattened like LibreQoS's `flattenA`: the
/// deepest allowed level (6) keeps its place and everything below moves up beside it, under
/// the level-5 node, with a warning naming the moved nodes.
#[test]
fn tree_deeper_than_htb_allows_is_flattened_with_a_warning_naming_the_nodes() {
    let (_, d) = parse(&chain(6, None));
    assert!(d.is_empty(), "6 site levels fit: {d:#?}");
    let (n, d) = parse(&chain(8, None));
    assert!(!lqos_config::has_errors(&d), "{d:#?}");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].field.as_deref(), Some("L1/L2/L3/L4/L5"));
    assert!(d[0].message.contains("'L7', 'L8' moved up under 'L5'"), "{}", d[0]);
    assert_eq!(d[0].line, Some(1));
    let l5 = n.find_by_name("L5").unwrap();
    let kids: Vec<&str> = n.nodes[l5].children.iter().map(|&c| n.nodes[c].name.as_str()).collect();
    assert_eq!(kids, ["L6", "L7", "L8"]);
    assert!(n.nodes[n.find_by_name("L6").unwrap()].children.is_empty());
    assert_eq!(n.path(n.find_by_name("L8").unwrap()), "L1/L2/L3/L4/L5/L8");
    let (_, d) = parse(&chain(7, Some(3)));
    assert!(d.is_empty(), "a virtual level does not count: {d:#?}");
}

/// Rates, ids and `virtual` written the way LibreQoS's tools and spreadsheets write them.
#[test]
fn string_numbers_numeric_ids_and_virtual_spellings_are_accepted() {
    let text = r#"{
  "A": {"id": 17, "downloadBandwidthMbps": "1000", "uploadBandwidthMbps": " 250.5 ",
        "children": {
    "B": {"id": "b-1", "virtual": "true", "downloadBandwidthMbps": 100},
    "C": {"virtual": 1, "uploadBandwidthMbps": ""},
    "D": {"virtual": "False"},
    "E": {"virtual": 0, "downloadBandwidthMbpsMin": "5"}
  }}
}"#;
    let (n, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    let get = |k: &str| &n.nodes[n.find_by_name(k).unwrap()];
    assert_eq!(get("A").id.as_deref(), Some("17"));
    assert_eq!(n.find_by_id("17"), n.find_by_name("A"));
    assert_eq!(get("A").download.unwrap().0, 1_000_000);
    assert_eq!(get("A").upload.unwrap().0, 250_500);
    assert!(get("B").is_virtual && get("C").is_virtual);
    assert!(!get("D").is_virtual && !get("E").is_virtual);
    assert_eq!(get("C").upload, None);
    assert_eq!(get("E").download_min.unwrap().0, 5_000);
}

/// LibreQoS's example network.json is accepted as it is.
#[test]
fn libreqos_example_network_json_is_accepted() {
    let text = include_str!("../fixtures/libreqos-inputs/network.example.json");
    let (n, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    assert!(n.find_by_name("AP_A").is_some() && n.find_by_name("AP_9").is_some());
}

#[test]
fn virtual_promotion_collision_is_an_error() {
    let text = r#"{"Top": {"children": {
        "Real": {"name": "Shown"},
        "V": {"virtual": true, "children": {"Other": {"name": "Shown"}}}
    }}}"#;
    let (_, d) = parse(text);
    let e = only_error(&d);
    assert!(e.message.contains("promotion collision"), "{e}");
    assert_eq!(e.field.as_deref(), Some("Top/V/Other"));
}

#[test]
fn duplicate_ids_and_duplicate_fields_are_errors() {
    let (_, d) = parse(r#"{"A": {"id": "x"}, "B": {"id": "x"}}"#);
    assert_eq!(only_error(&d).field.as_deref(), Some("B.id"));
    let (_, d) = parse(r#"{"A": {"type": "site", "type": "ap"}}"#);
    assert!(only_error(&d).message.contains("appears twice"));
}

#[test]
fn type_virtual_marks_a_node_virtual_and_all_virtual_warns() {
    let (n, d) = parse(r#"{"V": {"type": "virtual"}}"#);
    assert!(n.nodes[0].is_virtual);
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
}

#[test]
fn empty_node_name_is_an_error() {
    let (_, d) = parse("{\n  \"\": {}\n}");
    let e = only_error(&d);
    assert_eq!((e.line, e.column), (Some(2), Some(3)));
}
