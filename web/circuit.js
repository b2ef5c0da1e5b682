"use strict";
// Circuit page, live parts: window.lqosCircuit = { cards(), sections(), update(circuit), start(id) }.
// - cards(): current RTT per path (#c-rtt-access, #c-rtt-upstream: p50 / p90 / p99 over 60 s,
//   with data-p50-ms / data-p90-ms / data-p99-ms, absent without a sample) and the retransmit
//   ratio per direction (#c-retrans, data-down-ratio / data-up-ratio over 60 s).
// - update(c): fills them from GET /api/v1/circuits/{id} (`qoe`), called by app.js every second.
// - sections() + start(id): the busiest flows (#circuit-flows, GET …/flows every 3 s) and the
//   queue statistics of both directions (#circuit-queue, GET …/queue every 2 s: class and leaf
//   counters, CAKE tins, fq_codel). Timers stop by themselves once the page is left.
// DOM is built with textContent only: no string from the API ever reaches markup.
(function () {
  const { el, bps, bytes } = window.lqosDom;
  function n(v) { return (Number(v) || 0).toLocaleString("en-US"); }
  function ms(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(v >= 100 ? 0 : 1) + " ms"; }
  function us(v) { v = Number(v) || 0; return v >= 1000 ? (v / 1000).toFixed(v >= 100000 ? 0 : 1) + " ms" : v + " µs"; }
  function age(s) { s = Number(s) || 0; return s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h"; }
  function pct(r) { return r === null ? "–" : (r * 100).toFixed(r < 0.001 ? 3 : 2) + " %"; }
  function addr(a, port) { return String(a).includes(":") ? "[" + a + "]:" + port : a + ":" + port; }
  function kv(pairs) { return el("div", { class: "kv" }, pairs.map(([k, v]) => [el("div", {}, k), el("div", {}, v)])); }
  function set(e, key, v) { if (v === null || v === undefined) e.removeAttribute(key); else e.setAttribute(key, String(v)); }

  function card(id, label) {
    return el("div", { class: "card", id },
      el("div", { class: "label" }, label),
      el("div", { class: "value" }, "–"),
      el("div", { class: "muted sub" }, "no sample yet"));
  }
  function cards() {
    return el("div", { class: "cards", id: "circuit-qoe" },
      card("c-rtt-access", "RTT access, 60 s (p50 / p90 / p99)"),
      card("c-rtt-upstream", "RTT upstream, 60 s (p50 / p90 / p99)"),
      card("c-retrans", "TCP retransmits, 60 s (down / up)"));
  }
  function showRtt(id, s) {
    const e = document.getElementById(id);
    if (!e) return;
    const has = s && Number(s.samples) > 0;
    for (const q of ["p50", "p90", "p99"]) set(e, "data-" + q + "-ms", has ? Number(s[q]) : null);
    set(e, "data-samples", has ? Number(s.samples) : null);
    e.querySelector(".value").textContent = has ? [s.p50, s.p90, s.p99].map(v => Number(v).toFixed(1)).join(" / ") + " ms" : "–";
    e.querySelector(".sub").textContent = has ? n(s.samples) + " samples" : "no TCP sample in the last 60 s";
  }
  function ratio(retx, pkts) { const p = Number(pkts) || 0; return p > 0 ? (Number(retx) || 0) / p : null; }
  function update(c) {
    const q = c && c.qoe;
    showRtt("c-rtt-access", q && q.rtt_ms ? q.rtt_ms.access : null);
    showRtt("c-rtt-upstream", q && q.rtt_ms ? q.rtt_ms.upstream : null);
    const e = document.getElementById("c-retrans");
    if (!e) return;
    const r = q ? q.retransmits_60s || {} : {}, p = q ? q.tcp_packets_60s || {} : {};
    const down = q ? ratio(r.down, p.down) : null, up = q ? ratio(r.up, p.up) : null;
    set(e, "data-down-ratio", down); set(e, "data-up-ratio", up);
    e.querySelector(".value").textContent = pct(down) + " / " + pct(up);
    e.querySelector(".sub").textContent = q ? n(r.down) + " of " + n(p.down) + " down, " + n(r.up) + " of " + n(p.up) + " up" : "no TCP quality data";
  }

  function sections() {
    return el("div", { id: "circuit-live" },
      el("h2", {}, "Busiest flows"),
      el("div", { id: "circuit-flows", "aria-live": "polite" }, el("div", { class: "empty" }, "Loading…")),
      el("h2", {}, "Queue statistics"),
      el("div", { id: "circuit-queue", "aria-live": "polite" }, el("div", { class: "empty" }, "Loading…")));
  }

  async function get(path) {
    const r = await fetch("/api/v1" + path, { credentials: "same-origin" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) { const err = new Error((data && data.message) || ("HTTP " + r.status)); err.status = r.status; throw err; }
    return data;
  }

  function flowsTable(list) {
    if (!list.length) return el("div", { class: "empty" }, "No active flows seen for this circuit.");
    return el("table", { class: "flows" },
      el("caption", { class: "muted" }, "Busiest first (current rate, then bytes); TCP and UDP"),
      el("thead", {}, el("tr", {}, ["Protocol", "Subscriber", "Remote", "Down", "Up", "RTT access", "RTT upstream", "Retransmits (down / up)", "Age"].map(h => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map(f => el("tr", {},
        el("td", {}, f.protocol),
        el("td", {}, addr(f.subscriber, f.subscriber_port)),
        el("td", {}, addr(f.remote, f.remote_port)),
        el("td", { class: "num" }, bps(f.rate_bps && f.rate_bps.down)),
        el("td", { class: "num" }, bps(f.rate_bps && f.rate_bps.up)),
        el("td", { class: "num" }, ms(f.rtt_access_ms)),
        el("td", { class: "num" }, ms(f.rtt_upstream_ms)),
        el("td", { class: "num" }, n(f.retransmits && f.retransmits.down) + " / " + n(f.retransmits && f.retransmits.up)),
        el("td", { class: "num" }, age(f.age_secs))))));
  }

  const TINS = { 1: ["Best effort"], 3: ["Bulk", "Best effort", "Voice"], 4: ["Bulk", "Best effort", "Video", "Voice"] };
  function tinName(count, i) { return (TINS[count] || [])[i] || "Tin " + i; }
  function counters(c) {
    return [["Sent", bytes(c.bytes) + " (" + n(c.packets) + " packets)"], ["Drops", n(c.drops)], ["Overlimits", n(c.overlimits)],
      ["Requeues", n(c.requeues)], ["Backlog", bytes(c.backlog_bytes) + " (" + n(c.backlog_packets) + " packets)"]];
  }
  function cakeTable(cake) {
    const row = (name, t, cls) => el("tr", cls ? { class: cls } : {},
      el("th", { scope: "row" }, name),
      el("td", { class: "num" }, n(t.sent_packets)),
      el("td", { class: "num" }, n(t.dropped_packets)),
      el("td", { class: "num" }, n(t.ecn_marked_packets)),
      el("td", { class: "num" }, n(t.ack_drops)),
      el("td", { class: "num" }, bytes(t.backlog_bytes) + " / " + n(t.backlog_packets)),
      el("td", { class: "num" }, us(t.avg_delay_us)),
      el("td", { class: "num" }, us(t.peak_delay_us)),
      el("td", { class: "num" }, us(t.target_us) + " / " + us(t.interval_us)),
      el("td", { class: "num" }, n(t.sparse_flows) + " / " + n(t.bulk_flows)));
    const tins = cake.tins || [];
    return el("table", { class: "cake-tins" },
      el("caption", { class: "muted" }, "CAKE, " + tins.length + " tin(s); memory " + bytes(cake.memory_used) + " of " + bytes(cake.memory_limit)),
      el("thead", {}, el("tr", {}, ["Tin", "Sent packets", "Drops", "ECN marks", "ACK drops", "Backlog (bytes / packets)", "Avg delay", "Peak delay", "Target / interval", "Sparse / bulk flows"].map(h => el("th", { scope: "col" }, h)))),
      el("tbody", {}, tins.map((t, i) => row(tinName(tins.length, i), t)), tins.length > 1 ? row("Total", cake.total, "total") : null));
  }
  function fqCodel(f) {
    const opt = v => v === null || v === undefined ? "not reported" : n(v);
    return kv([["Drops over limit", n(f.drop_overlimit)], ["ECN marks", n(f.ecn_mark)], ["CE marks", opt(f.ce_mark)],
      ["New flows (count)", n(f.new_flow_count)], ["Flows new / old list", n(f.new_flows_len) + " / " + n(f.old_flows_len)],
      ["Largest packet", bytes(f.maxpacket)], ["Memory", opt(f.memory_usage) + " bytes"], ["Drops over memory", opt(f.drop_overmemory)]]);
  }
  function direction(d) {
    const title = (d.direction === "upload" ? "Upload" : "Download") + " — " + d.interface + ", class " + d.class;
    const parts = [el("strong", {}, title)];
    parts.push(el("h3", {}, "HTB class"), d.class_stats ? kv(counters(d.class_stats)) : el("p", { class: "muted" }, "The kernel does not hold this class right now."));
    if (d.leaf) {
      parts.push(el("h3", {}, "Leaf qdisc " + d.leaf.kind + " " + d.leaf.handle), kv(counters(d.leaf.counters)));
      if (d.leaf.cake) parts.push(cakeTable(d.leaf.cake));
      if (d.leaf.fq_codel) parts.push(fqCodel(d.leaf.fq_codel));
    } else if (d.class_stats) {
      parts.push(el("p", { class: "muted" }, "No leaf qdisc of its own (sqm none): the class's default FIFO counters are above."));
    }
    return el("div", { class: "card queue-dir", "data-direction": d.direction }, parts);
  }
  function queuePanel(q) {
    if (!q.directions.length) return el("div", { class: "empty" }, q.note || "This circuit has no queue in the kernel.");
    return el("div", {}, el("p", { class: "muted" }, "Read " + new Date(q.read_unix_ms).toLocaleTimeString()), q.directions.map(direction));
  }

  function start(id) {
    const route = location.hash;
    const base = "/circuits/" + encodeURIComponent(id);
    const flows = document.getElementById("circuit-flows");
    const queue = document.getElementById("circuit-queue");
    const alive = () => location.hash === route && flows && flows.isConnected;
    let busyF = false, busyQ = false;
    async function loadFlows() {
      if (busyF) return; busyF = true;
      try { flows.replaceChildren(flowsTable(await get(base + "/flows"))); }
      catch (e) { flows.replaceChildren(el("div", { class: "empty" }, e.status === 404 ? "This circuit is not in the applied plan." : "Flows unavailable: " + e.message)); }
      finally { busyF = false; }
    }
    async function loadQueue() {
      if (busyQ) return; busyQ = true;
      try { queue.replaceChildren(queuePanel(await get(base + "/queue"))); }
      catch (e) {
        // 429: lqosd is busy reading other queues; keep what is shown and try next time.
        if (e.status !== 429 || !queue.querySelector(".queue-dir")) {
          queue.replaceChildren(el("div", { class: "empty" }, e.status === 404 ? "This circuit is not in the applied plan." : e.status === 429 ? "Busy, retrying…" : "Queue statistics unavailable: " + e.message));
        }
      } finally { busyQ = false; }
    }
    loadFlows(); loadQueue();
    const tf = setInterval(() => { if (!alive()) { clearInterval(tf); return; } loadFlows(); }, 3000);
    const tq = setInterval(() => { if (!alive()) { clearInterval(tq); return; } loadQueue(); }, 2000);
  }

  window.lqosCircuit = { cards, sections, update, start };
})();
