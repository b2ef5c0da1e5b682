"use strict";
// The embedded API browser (/api-docs): reads /api/v1/openapi.json (generated from the
// handlers) and lists every operation grouped by tag, with its parameters, request body,
// answers and schemas. A logged-in user can try GET operations (their own session cookie;
// nothing else is sent anywhere). DOM built with textContent only; no CDN, no inline script.
(function () {
  if (localStorage.getItem("lqos-theme") === "dark") document.documentElement.dataset.theme = "dark";
  const root = document.getElementById("api-docs");
  const METHODS = ["get", "post", "put", "patch", "delete"];
  const MAX_SHOWN = 200000;
  let doc = null;
  let session = null;

  const el = window.lqosDom.el;
  function refName(ref) { return String(ref).replace("#/components/schemas/", ""); }
  function schemas() { return (doc.components && doc.components.schemas) || {}; }
  function anchor(name) { return "schema-" + name.replace(/[^A-Za-z0-9_-]/g, "_"); }

  // A one-line type: `integer (int64)`, `[CircuitStat]`, `"a" | "b"`, `CircuitStat | null`.
  function typeOf(s) {
    if (!s) return "any";
    if (s.$ref) return el("a", { href: "#" + anchor(refName(s.$ref)) }, refName(s.$ref));
    if (s.enum) return s.enum.map(v => JSON.stringify(v)).join(" | ");
    for (const k of ["oneOf", "anyOf", "allOf"]) {
      if (s[k]) return s[k].map(typeOf).reduce((a, b, i) => i ? [a, k === "allOf" ? " & " : " | ", b] : [b], []);
    }
    let t = Array.isArray(s.type) ? s.type.join(" | ") : (s.type || "object");
    if (s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) return ["[", typeOf(s.items), "]", Array.isArray(s.type) && s.type.includes("null") ? " | null" : ""];
    if (s.format) t += " (" + s.format + ")";
    return t;
  }

  // Properties of an object schema as nested lines; refs are followed `depth` levels.
  function schemaTree(s, depth, seen) {
    if (!s) return null;
    if (s.$ref) {
      const name = refName(s.$ref);
      if (depth <= 0 || seen.has(name)) return el("div", { class: "api-schema" }, typeOf(s));
      return el("div", {}, el("div", { class: "muted" }, typeOf(s)), schemaTree(schemas()[name], depth - 1, new Set([...seen, name])));
    }
    if (s.allOf) return el("div", {}, s.allOf.map(x => schemaTree(x, depth, seen)));
    if (s.oneOf || s.anyOf) return el("div", { class: "api-schema" }, typeOf(s));
    if (s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) return el("div", {}, el("div", { class: "muted" }, "array of"), schemaTree(s.items, depth, seen));
    if (!s.properties) return el("div", { class: "api-schema" }, typeOf(s), s.description ? el("span", { class: "muted" }, " — " + s.description) : null);
    const req = new Set(s.required || []);
    return el("div", { class: "api-schema" }, Object.entries(s.properties).map(([name, p]) => {
      const nested = p.$ref || p.properties || p.allOf || (p.items && (p.items.$ref || p.items.properties));
      return el("div", {},
        el("strong", {}, name), req.has(name) ? el("span", { class: "req", title: "required" }, "*") : null, ": ", typeOf(p),
        p.description ? el("span", { class: "muted" }, " — " + p.description) : null,
        nested && depth > 0 ? schemaTree(p.$ref ? p : (p.items || p), depth - 1, seen) : null);
    }));
  }

  function params(op) {
    const list = op.parameters || [];
    if (!list.length) return null;
    return el("div", {}, el("h3", {}, "Parameters"),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description"))),
        el("tbody", {}, list.map(p => el("tr", {}, el("td", {}, p.name, p.required ? el("span", { class: "req bad", title: "required" }, "*") : null), el("td", {}, p.in), el("td", {}, typeOf(p.schema)), el("td", {}, p.description || ""))))));
  }

  function body(op) {
    const rb = op.requestBody;
    if (!rb || !rb.content) return null;
    return el("div", {}, el("h3", {}, "Request body" + (rb.required ? "" : " (optional)")),
      Object.entries(rb.content).map(([ct, c]) => el("div", {}, el("div", { class: "muted" }, ct), schemaTree(c.schema, 2, new Set()))));
  }

  function responses(op) {
    return el("div", {}, el("h3", {}, "Answers"),
      Object.entries(op.responses || {}).map(([code, r]) => el("div", {},
        el("strong", {}, code), " ", r.description || "",
        Object.entries(r.content || {}).map(([ct, c]) => el("div", {}, el("span", { class: "muted" }, ct + ": "), typeOf(c.schema))))));
  }

  function tryIt(path, op) {
    const out = el("pre", { class: "api-out", hidden: true });
    const isStream = Object.values(op.responses || {}).some(r => r.content && r.content["text/event-stream"]);
    if (isStream) return el("p", { class: "muted" }, "A live stream: open it with EventSource (the dashboard does).");
    if (!session) return el("p", { class: "muted" }, el("a", { href: "/login" }, "Log in"), " to try this operation.");
    const inputs = (op.parameters || []).filter(p => p.in === "path" || p.in === "query").map(p => {
      const input = el("input", { name: p.name, "data-in": p.in, placeholder: p.name + (p.required ? " (required)" : ""), "aria-label": p.name });
      return input;
    });
    const send = el("button", { type: "submit" }, "Send GET");
    const form = el("form", { class: "toolbar", onsubmit: async ev => {
      ev.preventDefault();
      let url = path;
      const q = new URLSearchParams();
      for (const i of inputs) {
        if (i.dataset.in === "path") url = url.replace("{" + i.name + "}", encodeURIComponent(i.value));
        else if (i.value !== "") q.set(i.name, i.value);
      }
      const full = doc.servers[0].url + url + (q.toString() ? "?" + q : "");
      out.hidden = false;
      out.textContent = "GET " + full + " …";
      try {
        const r = await fetch(full, { credentials: "same-origin", headers: { Accept: "application/json" } });
        let text = await r.text();
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
        if (text.length > MAX_SHOWN) text = text.slice(0, MAX_SHOWN) + "\n… (" + text.length + " characters, cut)";
        out.textContent = "GET " + full + "\n" + r.status + " " + r.statusText + "\n\n" + text;
      } catch (e) { out.textContent = "GET " + full + "\nfailed: " + e.message; }
    } }, inputs, send);
    return el("div", { class: "try" }, el("h3", {}, "Try it"), form, out);
  }

  function operation(path, method, op) {
    return el("details", { class: "api-op", id: "op-" + method + path.replace(/[^A-Za-z0-9]/g, "_") },
      el("summary", {}, el("span", { class: "api-method " + method }, method), el("span", { class: "api-path" }, path), el("span", { class: "muted" }, op.summary || "")),
      op.description ? el("p", {}, op.description) : null,
      op.security && op.security.length && Object.keys(op.security[0]).length
        ? el("p", { class: "muted" }, "Needs: " + Object.keys(op.security[0]).map(k => k === "csrf" ? "X-CSRF-Token header" : "a session").join(" and ") + ".")
        : el("p", { class: "muted" }, "Public: no session needed."),
      params(op), body(op), responses(op),
      method === "get" ? tryIt(path, op) : null);
  }

  function render() {
    const groups = new Map((doc.tags || []).map(t => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        const tag = (item[m].tags && item[m].tags[0]) || "other";
        if (!groups.has(tag)) groups.set(tag, { tag: { name: tag }, ops: [] });
        groups.get(tag).ops.push([path, m, item[m]]);
      }
    }
    const filter = el("input", { type: "search", id: "api-filter", placeholder: "Filter operations…", "aria-label": "Filter operations", size: 40 });
    const sections = [...groups.values()].filter(g => g.ops.length).map(g => el("section", { "data-tag": g.tag.name },
      el("h2", {}, g.tag.name), g.tag.description ? el("p", { class: "muted" }, g.tag.description) : null,
      g.ops.map(([p, m, op]) => operation(p, m, op))));
    filter.addEventListener("input", () => {
      const n = filter.value.trim().toLowerCase();
      for (const d of root.querySelectorAll("details.api-op")) d.hidden = n !== "" && !d.querySelector("summary").textContent.toLowerCase().includes(n);
    });
    const names = Object.keys(schemas()).sort();
    root.replaceChildren(...[
      el("h1", {}, doc.info.title + " " + doc.info.version),
      el("p", {}, doc.info.description || ""),
      el("p", { class: "muted" }, "Base URL " + doc.servers[0].url + " — " + names.length + " schemas. " + (session ? "Logged in as " + session.username + ": GET operations can be tried." : "Log in to try GET operations.")),
      el("div", { class: "toolbar" }, filter),
      sections,
      el("h2", { id: "schemas" }, "Schemas"),
      names.map(n => el("details", { class: "api-op", id: anchor(n) }, el("summary", {}, el("strong", {}, n), el("span", { class: "muted" }, (schemas()[n].description || "").split("\n")[0])), schemaTree(schemas()[n], 1, new Set([n]))))].flat(Infinity));
    // A link to a schema opens it.
    root.addEventListener("click", ev => {
      const a = ev.target.closest("a[href^='#schema-']");
      if (!a) return;
      const d = document.getElementById(a.getAttribute("href").slice(1));
      if (d) d.open = true;
    });
  }

  async function boot() {
    try {
      const r = await fetch("/api/v1/openapi.json");
      doc = await r.json();
    } catch (e) {
      root.replaceChildren(el("div", { class: "card bad", role: "alert" }, "Cannot load the API document: " + e.message));
      return;
    }
    try {
      const s = await fetch("/api/v1/session", { credentials: "same-origin" });
      if (s.ok) session = await s.json();
    } catch (e) { session = null; }
    document.getElementById("who").textContent = session ? session.username + " (" + session.role + ")" : "not logged in";
    render();
  }
  boot();
})();
