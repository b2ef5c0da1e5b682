"use strict";
// "Who is suffering, and is it my AP, my backhaul or the Internet?"
// window.lqosInsight:
//   worstPage(view)     — page #/worst: tables #worst-circuits and #worst-nodes, worst first by
//                         p90 access RTT or retransmit ratio over 10 s / 60 s / 1 h / 24 h.
//   dashboard(holder)   — dashboard panels: #latency-dist (circuits by p90 access RTT, 60 s,
//                         log buckets, SVG), the top of both worst lists, #unknown-addresses.
//   nodeCards(node)     — cards for the node page: p90 access RTT and retransmit ratio (60 s).
//   nodeHeaders() / nodeCells(node) — the same two numbers as node-table columns.
// Data from GET /api/v1/worst, /api/v1/qoe/distribution, /api/v1/unknown. DOM through el()
// and textContent only: circuit names and addresses never reach innerHTML.
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const WINDOWS = [["10s", "last 10 s"], ["60s", "last 60 s"], ["1h", "last hour"], ["24h", "last 24 h"]];
  const BY = [["rtt", "p90 access RTT"], ["retransmits", "retransmit ratio"]];

  const { el, bps, bytes } = window.lqosDom;
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    for (const kid of kids) if (kid) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return e;
  }
  async function get(path) {
    const r = await fetch("/api/v1" + path, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login"; throw new Error("login required"); }
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && data.message) || ("HTTP " + r.status));
    return data;
  }
  function ms(v) { return v === null || v === undefined ? "–" : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " ms"; }
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(v >= 0.1 ? 1 : 2) + " %"; }
  function num(v) { return (Number(v) || 0).toLocaleString("en-US"); }
  function ago(unix) {
    if (!unix) return "never";
    const d = Math.max(0, Math.round(Date.now() / 1000 - unix));
    return d < 120 ? d + " s ago" : d < 7200 ? Math.round(d / 60) + " min ago" : Math.round(d / 3600) + " h ago";
  }
  // Severity classes: what an operator would call fine, degraded, bad.
  function rttClass(v) { return v === null || v === undefined ? "" : v >= 100 ? "bad" : v >= 30 ? "warn" : "ok"; }
  function retxClass(v) { return v === null || v === undefined ? "" : v >= 0.05 ? "bad" : v >= 0.01 ? "warn" : "ok"; }
  function util(bpsNow, maxKbit) { return maxKbit ? Math.round((bpsNow / (maxKbit * 1000)) * 100) + " %" : "–"; }
  function circuitLink(id, name) { return el("a", { href: "#/circuit/" + encodeURIComponent(id) }, name || id); }
  function nodeLink(name) { return el("a", { href: "#/tree/" + encodeURIComponent(name) }, name); }
  function td(v, cls) { return el("td", cls ? { class: cls } : {}, v); }
  function th(label, num) { return el("th", num ? { class: "num", scope: "col" } : { scope: "col" }, label); }
  function windowLabel(w) { const f = WINDOWS.find(x => x[0] === w); return f ? f[1] : w; }

  // One worst-first table; `compact` (dashboard) shows fewer columns.
  function worstTable(id, list, compact) {
    const circuits = list.kind === "circuits";
    const head = [th("#", true), th(circuits ? "Circuit" : "Node"), th("Parent"),
      th("p90 access RTT", true), th("p50", true), th(list.sample_unit === "points with rtt" ? "Points" : "Samples", true),
      th("Retx ratio", true)];
    if (!compact) head.push(th("Retx down / up", true), th("Download", true), th("Upload", true), th("Util. down", true));
    const rows = list.entries.map((e, i) => {
      const name = circuits ? circuitLink(e.id, e.name) : nodeLink(e.id);
      const parent = e.parent ? nodeLink(e.parent) : "–";
      const cells = [td(String(i + 1), "num"), td(name), td(parent),
        td(ms(e.rtt_access_p90_ms), "num " + rttClass(e.rtt_access_p90_ms)), td(ms(e.rtt_access_p50_ms), "num"),
        td(num(e.rtt_samples), "num"), td(pct(e.retransmit_ratio), "num " + retxClass(e.retransmit_ratio))];
      if (!compact) cells.push(td(pct(e.retransmit_ratio_down) + " / " + pct(e.retransmit_ratio_up), "num"),
        td(bps(e.download_bps), "num"), td(bps(e.upload_bps), "num"), td(util(e.download_bps, e.download_max_kbit), "num"));
      const attrs = { "data-id": e.id };
      if (e.rtt_access_p90_ms !== null && e.rtt_access_p90_ms !== undefined) attrs["data-p90-ms"] = String(e.rtt_access_p90_ms);
      if (e.retransmit_ratio !== null && e.retransmit_ratio !== undefined) attrs["data-retransmit-ratio"] = String(e.retransmit_ratio);
      return el("tr", attrs, cells);
    });
    const caption = el("caption", { class: "muted" },
      (circuits ? "Circuits" : "Nodes") + " by " + (list.by === "rtt" ? "p90 access RTT" : "retransmit ratio (both directions)") +
      ", " + windowLabel(list.window) + ": " + num(list.ranked) + " of " + num(list.total) + " with at least " + num(list.min_samples) + " " + list.sample_unit + ".");
    return el("table", { id, "data-kind": list.kind, "data-by": list.by, "data-window": list.window, "data-min-samples": String(list.min_samples) },
      caption, el("thead", {}, el("tr", {}, head)),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: String(head.length), class: "empty" }, "Nothing to rank yet: no " + (circuits ? "circuit" : "node") + " has enough samples in this window."))));
  }

  // ---------- page #/worst ----------
  function worstPage(view) {
    const state = {
      window: sessionStorage.getItem("lqos-worst-window") || "60s",
      by: sessionStorage.getItem("lqos-worst-by") || "rtt",
      limit: Number(sessionStorage.getItem("lqos-worst-limit")) || 25,
    };
    if (!WINDOWS.some(w => w[0] === state.window)) state.window = "60s";
    if (!BY.some(b => b[0] === state.by)) state.by = "rtt";
    const pick = (id, label, options, value, onchange) => el("label", {}, label + " ",
      el("select", { id, onchange }, options.map(([v, l]) => { const o = el("option", { value: v }, l); if (String(v) === String(value)) o.selected = true; return o; })));
    const status = el("span", { class: "muted", role: "status", id: "worst-status" }, "Loading…");
    const circuitsBox = el("div", {}, worstTable("worst-circuits", { kind: "circuits", by: state.by, window: state.window, entries: [], ranked: 0, total: 0, min_samples: 0, sample_unit: "samples" }, false));
    const nodesBox = el("div", {}, worstTable("worst-nodes", { kind: "nodes", by: state.by, window: state.window, entries: [], ranked: 0, total: 0, min_samples: 0, sample_unit: "samples" }, false));
    view.replaceChildren(
      el("h1", {}, "Worst first"),
      el("p", { class: "muted" }, "Which subscribers suffer, and where: a node whose circuits are all slow points at the AP or its backhaul; one slow circuit under a healthy node points at the subscriber's own link or device. Access RTT is shaper → subscriber → shaper (it includes queueing in lqos). Retransmit ratio = TCP retransmits / TCP packets, both directions combined. 1 h and 24 h come from the history store (p90 = mean of the stored per-minute / per-15-minute p90)."),
      el("div", { class: "toolbar", role: "group", "aria-label": "Ranking" },
        pick("worst-window", "Window", WINDOWS, state.window, ev => { state.window = ev.target.value; sessionStorage.setItem("lqos-worst-window", state.window); load(); }),
        pick("worst-by", "Sort by", BY, state.by, ev => { state.by = ev.target.value; sessionStorage.setItem("lqos-worst-by", state.by); load(); }),
        pick("worst-limit", "Show", [[10, "10"], [25, "25"], [50, "50"], [100, "100"]], state.limit, ev => { state.limit = Number(ev.target.value) || 25; sessionStorage.setItem("lqos-worst-limit", String(state.limit)); load(); }),
        el("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh"), status),
      el("h2", {}, "Nodes (sites, APs)"), nodesBox,
      el("h2", {}, "Circuits"), circuitsBox);
    let seq = 0;
    async function load() {
      const mine = ++seq;
      const q = "by=" + state.by + "&window=" + state.window + "&limit=" + state.limit;
      status.textContent = "Loading…";
      try {
        const [c, n] = await Promise.all([get("/worst?kind=circuits&" + q), get("/worst?kind=nodes&" + q)]);
        if (mine !== seq) return;
        circuitsBox.replaceChildren(worstTable("worst-circuits", c, false));
        nodesBox.replaceChildren(worstTable("worst-nodes", n, false));
        status.textContent = "Updated " + new Date(c.computed_unix * 1000).toLocaleTimeString();
      } catch (e) {
        if (mine === seq) status.textContent = "Unavailable: " + (e.message || e);
      }
    }
    load();
    // Live windows refresh every 5 s, history windows every 30 s, while the page is shown.
    let last = Date.now();
    const timer = setInterval(() => {
      if (!view.contains(circuitsBox)) { clearInterval(timer); return; }
      const every = state.window === "1h" || state.window === "24h" ? 30000 : 5000;
      if (Date.now() - last >= every) { last = Date.now(); load(); }
    }, 1000);
  }

  // ---------- dashboard panels ----------
  function distChart(d) {
    const w = 560, h = 200, left = 36, right = 8, top = 12, bottom = 34;
    const buckets = d.buckets || [];
    const max = Math.max(1, ...buckets.map(b => b.circuits));
    const bw = (w - left - right) / Math.max(1, buckets.length);
    const label = b => b.upper_ms === null || b.upper_ms === undefined ? "≥" + b.lower_ms : (b.lower_ms < 1 ? "<" + b.upper_ms : String(b.lower_ms));
    const root = svg("svg", { viewBox: "0 0 " + w + " " + h, class: "dist", role: "img",
      "aria-label": "Circuits by p90 access RTT over the last 60 s: " + buckets.filter(b => b.circuits).map(b => b.circuits + " at " + label(b) + " ms").join(", ") });
    // Whole-circuit gridlines: at most 4 equal integer steps, the axis top a multiple of the step.
    const step = Math.ceil(max / 4), steps = Math.ceil(max / step), axisMax = step * steps;
    for (let i = 0; i <= steps; i++) {
      const y = top + (h - top - bottom) * (1 - i / steps);
      root.append(svg("line", { x1: left, x2: w - right, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "axis" }, String(step * i)));
    }
    buckets.forEach((b, i) => {
      const bh = ((h - top - bottom) * b.circuits) / axisMax;
      const x = left + i * bw;
      const sev = b.lower_ms >= 64 ? "bad" : b.lower_ms >= 16 ? "warn" : "ok";
      const rect = svg("rect", { x: x + 2, y: top + (h - top - bottom) - bh, width: Math.max(1, bw - 4), height: bh, class: "dbar " + sev,
        "data-lower-ms": b.lower_ms, "data-upper-ms": b.upper_ms === null || b.upper_ms === undefined ? "" : b.upper_ms, "data-circuits": b.circuits });
      rect.append(svg("title", {}, b.circuits + " circuit(s), p90 " + (b.upper_ms ? b.lower_ms + "–" + b.upper_ms : "≥ " + b.lower_ms) + " ms"));
      root.append(rect);
      root.append(svg("text", { x: x + bw / 2, y: h - bottom + 14, "text-anchor": "middle", class: "axis" }, label(b)));
    });
    root.append(svg("text", { x: left + (w - left - right) / 2, y: h - 4, "text-anchor": "middle", class: "axis" }, "p90 access RTT, ms (log scale)"));
    return root;
  }
  function unknownTable(u) {
    const rows = (u.entries || []).map(e => el("tr", { "data-address": e.address },
      td(e.address), td(bps(e.rate_bps.down), "num"), td(bps(e.rate_bps.up), "num"),
      td(bytes(e.bytes.down), "num"), td(bytes(e.bytes.up), "num"), td(ago(e.last_seen_unix))));
    return el("table", { id: "unknown-addresses", "data-tracked": String(u.tracked || 0) },
      el("caption", { class: "muted" }, "Addresses that match no circuit (missing from ShapedDevices.csv?), busiest first. Sampled estimates; rates over the last " + (u.window_secs || 10) + " s read" + (u.read_unix ? " (" + ago(u.read_unix) + ")" : ", not read yet") + "."),
      el("thead", {}, el("tr", {}, th("Address"), th("Down rate", true), th("Up rate", true), th("Down bytes", true), th("Up bytes", true), th("Last seen"))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No unmapped traffic seen."))));
  }
  function dashboard(holder) {
    const dist = el("div", { id: "latency-dist", class: "card", "aria-live": "polite" }, el("strong", {}, "Latency distribution"), el("div", { class: "empty" }, "Loading…"));
    const worstC = el("div", { id: "dash-worst-circuits-box" }, el("div", { class: "empty" }, "Loading…"));
    const worstN = el("div", { id: "dash-worst-nodes-box" }, el("div", { class: "empty" }, "Loading…"));
    const unknown = el("div", { id: "unknown-box" }, el("div", { class: "empty" }, "Loading…"));
    holder.replaceChildren(
      el("div", { class: "grid2" }, dist,
        el("div", { class: "card" }, el("strong", {}, "Worst nodes (p90 access RTT, 60 s)"), worstN, el("p", {}, el("a", { href: "#/worst" }, "All worst-first rankings ›")))),
      el("h2", {}, "Worst circuits (p90 access RTT, 60 s)"), worstC,
      el("h2", {}, "Unknown addresses"), unknown);
    async function load() {
      const jobs = [
        get("/qoe/distribution").then(d => {
          dist.setAttribute("data-measured", String(d.circuits_measured));
          dist.replaceChildren(el("strong", {}, "Latency distribution"),
            el("div", { class: "muted" }, num(d.circuits_measured) + " of " + num(d.circuits_total) + " circuits measured (≥ " + d.min_samples + " RTT samples in 60 s)" +
              (d.median_p90_ms !== null && d.median_p90_ms !== undefined ? "; median p90 " + ms(d.median_p90_ms) : "")),
            distChart(d));
        }).catch(e => dist.replaceChildren(el("strong", {}, "Latency distribution"), el("p", { class: "bad" }, e.message || String(e)))),
        get("/worst?kind=circuits&by=rtt&window=60s&limit=5").then(l => worstC.replaceChildren(worstTable("dash-worst-circuits", l, true)))
          .catch(e => worstC.replaceChildren(el("p", { class: "bad" }, e.message || String(e)))),
        get("/worst?kind=nodes&by=rtt&window=60s&limit=5").then(l => worstN.replaceChildren(worstTable("dash-worst-nodes", l, true)))
          .catch(e => worstN.replaceChildren(el("p", { class: "bad" }, e.message || String(e)))),
        get("/unknown?limit=20").then(u => unknown.replaceChildren(unknownTable(u)))
          .catch(e => unknown.replaceChildren(el("p", { class: "bad" }, e.message || String(e)))),
      ];
      await Promise.all(jobs);
    }
    load();
    const timer = setInterval(() => { if (!holder.isConnected) { clearInterval(timer); return; } load(); }, 10000);
  }

  // ---------- node page: latency under load next to utilisation ----------
  function nodeNumbers(n) {
    const q = n && n.qoe;
    const a = q && q.rtt_ms && q.rtt_ms.access;
    const r = q && q.retransmits_60s, t = q && q.tcp_packets_60s;
    const tcp = t ? t.down + t.up : 0;
    return { p90: a ? a.p90 : null, samples: a ? a.samples : 0, retx: tcp > 0 ? (r.down + r.up) / tcp : null };
  }
  function nodeCards(n) {
    const v = nodeNumbers(n);
    const rtt = el("div", { class: "card", id: "node-rtt" }, el("div", { class: "label" }, "p90 access RTT (60 s)"),
      el("div", { class: "value " + rttClass(v.p90) }, ms(v.p90)), el("div", { class: "muted" }, v.samples ? num(v.samples) + " samples" : "no TCP sample"));
    if (v.p90 !== null) rtt.setAttribute("data-p90-ms", String(v.p90));
    const retx = el("div", { class: "card", id: "node-retrans" }, el("div", { class: "label" }, "Retransmits (60 s)"),
      el("div", { class: "value " + retxClass(v.retx) }, pct(v.retx)), el("div", { class: "muted" }, "of TCP packets, both directions"));
    if (v.retx !== null) retx.setAttribute("data-retransmit-ratio", String(v.retx));
    return [rtt, retx];
  }
  function nodeHeaders() { return [th("p90 RTT (60 s)", true), th("Retx (60 s)", true)]; }
  function nodeCells(n) {
    const v = nodeNumbers(n);
    return [td(ms(v.p90), "num " + rttClass(v.p90)), td(pct(v.retx), "num " + retxClass(v.retx))];
  }

  window.lqosInsight = { worstPage, dashboard, nodeCards, nodeHeaders, nodeCells };
})();
