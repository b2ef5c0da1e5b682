"use strict";
// lqos GUI: one page, hash routes, all data from /api/v1 (the same API automation uses).
// DOM is built with el() and textContent only: no operator string ever reaches innerHTML.
(function () {
  const view = document.getElementById("view");
  let session = null;
  let events = null;
  const history = { down: [], up: [], shapedDown: [], shapedUp: [] };
  const HISTORY = 120;
  let lastTick = null;
  let pageTimer = null;
  let current = "";

  // ---------- helpers ----------
  const { el, put, bps, bytes } = window.lqosDom;
  function kbit(v) { return bps((Number(v) || 0) * 1000); }
  function num(v) { return (Number(v) || 0).toLocaleString("en-US"); }
  function ago(unix) {
    if (!unix) return "never";
    const d = Math.round(Date.now() / 1000 - unix);
    const abs = Math.abs(d);
    const s = abs < 120 ? abs + " s" : abs < 7200 ? Math.round(abs / 60) + " min" : Math.round(abs / 3600) + " h";
    return d >= 0 ? s + " ago" : "in " + s;
  }
  function bar(ratio) {
    if (ratio === null || ratio === undefined) return el("span", { class: "muted" }, "–");
    const pct = Math.max(0, Math.min(100, ratio * 100));
    const cls = pct >= 95 ? "full" : pct >= 75 ? "hot" : "";
    return el("span", {}, el("span", { class: "bar", title: pct.toFixed(0) + "%" }, el("span", { class: cls, style: "width:" + pct.toFixed(0) + "%" })), " " + pct.toFixed(0) + "%");
  }
  function circuitLink(c) { return el("a", { href: "#/circuit/" + encodeURIComponent(c.id) }, c.name || c.id); }
  function nodeLink(name) { return el("a", { href: "#/tree/" + encodeURIComponent(name) }, name); }
  function isAdmin() { return session && session.role === "admin"; }
  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => typeof h === "string" ? el("th", {}, h) : h))), el("tbody", {}, rows));
  }
  function td(v, cls) { return el("td", cls ? { class: cls } : {}, v); }

  // ETag of ShapedDevices.csv as last read: edits send it as If-Match, so an edit never
  // overwrites a change saved by someone else meanwhile (the server answers 409 instead).
  let devicesEtag = null;
  async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
    const isDevices = path.startsWith("/shaped-devices");
    if (isDevices && method !== "GET" && devicesEtag) headers["If-Match"] = devicesEtag;
    const r = await fetch("/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
    if (isDevices && r.headers.get("ETag")) devicesEtag = r.headers.get("ETag");
    if (r.status === 401) { location.href = "/login"; throw Object.assign(new Error("login required"), { status: 401 }); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.message) || ("HTTP " + r.status));
      err.status = r.status; err.data = data || {};
      throw err;
    }
    return data;
  }
  function showError(e) { return el("div", { class: "card bad", role: "alert" }, String(e.message || e)); }

  // ---------- live events ----------
  function startEvents() {
    if (events) return;
    events = new EventSource("/api/v1/events");
    events.addEventListener("tick", ev => {
      let t;
      try { t = JSON.parse(ev.data); } catch (e) { return; }
      lastTick = t;
      if (t.status) {
        const s = t.status;
        for (const [k, v] of [["down", s.download_bps], ["up", s.upload_bps], ["shapedDown", s.shaped_download_bps], ["shapedUp", s.shaped_upload_bps]]) {
          history[k].push(v); if (history[k].length > HISTORY) history[k].shift();
        }
      }
      if (current === "dashboard") renderDashboardLive();
    });
  }

  // ---------- dashboard ----------
  function dashboard() {
    put(view, 
      el("h1", {}, "Dashboard"),
      el("div", { class: "cards" },
        card("Download", "d-down"), card("Upload", "d-up"), card("Shaped download", "d-shaped"),
        card("Unshaped download", "d-unshaped"), card("Queue drops", "d-drops"), card("Circuits", "d-circuits")),
      el("div", { class: "grid2" },
        el("div", { class: "card" },
          el("div", { class: "toolbar" }, el("strong", {}, "Throughput (last 2 minutes)"),
            el("span", { class: "legend" }, el("span", {}, el("i", { style: "background:var(--down)" }), "download"), el("span", {}, el("i", { style: "background:var(--up)" }), "upload"),
              el("span", {}, el("i", { style: "background:var(--ok)" }), "shaped download"))),
          el("canvas", { class: "chart", id: "throughput-chart" })),
        el("div", { class: "card", id: "health" }, el("strong", {}, "Health"))),
      el("div", { id: "insight" }),
      el("h2", {}, "Top circuits by current rate"),
      el("div", { id: "top" }, el("div", { class: "empty" }, "Waiting for the first update…")));
    renderDashboardLive();
    if (window.lqosInsight) window.lqosInsight.dashboard(document.getElementById("insight"));
  }
  function card(label, id) { return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, "–")); }
  function setText(id, v) { const e = document.getElementById(id); if (e) e.textContent = v; }
  function renderDashboardLive() {
    const t = lastTick;
    const canvas = document.getElementById("throughput-chart");
    if (canvas) {
      const css = n => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
      window.lqosChart(canvas, [
        { label: "download", color: css("--down"), data: history.down },
        { label: "upload", color: css("--up"), data: history.up },
        { label: "shaped", color: css("--ok"), data: history.shapedDown },
      ], { format: bps, points: HISTORY });
    }
    if (!t) return;
    if (t.error && !t.status) {
      const h = document.getElementById("health");
      if (h) put(h, el("strong", {}, "Health"), el("p", { class: "bad" }, t.error));
      return;
    }
    const s = t.status;
    setText("d-down", bps(s.download_bps));
    setText("d-up", bps(s.upload_bps));
    setText("d-shaped", bps(s.shaped_download_bps));
    setText("d-unshaped", bps(Math.max(0, s.download_bps - s.shaped_download_bps)));
    setText("d-drops", num(s.drops));
    setText("d-circuits", num(s.circuits));
    const h = document.getElementById("health");
    if (h) {
      const sch = s.scheduler;
      put(h, el("strong", {}, "Health"),
        el("div", { class: "kv" },
          el("div", {}, "lqosd"), el("div", { class: "ok" }, "running " + s.version + ", up " + Math.round(s.uptime_secs / 60) + " min"),
          el("div", {}, "Mode"), el("div", {}, s.mode + " (" + s.interfaces.join(", ") + "), " + s.queues + " queues"),
          el("div", {}, "Last apply"), el("div", {}, ago(s.last_apply_unix)),
          el("div", {}, "Last reload"), el("div", {}, s.last_reload || "–"),
          el("div", {}, "Scheduler"), el("div", { class: sch && sch.last_error ? "bad" : "" }, sch ? sch.phase + (sch.last_result ? " — " + sch.last_result : "") : "not reporting"),
          el("div", {}, "Quarantined"), el("div", { class: (s.quarantined || []).length ? "bad" : "ok" }, (s.quarantined || []).length ? (s.quarantined.length + " circuit(s)") : "none"),
          el("div", {}, "Flow table"), el("div", { id: "d-flowtable" }, s.dataplane ? num(s.dataplane.flows_live) + " live flows in " + num(s.dataplane.flow_capacity) + " entries; " + num(s.dataplane.untracked_packets) + " packets found no room" : "–")),
        (s.quarantined || []).length ? el("ul", { class: "bad", id: "quarantine" }, s.quarantined.slice(0, 20).map(quarantineLine)) : null,
        s.warnings.length ? el("ul", { class: "warn" }, s.warnings.map(w => el("li", {}, w))) : el("p", { class: "ok" }, "No warnings."));
    }
    const top = document.getElementById("top");
    if (top) {
      put(top, t.top.length ? table(["Circuit", "Parent", el("th", { class: "num" }, "Download"), el("th", { class: "num" }, "Upload"), el("th", { class: "num" }, "Plan"), "Utilization"],
        t.top.map(c => el("tr", {}, td(circuitLink(c)), td(c.parent), td(bps(c.download_bps), "num"), td(bps(c.upload_bps), "num"),
          td(kbit(c.download_max_kbit) + " / " + kbit(c.upload_max_kbit), "num"), td(bar(c.download_max_kbit ? c.download_bps / (c.download_max_kbit * 1000) : null)))))
        : el("div", { class: "empty" }, "No traffic yet."));
    }
  }

  // ---------- network tree ----------
  async function tree(name) {
    put(view, el("h1", {}, "Network tree"), el("div", { class: "empty" }, "Loading…"));
    try {
      if (!name) {
        const nodes = await api("GET", "/nodes");
        const roots = nodes.filter(n => !n.parent);
        put(view, el("h1", {}, "Network tree"),
          roots.length ? nodeTable(roots) : el("div", { class: "empty" }, "Flat network: no nodes in network.json. See Circuits."));
        return;
      }
      const d = await api("GET", "/nodes/" + encodeURIComponent(name));
      const n = d.node;
      put(view, 
        el("div", { class: "crumbs" }, el("a", { href: "#/tree" }, "Tree"), d.path.map(p => [" / ", nodeLink(p)])),
        el("h1", {}, n.name),
        el("div", { class: "cards" },
          el("div", { class: "card" }, el("div", { class: "label" }, "Configured"), el("div", { class: "value" }, kbit(n.download_max_kbit) + " / " + kbit(n.upload_max_kbit))),
          el("div", { class: "card" }, el("div", { class: "label" }, "Current down"), el("div", { class: "value" }, bps(n.download_bps)), bar(n.utilization_down)),
          el("div", { class: "card" }, el("div", { class: "label" }, "Current up"), el("div", { class: "value" }, bps(n.upload_bps)), bar(n.utilization_up)),
          el("div", { class: "card" }, el("div", { class: "label" }, "Drops"), el("div", { class: "value" }, num(n.drops))),
          window.lqosInsight ? window.lqosInsight.nodeCards(n) : null),
        el("div", { id: "node-history" }),
        el("h2", {}, "Child nodes (" + d.children.length + ")"),
        d.children.length ? nodeTable(d.children) : el("div", { class: "empty" }, "No child nodes."),
        el("h2", {}, "Attached circuits (" + d.circuits.length + ")"),
        d.circuits.length ? circuitTable(d.circuits) : el("div", { class: "empty" }, "No circuits directly under this node."));
      if (window.lqosHistory) window.lqosHistory(document.getElementById("node-history"), "node", n.name);
    } catch (e) { put(view, el("h1", {}, "Network tree"), showError(e)); }
  }
  function nodeTable(nodes) {
    return table(["Node", el("th", { class: "num" }, "Configured down / up"), el("th", { class: "num" }, "Download"), "Util. down", el("th", { class: "num" }, "Upload"), "Util. up", window.lqosInsight ? window.lqosInsight.nodeHeaders() : [], el("th", { class: "num" }, "Children"), el("th", { class: "num" }, "Circuits")],
      nodes.map(n => el("tr", {}, td(nodeLink(n.name)), td(kbit(n.download_max_kbit) + " / " + kbit(n.upload_max_kbit), "num"), td(bps(n.download_bps), "num"), td(bar(n.utilization_down)),
        td(bps(n.upload_bps), "num"), td(bar(n.utilization_up)), window.lqosInsight ? window.lqosInsight.nodeCells(n) : [], td(num(n.children.length), "num"), td(num(n.circuits), "num"))));
  }
  function circuitTable(list) {
    return table(["Circuit", "ID", "Parent", el("th", { class: "num" }, "Plan down / up"), el("th", { class: "num" }, "Download"), el("th", { class: "num" }, "Upload"), el("th", { class: "num" }, "Drops"), "Addresses"],
      list.map(c => el("tr", {}, td(circuitLink(c)), td(c.id), td(c.parent ? nodeLink(c.parent) : "–"), td(kbit(c.download_max_kbit) + " / " + kbit(c.upload_max_kbit), "num"),
        td(bps(c.download_bps), "num"), td(bps(c.upload_bps), "num"), td(num(c.drops), "num"), td(c.addresses.slice(0, 2).join(", ") + (c.addresses.length > 2 ? " +" + (c.addresses.length - 2) : "")))));
  }

  // ---------- circuits list ----------
  const listState = { search: "", sort: "name", order: "asc", page: 1, per_page: 50 };
  async function circuits() {
    const search = el("input", { type: "search", id: "circuit-search", placeholder: "Search name, ID, parent, address…", value: listState.search, size: 40 });
    const holder = el("div", { id: "circuit-list" }, el("div", { class: "empty" }, "Loading…"));
    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { listState.search = search.value; listState.page = 1; load(); }, 250); });
    put(view, el("h1", {}, "Circuits"), el("div", { class: "toolbar" }, search), holder);
    const cols = [["name", "Circuit"], ["id", "ID"], ["parent", "Parent"], ["download_max", "Plan down"], ["upload_max", "Plan up"], ["download_bps", "Download"], ["upload_bps", "Upload"], ["drops", "Drops"]];
    async function load() {
      const q = new URLSearchParams({ search: listState.search, sort: listState.sort, order: listState.order, page: listState.page, per_page: listState.per_page });
      let d;
      try { d = await api("GET", "/circuits?" + q); } catch (e) { put(holder, showError(e)); return; }
      const head = cols.map(([k, label]) => el("th", { class: "sortable" + (k.endsWith("bps") || k.endsWith("max") || k === "drops" ? " num" : ""), "data-sort": k,
        onclick: () => { if (listState.sort === k) listState.order = listState.order === "asc" ? "desc" : "asc"; else { listState.sort = k; listState.order = k.endsWith("bps") || k === "drops" ? "desc" : "asc"; } listState.page = 1; load(); } },
        label + (listState.sort === k ? (listState.order === "asc" ? " ▲" : " ▼") : "")));
      const rows = d.items.map(c => el("tr", {}, td(circuitLink(c)), td(c.id), td(c.parent ? nodeLink(c.parent) : "–"), td(kbit(c.download_max_kbit), "num"), td(kbit(c.upload_max_kbit), "num"),
        td(bps(c.download_bps), "num"), td(bps(c.upload_bps), "num"), td(num(c.drops), "num")));
      put(holder, 
        d.items.length ? table(head, rows) : el("div", { class: "empty" }, "No circuit matches."),
        el("div", { class: "pager" },
          el("button", { class: "secondary", disabled: listState.page <= 1, onclick: () => { listState.page--; load(); } }, "‹ Prev"),
          el("span", { id: "circuit-page" }, "Page " + d.page + " of " + Math.max(1, d.pages) + " — " + num(d.total) + " circuits"),
          el("button", { class: "secondary", disabled: d.page >= d.pages, onclick: () => { listState.page++; load(); } }, "Next ›")));
    }
    await load();
  }

  // ---------- one circuit ----------
  async function circuit(id) {
    const hist = { down: [], up: [] };
    let c;
    try { c = await api("GET", "/circuits/" + encodeURIComponent(id)); } catch (e) { put(view, el("h1", {}, "Circuit " + id), showError(e)); return; }
    let devices = null;
    try { devices = await api("GET", "/shaped-devices/" + encodeURIComponent(id)); } catch (e) { devices = null; }
    const canvas = el("canvas", { class: "chart", id: "circuit-chart" });
    put(view, 
      el("div", { class: "crumbs" }, el("a", { href: "#/circuits" }, "Circuits"), c.parent ? [" / ", nodeLink(c.parent)] : null),
      el("h1", { id: "circuit-title" }, c.name + " (" + c.id + ")"),
      isAdmin() && devices ? el("p", {}, el("a", { class: "btn", href: "#/devices/edit/" + encodeURIComponent(id), id: "edit-circuit" }, "Edit circuit")) : null,
      el("div", { class: "cards" },
        card("Plan (down / up)", "c-plan"), card("Download", "c-down"), card("Upload", "c-up"), card("Drops", "c-drops"), card("Backlog", "c-backlog"), card("Total bytes (down / up)", "c-bytes")),
      window.lqosCircuit ? window.lqosCircuit.cards() : null,
      el("div", { class: "card" }, el("strong", {}, "Live throughput"), canvas),
      el("div", { id: "circuit-history" }),
      window.lqosCircuit ? window.lqosCircuit.sections() : null,
      el("h2", {}, "Addresses"), el("p", {}, c.addresses.join(", ") || "–"),
      el("h2", {}, "Devices"),
      devices ? table(["Device ID", "Name", "MAC", "IPv4", "IPv6", "Comment"], devices.devices.map(d => el("tr", {}, td(d.device_id), td(d.device_name), td(d.mac), td(d.ipv4), td(d.ipv6), td(d.comment))))
        : el("div", { class: "empty" }, "Device details are not available (ShapedDevices.csv not readable)."),
      el("h2", {}, "Queue"), el("div", { class: "kv" }, el("div", {}, "Class"), el("div", {}, c.class || "–")));
    function update(c) {
      setText("c-plan", kbit(c.download_max_kbit) + " / " + kbit(c.upload_max_kbit));
      setText("c-down", bps(c.download_bps)); setText("c-up", bps(c.upload_bps));
      setText("c-drops", num(c.drops)); setText("c-backlog", bytes(c.backlog_bytes));
      setText("c-bytes", bytes(c.download_bytes) + " / " + bytes(c.upload_bytes));
      if (window.lqosCircuit) window.lqosCircuit.update(c);
      hist.down.push(c.download_bps); hist.up.push(c.upload_bps);
      if (hist.down.length > HISTORY) { hist.down.shift(); hist.up.shift(); }
      const css = n => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
      window.lqosChart(canvas, [{ color: css("--down"), data: hist.down }, { color: css("--up"), data: hist.up }], { format: bps, points: HISTORY, minMax: c.download_max_kbit * 1000 });
    }
    update(c);
    if (window.lqosHistory) window.lqosHistory(document.getElementById("circuit-history"), "circuit", c.id);
    if (window.lqosCircuit) window.lqosCircuit.start(c.id);
    const route = location.hash;
    pageTimer = setInterval(async () => {
      if (location.hash !== route) return;
      try { update(await api("GET", "/circuits/" + encodeURIComponent(id))); } catch (e) { /* keep last numbers */ }
    }, 1000);
  }

  // ---------- shaped devices editor ----------
  const devState = { search: "", page: 1 };
  async function devices() {
    const holder = el("div", {}, el("div", { class: "empty" }, "Loading…"));
    const search = el("input", { type: "search", placeholder: "Search circuits…", value: devState.search, size: 30 });
    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { devState.search = search.value; devState.page = 1; load(); }, 250); });
    put(view, el("h1", {}, "Shaped devices"),
      el("div", { class: "toolbar" }, search, isAdmin() ? el("a", { class: "btn", href: "#/devices/new" }, "Add circuit") : el("span", { class: "muted" }, "Read-only: admins can edit.")), holder);
    async function load() {
      let d;
      try { d = await api("GET", "/shaped-devices?" + new URLSearchParams({ search: devState.search, page: devState.page })); } catch (e) { put(holder, showError(e)); return; }
      put(holder, 
        d.read_only ? el("div", { class: "card bad", role: "status" }, d.read_only) : "",
        table(["Circuit ID", "Circuit name", "Parent", el("th", { class: "num" }, "Down min/max Mbps"), el("th", { class: "num" }, "Up min/max Mbps"), el("th", { class: "num" }, "Devices"), ""],
          d.items.map(c => el("tr", {}, td(c.circuit_id), td(c.circuit_name), td(c.parent_node || "–"), td(c.download_min_mbps + " / " + c.download_max_mbps, "num"), td(c.upload_min_mbps + " / " + c.upload_max_mbps, "num"),
            td(num(c.devices.length), "num"), td(isAdmin() ? el("a", { href: "#/devices/edit/" + encodeURIComponent(c.circuit_id) }, "Edit") : el("a", { href: "#/circuit/" + encodeURIComponent(c.circuit_id) }, "View"))))),
        el("div", { class: "pager" },
          el("button", { class: "secondary", disabled: devState.page <= 1, onclick: () => { devState.page--; load(); } }, "‹ Prev"),
          el("span", {}, "Page " + d.page + " of " + Math.max(1, d.pages) + " — " + num(d.total) + " circuits"),
          el("button", { class: "secondary", disabled: d.page >= d.pages, onclick: () => { devState.page++; load(); } }, "Next ›")));
    }
    await load();
  }
  const circuitFields = [["circuit_id", "Circuit ID"], ["circuit_name", "Circuit Name"], ["parent_node", "Parent Node"], ["download_min_mbps", "Download Min Mbps"],
    ["upload_min_mbps", "Upload Min Mbps"], ["download_max_mbps", "Download Max Mbps"], ["upload_max_mbps", "Upload Max Mbps"], ["sqm", "sqm"]];
  const deviceFields = [["device_id", "Device ID"], ["device_name", "Device Name"], ["mac", "MAC"], ["ipv4", "IPv4"], ["ipv6", "IPv6"], ["comment", "Comment"]];
  async function editCircuit(id) {
    let form;
    if (id) {
      try { form = await api("GET", "/shaped-devices/" + encodeURIComponent(id)); } catch (e) { put(view, el("h1", {}, "Edit circuit"), showError(e)); return; }
    } else {
      form = { circuit_id: "", circuit_name: "", parent_node: "", download_min_mbps: "1", upload_min_mbps: "1", download_max_mbps: "100", upload_max_mbps: "20", sqm: "", devices: [{ device_id: "", device_name: "", mac: "", ipv4: "", ipv6: "", comment: "" }] };
    }
    const inputs = {};
    const errs = {};
    const fieldBox = ([key, label]) => {
      const input = el("input", { name: key, id: "f-" + key, "data-field": label, value: form[key] == null ? "" : String(form[key]) });
      inputs[label] = input;
      errs[label] = el("span", { class: "err", "data-error-for": label });
      return el("label", {}, label, input, errs[label]);
    };
    const devBody = el("tbody", {});
    function devRow(d, i) {
      return el("tr", {}, deviceFields.map(([key, label]) => {
        const name = "devices[" + i + "]." + label;
        const input = el("input", { "data-dev": i, "data-key": key, "data-field": name, value: d[key] || "" });
        inputs[name] = input; errs[name] = el("div", { class: "err", "data-error-for": name });
        return el("td", {}, input, errs[name]);
      }), el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => { collect(); form.devices.splice(i, 1); renderDevices(); } }, "Remove")));
    }
    function renderDevices() {
      for (const k of Object.keys(inputs)) if (k.startsWith("devices[")) { delete inputs[k]; delete errs[k]; }
      put(devBody, ...form.devices.map(devRow));
    }
    function collect() {
      for (const [key, label] of circuitFields) form[key] = inputs[label].value;
      form.devices = [...devBody.querySelectorAll("tr")].map(tr => {
        const d = {};
        for (const input of tr.querySelectorAll("input")) d[input.dataset.key] = input.value;
        return d;
      });
    }
    const generalErr = el("div", { class: "err", role: "alert", id: "form-errors" });
    const result = el("div", { class: "report", id: "save-result" });
    async function save(ev) {
      ev.preventDefault();
      collect();
      for (const e of Object.values(errs)) e.textContent = "";
      for (const i of Object.values(inputs)) i.classList.remove("invalid");
      generalErr.textContent = ""; put(result, el("span", { class: "muted" }, "Saving and reloading…"));
      try {
        const r = id ? await api("PUT", "/shaped-devices/" + encodeURIComponent(id), form) : await api("POST", "/shaped-devices", form);
        put(result, el("p", { class: "ok", id: "saved" }, "Saved to ShapedDevices.csv."), reloadReport(r.reload, r.reload_error));
        if (!id) { id = form.circuit_id; }
      } catch (e) {
        put(result, );
        const list = (e.data && e.data.errors) || [];
        const other = [];
        for (const fe of list) {
          if (errs[fe.field]) { errs[fe.field].textContent = fe.message; inputs[fe.field].classList.add("invalid"); } else other.push(fe.field + ": " + fe.message);
        }
        for (const dg of (e.data && e.data.diagnostics) || []) if (dg.severity === "error") other.push((dg.field ? dg.field + ": " : "") + dg.message);
        generalErr.textContent = other.length ? other.join("\n") : (list.length ? "Fix the marked fields." : e.message);
      }
    }
    async function remove() {
      if (!confirm("Delete circuit " + id + " and its devices?")) return;
      try {
        const r = await api("DELETE", "/shaped-devices/" + encodeURIComponent(id));
        put(view, el("h1", {}, "Deleted " + id), reloadReport(r.reload, r.reload_error), el("p", {}, el("a", { href: "#/devices" }, "Back to shaped devices")));
      } catch (e) { generalErr.textContent = e.message; }
    }
    put(view, 
      el("div", { class: "crumbs" }, el("a", { href: "#/devices" }, "Shaped devices")),
      el("h1", {}, id ? "Edit circuit " + id : "Add circuit"),
      el("form", { id: "circuit-form", onsubmit: save },
        el("div", { class: "form" }, circuitFields.map(fieldBox)),
        el("h2", {}, "Devices"),
        el("table", { class: "devices" }, el("thead", {}, el("tr", {}, deviceFields.map(([, l]) => el("th", {}, l)), el("th", {}, ""))), devBody),
        el("p", {}, el("button", { type: "button", class: "secondary", onclick: () => { collect(); form.devices.push({}); renderDevices(); } }, "Add device")),
        generalErr,
        el("p", {}, el("button", { type: "submit", id: "save-circuit" }, "Save and apply"), " ", id ? el("button", { type: "button", class: "danger", onclick: remove }, "Delete circuit") : null),
        result));
    renderDevices();
  }
  function quarantineLine(q) {
    return el("li", {}, (q.circuit_id ? "circuit " + q.circuit_id : "row without Circuit ID") + " (" + q.file + ":" + q.line + "): " +
      (q.action === "generated_parent" ? "shaped under a generated parent" : "left unshaped") + " — " + q.reason);
  }
  function reloadReport(r, err) {
    if (err) return el("div", { class: "card bad", id: "reload-report" }, "Reload failed: " + err);
    if (!r) return el("div", { class: "card muted", id: "reload-report" }, "No reload report.");
    const c = r.counts || {};
    return el("div", { class: "card", id: "reload-report" },
      el("strong", { class: r.applied ? "ok" : "bad" }, r.applied ? "Applied" : (r.dry_run ? "Not applied (dry_run = true in lqos.conf)" : "Not applied")),
      el("div", { class: "kv" },
        el("div", {}, "Mode"), el("div", {}, r.full_rebuild ? "full rebuild" : "incremental"),
        el("div", {}, "Plan"), el("div", {}, num(r.circuits) + " circuits, " + num(r.nodes) + " nodes, " + r.queues + " queues"),
        el("div", {}, "Changes"), el("div", {}, c.added + " added, " + c.changed + " changed, " + c.deleted + " deleted; mappings +" + c.mappings_added + " −" + c.mappings_removed),
        el("div", {}, "Time"), el("div", {}, "validate " + r.validate_ms + " ms, plan " + r.plan_ms + " ms, apply " + r.apply_ms + " ms")),
      (r.quarantined || []).length ? el("ul", { class: "bad" }, r.quarantined.map(quarantineLine)) : null,
      (r.warnings || []).length ? el("ul", { class: "warn" }, r.warnings.map(w => el("li", {}, w))) : null,
      (r.diagnostics || []).length ? el("ul", {}, r.diagnostics.map(d => el("li", { class: d.severity === "warning" ? "warn" : "bad" }, d.file + (d.line ? ":" + d.line : "") + ": " + (d.field ? d.field + ": " : "") + d.message))) : null);
  }

  // ---------- configuration ----------
  async function config() {
    put(view, el("h1", {}, "Configuration"), el("div", { class: "empty" }, "Loading…"));
    let d;
    try { d = await api("GET", "/config"); } catch (e) { put(view, el("h1", {}, "Configuration"), showError(e)); return; }
    const sections = [];
    function walk(obj, prefix, rows) {
      for (const [k, v] of Object.entries(obj)) {
        if (v && typeof v === "object" && !Array.isArray(v)) walk(v, prefix + k + ".", rows);
        else rows.push(el("tr", {}, td(prefix + k), td(Array.isArray(v) ? v.join(", ") : v === null ? "–" : String(v))));
      }
    }
    for (const [section, body] of Object.entries(d.config)) {
      const rows = [];
      if (body && typeof body === "object" && !Array.isArray(body)) walk(body, "", rows); else rows.push(el("tr", {}, td(section), td(body === null ? "–" : String(body))));
      sections.push(el("h2", {}, section), table(["Key", "Value"], rows));
    }
    const editor = isAdmin() ? commonEditor(d.common) : el("p", { class: "muted" }, "Read-only: admins can edit the common settings.");
    put(view, el("h1", {}, "Configuration"), el("p", { class: "muted" }, d.path + " — secrets are masked."), editor, sections);
  }
  function commonEditor(common) {
    const inputs = {}, errs = {};
    const result = el("div", { class: "report" });
    const boxes = Object.entries(common).map(([k, v]) => {
      inputs[k] = el("input", { name: k, value: v === null ? "" : String(v) });
      errs[k] = el("span", { class: "err" });
      return el("label", {}, k, inputs[k], errs[k]);
    });
    return el("form", { class: "card", id: "config-form", onsubmit: async ev => {
      ev.preventDefault();
      const body = {};
      for (const [k, i] of Object.entries(inputs)) body[k] = i.value;
      for (const e of Object.values(errs)) e.textContent = "";
      try {
        await api("PUT", "/config", body);
        put(result, el("p", { class: "ok" }, "Saved. Settings that lqosd reads at start need a restart."));
      } catch (e) {
        for (const fe of (e.data && e.data.errors) || []) if (errs[fe.field]) errs[fe.field].textContent = fe.message;
        put(result, el("p", { class: "bad" }, e.message));
      }
    } }, el("strong", {}, "Common settings"), el("div", { class: "form" }, boxes), el("p", {}, el("button", { type: "submit" }, "Save settings")), result);
  }

  // ---------- scheduler ----------
  async function scheduler() {
    let d;
    try { d = await api("GET", "/scheduler"); } catch (e) { put(view, el("h1", {}, "Scheduler"), showError(e)); return; }
    const s = d.scheduler;
    const report = el("div", { id: "reload-result" }, d.last_report ? reloadReport(d.last_report) : null);
    const full = el("input", { type: "checkbox", id: "full-reload" });
    put(view, el("h1", {}, "Scheduler & reload"),
      el("div", { class: "card" }, s ? el("div", { class: "kv", id: "scheduler-state" },
        el("div", {}, "Phase"), el("div", {}, s.phase),
        el("div", {}, "Integration"), el("div", {}, s.integration),
        el("div", {}, "Last run"), el("div", {}, ago(s.last_run_unix)),
        el("div", {}, "Last result"), el("div", { class: s.last_result === "ok" ? "ok" : "bad" }, s.last_result || "–"),
        el("div", {}, "Next run"), el("div", {}, ago(s.next_run_unix)),
        el("div", {}, "Last error"), el("div", { class: s.last_error ? "bad" : "" }, s.last_error || "none"))
        : el("p", { class: "muted" }, "The scheduler has not reported yet."),
        el("div", { class: "kv" }, el("div", {}, "Last reload"), el("div", {}, d.last_reload || "–"), el("div", {}, "Last apply"), el("div", {}, ago(d.last_apply_unix)))),
      el("h2", {}, "Reload"),
      isAdmin() ? el("div", { class: "toolbar" }, el("button", { id: "reload-button", onclick: async ev => {
        ev.target.disabled = true;
        put(report, el("span", { class: "muted" }, "Reloading…"));
        try { put(report, reloadReport(await api("POST", "/reload", { full: full.checked }))); }
        catch (e) { put(report, el("div", { class: "card bad" }, e.message), e.data && e.data.diagnostics ? reloadReport({ diagnostics: e.data.diagnostics, counts: {} }) : null); }
        ev.target.disabled = false;
      } }, "Reload now"), el("label", {}, full, " full rebuild")) : el("p", { class: "muted" }, "Only admins can reload."),
      report);
  }

  // ---------- router ----------
  async function route() {
    clearInterval(pageTimer); pageTimer = null;
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    const page = parts[0] || "dashboard";
    current = page;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page || (page === "circuit" && a.dataset.page === "circuits"));
    switch (page) {
      case "tree": return tree(parts[1]);
      case "circuits": return circuits();
      case "worst": return window.lqosInsight ? window.lqosInsight.worstPage(view) : dashboard();
      case "circuit": return circuit(parts.slice(1).join("/"));
      case "devices":
        if (parts[1] === "new") return editCircuit(null);
        if (parts[1] === "edit") return editCircuit(parts.slice(2).join("/"));
        return devices();
      case "config": return config();
      case "scheduler": return scheduler();
      case "users": return window.lqosUsers.render(view, { api, el, session, showError });
      default: current = "dashboard"; return dashboard();
    }
  }

  function applyTheme(t) {
    document.documentElement.dataset.theme = t;
    document.getElementById("theme").textContent = t === "dark" ? "Light mode" : "Dark mode";
    localStorage.setItem("lqos-theme", t);
    if (current === "dashboard") renderDashboardLive();
  }

  async function boot() {
    applyTheme(localStorage.getItem("lqos-theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
    // Nothing loads without the session. A network error or a 5xx (lqos_web restarting, a
    // link going down) is shown and tried again, 1 s, 2 s, … 10 s apart, instead of leaving
    // "Loading…" up for good; a 401 has already sent the browser to the login page.
    for (let wait = 1000; ; wait = Math.min(wait * 2, 10000)) {
      try { session = await api("GET", "/session"); break; } catch (e) {
        if (e.status === 401) return;
        put(view, el("div", { class: "card bad", role: "alert" },
          "Could not reach lqos_web (" + (e.message || e) + "); trying again in " + wait / 1000 + " s."));
        await new Promise(r => setTimeout(r, wait));
      }
    }
    document.getElementById("who").textContent = session.username + " (" + session.role + ")";
    document.getElementById("nav-users").hidden = !isAdmin();
    document.getElementById("theme").addEventListener("click", () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
    document.getElementById("logout").addEventListener("click", async () => { try { await api("POST", "/logout"); } finally { location.href = "/login"; } });
    window.addEventListener("hashchange", route);
    window.addEventListener("resize", () => { if (current === "dashboard") renderDashboardLive(); });
    startEvents();
    route();
  }
  boot();
})();
