//! lqos_scheduler against the real lqosd in the lab, with a mock Netzur CRM on 127.0.0.1:
//! the start-up setup reaches the kernel, then one customer's rate change in the CRM reaches
//! the kernel with only that circuit's classes touched.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lqos_bus::{Command, Response};
use lqos_integrations::mock::{MockCrm, Reply};
use lqos_lab::lab::{SHAPER_TO_INTERNET, SHAPER_TO_NETWORK};

use crate::e2e::{lab, lock, sub};

struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn netzur_doc(jane_mbps: u32) -> String {
    format!(
        r#"{{"zones":[{{"id":1,"name":"Zone A","capacity_download_mbps":1000,"capacity_upload_mbps":1000}}],
 "customers":[{{"subscriber_id":"2001","zone":"Zone A","customerName":"Jane","download":{jane_mbps},"upload":5,"ip":"198.18.1.1"}},
              {{"subscriber_id":"2002","zone":"Zone A","customerName":"Bob","download":25,"upload":5,"ip":"198.18.1.2"}}]}}"#
    )
}

/// `handle -> "parent rate ceil"` of every HTB class on `dev`.
fn classes(lab: &lqos_lab::Lab, dev: &str) -> BTreeMap<String, String> {
    let out = lab.shaper.exec_stdout("tc", &["class", "show", "dev", dev]).expect("tc class show");
    out.lines()
        .filter(|l| l.starts_with("class htb"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let field = |k: &str| {
                w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).copied().unwrap_or("-")
            };
            Some((
                w.get(2)?.to_string(),
                format!("parent {} rate {} ceil {}", field("parent"), field("rate"), field("ceil")),
            ))
        })
        .collect()
}

fn mappings(lab: &lqos_lab::Lab) -> Vec<lqos_bus::MappingEntry> {
    match lab.bus().expect("bus").request(&Command::ListMappings).expect("list") {
        Response::Mappings(m) => m,
        other => panic!("{other:?}"),
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

#[test]
fn scheduler_sets_up_at_start_then_a_crm_change_touches_only_that_circuit() {
    let _g = lock();
    // The lab starts with no shaped subscribers: the CRM is the source of truth.
    let Some(lab) = lab("lqe2s", vec![sub(0, 10.0, 5.0, false), sub(1, 25.0, 5.0, false)]) else {
        return;
    };
    let crm = MockCrm::start().expect("mock CRM");
    crm.require_header("authorization", "Bearer lab-key");
    crm.set("/libreqos", vec![Reply::json(netzur_doc(10))]);
    let conf = lab.spec.config_path();
    let mut text = std::fs::read_to_string(&conf).expect("read conf");
    text.push_str(&format!(
        "\n[netzur_integration]\nenable_netzur = true\napi_key = \"lab-key\"\napi_url = \"{}/libreqos\"\ntimeout_secs = 10\n",
        crm.url()
    ));
    std::fs::write(&conf, text).expect("write conf");
    let log = std::fs::File::create(lab.spec.dir.join("scheduler.log")).expect("log");
    let _sched = Scheduler(
        std::process::Command::new(lqos_lab::find_binary("lqos_scheduler"))
            .args(["--interval-secs", "3"])
            .env("LQOS_CONFIG", &conf)
            .env("LQOS_BUS", lab.spec.bus_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start lqos_scheduler"),
    );
    let sched_log =
        || std::fs::read_to_string(lab.spec.dir.join("scheduler.log")).unwrap_or_default();
    wait_until("the start-up setup to map both customers", Duration::from_secs(40), || {
        mappings(&lab).len() == 2
    });
    let jane_class = mappings(&lab)
        .into_iter()
        .find(|m| m.circuit == "netzur_2001")
        .map(|m| m.class)
        .expect("jane mapped");
    let down_before = classes(&lab, SHAPER_TO_NETWORK);
    let up_before = classes(&lab, SHAPER_TO_INTERNET);
    let jane_before = down_before.get(&jane_class).cloned().expect("Jane's class exists");
    assert!(jane_before.contains("ceil 10Mbit"), "{jane_before}");

    crm.set("/libreqos", vec![Reply::json(netzur_doc(20))]);
    wait_until("Jane's new ceil in the kernel", Duration::from_secs(40), || {
        classes(&lab, SHAPER_TO_NETWORK).get(&jane_class).is_some_and(|c| c.contains("ceil 20Mbit"))
    });
    let down_after = classes(&lab, SHAPER_TO_NETWORK);
    let changed: Vec<_> =
        down_before.keys().filter(|h| down_before.get(*h) != down_after.get(*h)).collect();
    // Jane's class changes; her parent node may change its guaranteed rate in place (a node
    // guarantees what its children need, issue 9), never its ceil; nothing else moves.
    let parent = jane_before
        .split_whitespace()
        .skip_while(|w| *w != "parent")
        .nth(1)
        .map(str::to_owned)
        .expect("Jane's class names its parent");
    let ceil =
        |line: &str| line.split_whitespace().skip_while(|w| *w != "ceil").nth(1).map(str::to_owned);
    assert!(
        changed.contains(&&jane_class)
            && changed.iter().all(|h| **h == jane_class || **h == parent),
        "only Jane's download class (and her parent's guarantee) may change: {changed:?}\nscheduler log:\n{}",
        sched_log()
    );
    assert_eq!(
        ceil(down_before.get(&parent).map(String::as_str).unwrap_or_default()),
        ceil(down_after.get(&parent).map(String::as_str).unwrap_or_default()),
        "the parent's ceil is untouched"
    );
    assert_eq!(down_before.len(), down_after.len(), "no class added or removed");
    assert_eq!(up_before, classes(&lab, SHAPER_TO_INTERNET), "upload classes untouched");
    match lab.bus().expect("bus").request(&Command::Status).expect("status") {
        Response::Status(s) => {
            let sched = s.scheduler.expect("the scheduler reported its state to lqosd");
            assert_eq!(sched.integration.to_lowercase(), "netzur", "{sched:?}");
            assert!(sched.last_error.is_none(), "{sched:?}");
        }
        other => panic!("{other:?}"),
    }
}
