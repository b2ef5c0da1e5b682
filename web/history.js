"use strict";
// History charts for a circuit or node: window.lqosHistory(container, kind, id).
// Throughput, RTT (access / upstream, p50 and p90) and retransmits per point, from
// GET /api/v1/{circuits|nodes}/{id}/history?range=…; a range selector (buttons, keyboard
// reachable) picks 10m … 90d. Gaps (lqosd was not recording) are drawn as gaps; a quiet
// circuit's ticks are zero points.
(function () {
  const RANGES = [["10m", "10 min"], ["1h", "1 h"], ["24h", "24 h"], ["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"]];
  const { el, bps } = window.lqosDom;
  function css(n) { return getComputedStyle(document.documentElement).getPropertyValue(n).trim(); }
  function ms(v) { return (Number(v) || 0).toFixed(v >= 100 ? 0 : 1) + " ms"; }
  function count(v) { return String(Math.round(Number(v) || 0)); }
  function legend(items) {
    return el("div", { class: "legend" }, items.map(([label, color]) => el("span", {}, el("i", { class: "swatch", "data-color": color }), label)));
  }
  function paintSwatches(root) {
    for (const i of root.querySelectorAll("i.swatch")) i.style.background = css(i.dataset.color) || i.dataset.color;
  }
  // Points on a regular grid from now - range to now: missing steps are null (gaps).
  function grid(series, pick) {
    const step = series.step_secs || 1;
    const pts = series.points || [];
    if (!pts.length) return [];
    const first = pts[0].t, last = pts[pts.length - 1].t;
    const n = Math.min(20000, Math.floor((last - first) / step) + 1);
    const out = new Array(n).fill(null);
    for (const p of pts) {
      const i = Math.round((p.t - first) / step);
      if (i >= 0 && i < n) out[i] = pick(p);
    }
    return out;
  }
  window.lqosHistory = function (container, kind, id) {
    const path = (kind === "node" ? "/api/v1/nodes/" : "/api/v1/circuits/") + encodeURIComponent(id) + "/history?range=";
    let range = sessionStorage.getItem("lqos-history-range") || "1h";
    if (!RANGES.some(r => r[0] === range)) range = "1h";
    const buttons = RANGES.map(([r, label]) => el("button", { type: "button", class: "secondary", "data-range": r, "aria-pressed": String(r === range), onclick: () => load(r) }, label));
    const status = el("span", { class: "muted", id: kind + "-history-status", role: "status" }, "Loading…");
    const tput = el("canvas", { class: "chart", id: kind + "-history-throughput", "aria-label": "Throughput history" });
    const rtt = el("canvas", { class: "chart", id: kind + "-history-rtt", "aria-label": "RTT history" });
    const retx = el("canvas", { class: "chart small", id: kind + "-history-retransmits", "aria-label": "Retransmits history" });
    const body = el("div", { class: "history-body" },
      el("div", { class: "card" }, el("strong", {}, "Throughput"), legend([["Download", "--down"], ["Upload", "--up"]]), tput),
      el("div", { class: "card" }, el("strong", {}, "TCP round-trip time"), legend([["Access p50", "--down"], ["Access p90", "--bad"], ["Upstream p50", "--up"], ["Upstream p90", "--warn"]]), rtt),
      el("div", { class: "card" }, el("strong", {}, "TCP retransmits per point"), legend([["Down", "--down"], ["Up", "--up"]]), retx));
    const empty = el("div", { class: "empty", hidden: true }, "No history stored for this range yet.");
    container.replaceChildren(el("h2", {}, "History"),
      el("div", { class: "toolbar", role: "group", "aria-label": "History range" }, buttons, status), empty, body);
    paintSwatches(container);
    let last = null;
    function draw() {
      if (!last) return;
      const s = last;
      const has = (s.points || []).length > 0;
      empty.hidden = has; body.hidden = !has;
      if (!has) return;
      const x = "last " + RANGES.find(r => r[0] === s.range)[1] + ", one point per " + (s.step_secs >= 60 ? (s.step_secs / 60) + " min" : s.step_secs + " s");
      const line = (pick) => grid(s, pick);
      window.lqosChart(tput, [
        { color: css("--down"), data: line(p => p.down_bps) },
        { color: css("--up"), data: line(p => p.up_bps) }], { format: bps, xLabel: x });
      const r = (path, q) => line(p => p[path] ? p[path][q] : null);
      window.lqosChart(rtt, [
        { color: css("--down"), data: r("rtt_access_ms", "p50") },
        { color: css("--bad"), data: r("rtt_access_ms", "p90") },
        { color: css("--up"), data: r("rtt_upstream_ms", "p50") },
        { color: css("--warn"), data: r("rtt_upstream_ms", "p90") }], { format: ms, xLabel: x });
      window.lqosChart(retx, [
        { color: css("--down"), data: line(p => p.retransmits.down) },
        { color: css("--up"), data: line(p => p.retransmits.up) }], { format: count, xLabel: x });
    }
    async function load(r) {
      range = r;
      sessionStorage.setItem("lqos-history-range", r);
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.range === r));
      status.textContent = "Loading…";
      try {
        const resp = await fetch(path + encodeURIComponent(r), { credentials: "same-origin" });
        const data = await resp.json().catch(() => null);
        if (!resp.ok) throw new Error((data && data.message) || ("HTTP " + resp.status));
        if (range !== r) return;
        last = data;
        status.textContent = data.points.length + " points";
        draw();
      } catch (e) {
        status.textContent = "History unavailable: " + (e.message || e);
        last = null; body.hidden = true; empty.hidden = true;
      }
    }
    load(range);
    // Redraw on theme change or resize; reload the short range every 10 s while shown.
    const obs = new MutationObserver(() => { paintSwatches(container); draw(); });
    obs.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.addEventListener("resize", draw);
    const timer = setInterval(() => {
      if (!container.isConnected) { clearInterval(timer); obs.disconnect(); window.removeEventListener("resize", draw); return; }
      if (range === "10m") load(range);
    }, 10000);
  };
})();
