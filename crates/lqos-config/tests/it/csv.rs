use lqos_config::{SqmKind, SqmOverride, parse_shaped_devices_str};

use crate::{errors, only_error};

const HEADER15: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,\
Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment";

fn row15(id: &str, parent: &str, v4: &str, v6: &str, rates: &str) -> String {
    format!("{id},Name {id},dev-{id},Dev,{parent},,,,\"{v4}\",\"{v6}\",{rates},\n")
}

fn parse(text: &str) -> (Vec<lqos_config::Circuit>, Vec<lqos_config::Diagnostic>) {
    parse_shaped_devices_str(text, "ShapedDevices.csv")
}

#[test]
fn current_header_layout_parses_all_fields() {
    let text = format!(
        "{HEADER15},sqm\nc1,Alice,d1,Router,AP_A,pid,anchor,aa:bb,\"100.64.0.1, 100.64.1.0/29\",\"2001:db8::/56\",2.5,1,100.5,20,hello,cake/fq_codel\n"
    );
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    let c = &c[0];
    assert_eq!(c.parent_node.as_deref(), Some("AP_A"));
    assert_eq!(c.parent_node_id.as_deref(), Some("pid"));
    assert_eq!(c.anchor_node_id.as_deref(), Some("anchor"));
    assert_eq!(
        (c.download_min.0, c.upload_min.0, c.download_max.0, c.upload_max.0),
        (2500, 1000, 100_500, 20_000)
    );
    assert_eq!(c.sqm, Some(SqmOverride::kinds(Some(SqmKind::Cake), Some(SqmKind::FqCodel))));
    let dev = &c.devices[0];
    assert_eq!(
        dev.ipv4.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["100.64.0.1/32", "100.64.1.0/29"]
    );
    assert_eq!(dev.ipv6[0].to_string(), "2001:db8::/56");
    assert_eq!((dev.mac.as_str(), dev.comment.as_str(), dev.line), ("aa:bb", "hello", 2));
}

#[test]
fn legacy_header_in_any_order_with_aliases() {
    let text = "ipv4,Circuit ID,downloadmax,uploadmax,download_min_mbps,Upload Min,Parent,id,username\n\
                100.64.0.9,c1,50,10,5,1,Tower,anc,bob\n";
    let (c, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c[0].download_max.0, 50_000);
    assert_eq!(c[0].parent_node.as_deref(), Some("Tower"));
    assert_eq!(c[0].anchor_node_id.as_deref(), Some("anc"));
    assert_eq!(c[0].devices[0].mac, "bob");
}

#[test]
fn headerless_legacy_13_and_14_columns() {
    let text = "c1,Alice,d1,Router,AP_A,mac,100.64.0.1,,10,2,100,20,comment\n\
                c2,Bob,d2,Router,none,mac,100.64.0.2,2001:db8::2,10,2,100,20,,fq_codel\n";
    let (c, d) = parse(text);
    // second row has 14 fields but the first defined a 13-field layout
    assert_eq!(only_error(&d).line, Some(2));
    assert_eq!(c.len(), 1);
    let text14 = "c2,Bob,d2,Router,none,mac,100.64.0.2,2001:db8::2,10,2,100,20,,fq_codel\n";
    let (c, d) = parse(text14);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c[0].parent_node, None);
    assert_eq!(c[0].sqm, Some(SqmOverride::kinds(Some(SqmKind::FqCodel), Some(SqmKind::FqCodel))));
}

#[test]
fn headerless_current_16_columns() {
    let text = "c1,Alice,d1,Router,AP_A,pid,,mac,100.64.0.1,,10,2,100,20,comment,none\n";
    let (c, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c[0].parent_node_id.as_deref(), Some("pid"));
    assert_eq!(c[0].sqm.as_ref().unwrap().down, Some(SqmKind::None));
}

/// LibreQoS's src/ShapedDevices.example.csv: a 15-column header over 13-field rows.
#[test]
fn original_example_15_column_header_over_13_field_rows_is_a_clear_error() {
    let text = format!(
        "{HEADER15}\n\
         ,\"968 Circle St., Gurnee, IL 60031\",1,Device 1,AP_A,,\"100.64.0.1, 100.64.0.14\",,25,5,155,20,\n\
         ,\"31 Marconi Street, Lake In The Hills, IL 60156\",2,Device 2,AP_A,,100.64.0.2,,25,5,105,18,\n"
    );
    let (c, d) = parse(&text);
    assert!(c.is_empty(), "no row may be read with shifted columns");
    let e = errors(&d);
    assert_eq!(e.len(), 2, "{d:#?}");
    assert_eq!(e[0].line, Some(2));
    assert_eq!(e[1].line, Some(3));
    assert!(e[0].message.contains("expected 15, found 13"), "{}", e[0]);
    let hint = e[0].hint.as_deref().unwrap();
    assert!(hint.contains("header has 15 columns and this row has 13"), "{hint}");
    assert!(hint.contains("legacy layout"), "{hint}");
}

#[test]
fn bom_crlf_and_comments_are_handled() {
    let text = format!(
        "\u{feff}# exported 2024-01-01\r\n{HEADER15}\r\n# a comment, with \"quotes\r\n{}  #also,a,comment\r\n{}",
        row15("c1", "", "100.64.0.1", "", "1,1,10,10").replace('\n', "\r\n"),
        row15("c2", "", "100.64.0.2", "", "1,1,10,10")
    );
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].devices[0].line, 4);
    assert_eq!(c[1].devices[0].line, 6);
    assert_eq!(c[0].id.0, "c1");
}

#[test]
fn rows_sharing_a_circuit_id_form_one_circuit() {
    let text = format!(
        "{HEADER15}\n{}{}{}",
        row15("c1", "AP", "100.64.0.1", "", "1,1,10,10"),
        row15("c1", "AP", "100.64.0.2", "", "1,1,10,10"),
        row15("c1", "AP", "100.64.0.3", "", "1,1,20,10")
    );
    let (c, d) = parse(&text);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].devices.len(), 3);
    assert_eq!(c[0].download_max.0, 10_000, "first row wins");
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
    assert_eq!(d[0].line, Some(4));
}

#[test]
fn conflicting_parent_in_one_circuit_names_both_lines() {
    let text = format!(
        "{HEADER15}\n{}{}",
        row15("c1", "AP_A", "100.64.0.1", "", "1,1,10,10"),
        row15("c1", "AP_B", "100.64.0.2", "", "1,1,10,10")
    );
    let (_, d) = parse(&text);
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("Parent Node")));
    assert!(e.message.contains("'AP_B'") && e.message.contains("'AP_A' at line 2"), "{e}");
}

fn one_row_error(rates: &str, v4: &str, v6: &str) -> lqos_config::Diagnostic {
    let text = format!("{HEADER15}\n{}", row15("c1", "", v4, v6, rates));
    let (c, d) = parse(&text);
    assert!(c.is_empty());
    let e = only_error(&d).clone();
    assert_eq!(e.line, Some(2));
    e
}

#[test]
fn non_numeric_negative_and_zero_rates_are_errors_on_their_field() {
    let e = one_row_error("1,1,12x,10", "100.64.0.1", "");
    assert_eq!(e.field.as_deref(), Some("Download Max Mbps"));
    assert!(e.message.contains("'12x' is not a number"));
    let e = one_row_error("1,-1,10,10", "100.64.0.1", "");
    assert_eq!(e.field.as_deref(), Some("Upload Min Mbps"));
    let e = one_row_error("1,1,10,0", "100.64.0.1", "");
    assert_eq!(e.field.as_deref(), Some("Upload Max Mbps"));
    let e = one_row_error("0.001,1,10,10", "100.64.0.1", "");
    assert_eq!(e.field.as_deref(), Some("Download Min Mbps"));
}

#[test]
fn fractional_rates_are_kept() {
    let text = format!("{HEADER15}\n{}", row15("c1", "", "100.64.0.1", "", "0.5,0.25,2.5,1.15"));
    let (c, d) = parse(&text);
    assert!(d.is_empty());
    assert_eq!((c[0].download_min.0, c[0].upload_min.0, c[0].upload_max.0), (500, 250, 1150));
}

#[test]
fn min_above_max_is_an_error() {
    let e = one_row_error("20,1,10,10", "100.64.0.1", "");
    assert_eq!(e.field.as_deref(), Some("Download Min Mbps"));
    assert!(e.message.contains("greater than"));
}

#[test]
fn bad_addresses_are_errors_with_hints() {
    let e = one_row_error("1,1,10,10", "100.64.0.300", "");
    assert_eq!(e.field.as_deref(), Some("IPv4"));
    let e = one_row_error("1,1,10,10", "2001:db8::1", "");
    assert!(e.hint.unwrap().contains("IPv6 column"));
    let e = one_row_error("1,1,10,10", "100.64.0.5/29", "");
    assert!(e.message.contains("host bits"));
    assert!(e.hint.unwrap().contains("100.64.0.0/29"));
    let e = one_row_error("1,1,10,10", "", "2001:db8::1/129");
    assert_eq!(e.field.as_deref(), Some("IPv6"));
    let e = one_row_error("1,1,10,10", "", "2001:db8::1/64");
    assert!(e.message.contains("host bits"));
}

#[test]
fn empty_circuit_id_is_an_error() {
    let text = format!("{HEADER15}\n{}", row15("", "", "100.64.0.1", "", "1,1,10,10"));
    let (_, d) = parse(&text);
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("Circuit ID")));
}

#[test]
fn bad_sqm_is_an_error() {
    let text = format!("{HEADER15},sqm\nc1,n,d,n,,,,,100.64.0.1,,1,1,10,10,,20\n");
    let (_, d) = parse(&text);
    assert_eq!(only_error(&d).field.as_deref(), Some("sqm"));
}

#[test]
fn header_missing_a_rate_column_is_an_error() {
    let (c, d) = parse("Circuit ID,IPv4,Download Max Mbps\nc1,100.64.0.1,10\n");
    assert!(c.is_empty());
    assert_eq!(errors(&d).len(), 3);
    assert!(d.iter().all(|d| d.line == Some(1)));
}

#[test]
fn unknown_header_column_warns() {
    let text = format!(
        "{HEADER15},Colour\n{}",
        row15("c1", "", "100.64.0.1", "", "1,1,10,10").replace(",\n", ",,red\n")
    );
    let (c, d) = parse(&text);
    assert_eq!(c.len(), 1);
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_error());
    assert_eq!(d[0].field.as_deref(), Some("Colour"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{HEADER15}\n{}{}{}",
        row15("c1", "", "bad", "", "x,1,10,10"),
        row15("c2", "", "100.64.0.2", "", "1,1,10,10"),
        row15("", "", "100.64.0.3", "", "1,1,10,10")
    );
    let (c, d) = parse(&text);
    assert_eq!(c.len(), 1);
    let lines: Vec<_> = errors(&d).iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [2, 2, 4]);
}

#[test]
fn headerless_row_of_unknown_width_is_an_error() {
    let (c, d) = parse("# export\nc1,Alice,d1,100.64.0.1,10,2,100,20\n");
    assert!(c.is_empty());
    let e = only_error(&d);
    assert_eq!(e.line, Some(2));
    assert!(e.hint.as_deref().unwrap().contains("Circuit ID,Circuit Name"));
}

// ---------------------------------------------------------------------------------------------
// Issue 9: read ShapedDevices.csv like LibreQoS reads it.
// ---------------------------------------------------------------------------------------------

const EXAMPLE_CSV: &str = include_str!("../fixtures/libreqos-inputs/ShapedDevices.example.csv");
const HEADER13: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,\
Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment";

/// The example LibreQoS ships: a 15-column header over 13-field rows. Refused at line 2
/// with the layout hint; no row is read with shifted columns.
#[test]
fn libreqos_example_csv_fails_at_line_2_with_the_layout_hint() {
    let (c, d) = parse(EXAMPLE_CSV);
    assert!(c.is_empty());
    let e = &errors(&d)[0];
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("expected 15, found 13"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("legacy layout"), "{e}");
    assert_eq!(errors(&d).len(), EXAMPLE_CSV.lines().count() - 1, "one error per row");
}

/// The same rows under the 13-column header they were written for are accepted as they are.
#[test]
fn libreqos_example_rows_under_the_13_column_header_pass() {
    let rows = EXAMPLE_CSV.split_once('\n').unwrap().1;
    let (c, d) = parse(&format!("{HEADER13}\n{rows}"));
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c.len(), rows.lines().filter(|l| !l.trim().is_empty()).count());
    assert_eq!(c[0].devices[0].ipv4.len(), 2);
    assert_eq!(c[0].parent_node.as_deref(), Some("AP_A"));
}

/// Rows lacking only the trailing Comment/sqm fields are read with them empty, and one
/// warning per file names the lines.
#[test]
fn short_rows_missing_only_comment_and_sqm_warn_once_naming_the_lines() {
    let text = format!(
        "{HEADER15},sqm\n\
         c1,n,d1,n,,,,,100.64.0.1,,1,1,10,10,hi,cake\n\
         c2,n,d2,n,,,,,100.64.0.2,,1,1,10,10,hi\n\
         c3,n,d3,n,,,,,100.64.0.3,,1,1,10,10\n\
         c4,n,d4,n,,,,,100.64.0.4,,1,1,10,10,,\n"
    );
    let (c, d) = parse(&text);
    assert_eq!(c.len(), 4);
    assert_eq!(c[1].devices[0].comment, "hi");
    assert_eq!(c[2].sqm, None);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(!d[0].is_error());
    assert_eq!(d[0].line, Some(3));
    assert!(d[0].message.contains("2 row(s)") && d[0].message.contains("lines 3, 4;"), "{}", d[0]);
}

/// Extra trailing empty fields (a spreadsheet's `,,,`) are accepted with the same warning;
/// an extra field with content is still an error.
#[test]
fn extra_trailing_empty_fields_warn_and_extra_content_is_an_error() {
    let text = format!(
        "{HEADER15}\n{}c2,n,d2,n,,,,,100.64.0.2,,1,1,10,10,,,, \nc3,n,d3,n,,,,,100.64.0.3,,1,1,10,10,,x\n",
        row15("c1", "", "100.64.0.1", "", "1,1,10,10")
    );
    let (c, d) = parse(&text);
    assert_eq!(c.len(), 2);
    let e = only_error(&d);
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("expected 15, found 16"), "{e}");
    let w: Vec<_> = d.iter().filter(|d| !d.is_error()).collect();
    assert_eq!(w.len(), 1, "{d:#?}");
    assert_eq!(w[0].line, Some(3));
    assert!(w[0].message.contains("lines 3;"), "{}", w[0]);
}

/// A row missing a required trailing column (Upload Max Mbps) is still an error.
#[test]
fn short_row_missing_a_rate_is_an_error() {
    let text = format!("{HEADER13}\nc1,n,d1,n,,,100.64.0.1,,1,1,10\n");
    let (c, d) = parse(&text);
    assert!(c.is_empty());
    assert_eq!(only_error(&d).line, Some(2));
}

/// Quoted fields may span lines; later rows keep their true line numbers.
#[test]
fn quoted_multi_line_fields_keep_line_numbers() {
    let text = format!(
        "{HEADER15}\nc1,\"Alice\nand Bob\",d1,n,,,,,100.64.0.1,,1,1,10,10,\"line one\r\nline two\"\n\
         c2,n,d2,n,,,,,100.64.0.2,,1,1,10x,10,\n"
    );
    let (c, d) = parse(&text);
    assert_eq!(c[0].name, "Alice\nand Bob");
    assert_eq!(c[0].devices[0].comment, "line one\r\nline two");
    assert_eq!(only_error(&d).line, Some(5));
}

/// Header cells match by letters and digits only, in any case and order.
#[test]
fn header_aliases_and_spelling_variants_are_matched() {
    let text = "CIRCUIT ID,circuit name,device-id,Device name,PARENT NODE,mac,ipv4,ipv6,download_min,\
           upload_min,download_max,upload_max,comments,SQM\n\
           c1,n,d1,n,,,100.64.0.1,,1,1,10,10,,fq_codel\n";
    let (c, d) = parse(text);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c[0].download_max.0, 10_000);
    assert_eq!(c[0].sqm.as_ref().unwrap().down, Some(SqmKind::FqCodel));
}

/// Bytes that are not UTF-8 are Windows-1252 (Excel's "CSV"): decoded with the right
/// characters (€ is 0x80, not U+0080) and one warning naming the encoding.
#[test]
fn windows_1252_file_is_decoded_with_one_warning() {
    let mut bytes = format!("{HEADER15}\n").into_bytes();
    bytes.extend_from_slice(b"c1,Jos\xe9 M\xfcller \x80,d1,n,,,,,100.64.0.1,,1,1,10,10,caf\xe9\n");
    let (text, w) = lqos_config::decode_text(&bytes, "ShapedDevices.csv");
    let w = w.unwrap();
    assert!(!w.is_error() && w.message.contains("Windows-1252"), "{w}");
    let (c, d) = parse(&text);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(c[0].name, "José Müller €");
    assert_eq!(c[0].devices[0].comment, "café");
    // UTF-8 (with or without BOM) and UTF-16 with a BOM decode without a warning.
    assert_eq!(lqos_config::decode_text("é".as_bytes(), "f"), ("é".to_string(), None));
    assert_eq!(lqos_config::decode_text(b"\xef\xbb\xbfx", "f"), ("x".to_string(), None));
    assert_eq!(lqos_config::decode_text(b"\xff\xfex\x00", "f"), ("x".to_string(), None));
}

/// The sqm column takes every tc option of CAKE and fq_codel, per direction (issue 9), and
/// writes back the same words.
#[test]
fn sqm_column_accepts_tc_options_per_direction() {
    let text = format!(
        "{HEADER15},sqm\n\
         c1,n,d1,n,,,,,100.64.0.1,,1,1,10,10,,cake diffserv8 dual-dsthost nat ack-filter/fq_codel target 2ms ecn\n\
         c2,n,d2,n,,,,,100.64.0.2,,1,1,10,10,,CAKE besteffort\n\
         c3,n,d3,n,,,,,100.64.0.3,,1,1,10,10,,cake frobnicate\n"
    );
    let (c, d) = parse(&text);
    let e = only_error(&d);
    assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("sqm")));
    assert!(e.message.contains("'frobnicate'"), "{e}");
    let ov = c[0].sqm.as_ref().unwrap();
    assert_eq!((ov.down, ov.up), (Some(SqmKind::Cake), Some(SqmKind::FqCodel)));
    let Some(lqos_config::LeafQdisc::Cake(p)) = &ov.down_leaf else { panic!("{ov:?}") };
    assert_eq!(p.diffserv, Some(lqos_config::CakeDiffserv::Diffserv8));
    assert_eq!(p.flow_mode, Some(lqos_config::CakeFlowMode::DualDsthost));
    assert_eq!((p.nat, p.ack_filter), (Some(true), Some(lqos_config::CakeAckFilter::On)));
    let Some(lqos_config::LeafQdisc::FqCodel(f)) = &ov.up_leaf else { panic!("{ov:?}") };
    assert_eq!((f.target_us, f.ecn), (Some(2000), Some(true)));
    assert_eq!(
        lqos_config::format_sqm_override(Some(ov)),
        "cake diffserv8 dual-dsthost nat ack-filter/fq_codel target 2000us ecn"
    );
    assert_eq!(
        lqos_config::format_sqm_override(c[1].sqm.as_ref()),
        "cake besteffort",
        "same options both ways print once"
    );
    let back = lqos_config::shaped_devices_to_string(&c);
    let (c2, d2) = parse(&back);
    assert!(d2.is_empty(), "{d2:#?}");
    assert_eq!(c2[0].sqm, c[0].sqm);
}

/// LibreQoS's manualNetwork.template.csv is a template for building network.json, not a
/// device list: given as ShapedDevices.csv it is refused at its header with the layout.
#[test]
fn libreqos_manual_network_template_is_not_a_device_list() {
    let text = include_str!("../fixtures/libreqos-inputs/manualNetwork.template.csv");
    let (c, d) = parse(text);
    assert!(c.is_empty());
    // No Circuit ID column: read as a headerless file of 4 fields, which has no layout.
    let e = only_error(&d);
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("cannot tell the layout of a row with 4 fields"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("Circuit ID,Circuit Name"), "{e}");
}

/// A cell with hundreds of bad addresses gives a bounded report: the first eight one by one,
/// then one summary line (found by the CSV fuzz property).
#[test]
fn a_cell_full_of_bad_addresses_is_reported_in_bounded_lines() {
    let bad: Vec<String> = (0..200).map(|i| format!("10.0.{}.300", i)).collect();
    let text = format!(
        "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n\
         c1,n,d1,dn,,,\"{}\",,1,1,10,10,\n",
        bad.join(", ")
    );
    let (_, d) = lqos_config::parse_shaped_devices_str(&text, "ShapedDevices.csv");
    let v4: Vec<_> = d.iter().filter(|x| x.field.as_deref() == Some("IPv4")).collect();
    assert_eq!(v4.len(), 9, "{d:#?}");
    assert!(v4[8].message.contains("192 more invalid IPv4 addresses"), "{}", v4[8]);
    assert!(v4.iter().all(|x| x.line == Some(2)));
}
