//! Planner benchmark: plan (cold and with identities), diff (full build and a 1 % edit) and
//! tc rendering for 1k/10k/100k circuits over 10/100/1000 sites on 16 queues. Prints the
//! median of a few runs; never fails on time. Run: `cargo bench -p lqos-plan --bench plan`.
#![expect(clippy::print_stdout, reason = "a benchmark prints its numbers")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use lqos_config::{DefaultSqm, RateKbit};
use lqos_plan::testkit::{config_bridge, facts, random_circuits, random_network};
use lqos_plan::{Identities, Plan, PlanInput, diff, plan, render_plan_tc};

fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = black_box(f());
        times.push(t.elapsed());
        last = Some(out);
    }
    times.sort();
    (times[times.len() / 2], last.expect("runs > 0"))
}

fn main() {
    println!(
        "{:>8} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "circuits", "sites", "plan", "replan", "diff-full", "diff-1%", "render"
    );
    for (circuits, sites) in [(1_000u32, 10usize), (10_000, 100), (100_000, 1_000)] {
        let mut config = config_bridge(10_000, 10_000);
        if circuits > 60_000 {
            // > 65k leaf qdiscs cannot exist on one interface (16-bit handles): no leaves.
            config.queues.default_sqm = DefaultSqm { tokens: "none".into(), leaf: None };
        }
        let net = random_network(42, sites, 5);
        let cs = random_circuits(42, &net, 0, circuits);
        let none = Identities::default();
        let f = facts(16);
        let runs = if circuits >= 100_000 { 5 } else { 11 };
        let input =
            PlanInput { config: &config, network: &net, circuits: &cs, facts: f, previous: &none };
        let (t_plan, a) = median(runs, || plan(&input).expect("plan"));
        let warm = PlanInput { previous: &a.identities, ..input };
        let (t_replan, _) = median(runs, || plan(&warm).expect("plan"));
        let empty = Plan::empty();
        let (t_full, full) = median(runs, || diff(&empty, &a));
        // 1 % edit: re-rate 0.5 %, drop 0.25 %, add 0.25 %.
        let n = cs.len();
        let mut cs2: Vec<_> =
            cs.iter().enumerate().filter(|(i, _)| i % 400 != 7).map(|(_, c)| c.clone()).collect();
        for c in cs2.iter_mut().step_by(200) {
            c.download_max = RateKbit(c.download_max.0 + 1000);
        }
        cs2.extend(random_circuits(7, &net, 1_000_000, (n / 400) as u32));
        let b =
            plan(&PlanInput { circuits: &cs2, previous: &a.identities, ..input }).expect("plan");
        let (t_inc, inc) = median(runs, || diff(&a, &b));
        let (t_render, tc) = median(runs, || render_plan_tc(&a));
        println!(
            "{:>8} {:>6} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?}   (classes {}, full adds {}, 1% edit: +{} -{} ~{} classes, tc {} lines)",
            circuits,
            sites,
            t_plan,
            t_replan,
            t_full,
            t_inc,
            t_render,
            a.interfaces.iter().map(|i| i.classes.len()).sum::<usize>(),
            full.class_add.len(),
            inc.class_add.len(),
            inc.class_del.len(),
            inc.class_change.len(),
            tc.lines().count(),
        );
    }
}
