"use strict";
// Login and first-run setup pages. No inline script (CSP); messages set with textContent.
(function () {
  if (localStorage.getItem("lqos-theme") === "dark") document.documentElement.dataset.theme = "dark";
  const msg = document.getElementById("msg");
  // Forms are method="post": should this script not run, a native submit never puts the
  // password into a URL (history, logs); the page's POST then gets a 405.
  async function post(path, body) {
    let r;
    try {
      r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), credentials: "same-origin" });
    } catch (e) {
      return { ok: false, status: 0, data: { message: "Could not reach lqos_web (" + e.message + "). Try again." } };
    }
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty body */ }
    return { ok: r.ok, status: r.status, data };
  }
  const login = document.getElementById("login-form");
  if (login) {
    fetch("/api/v1/setup/status").then(r => r.json()).then(s => {
      if (s.setup_required) msg.textContent = "No users yet: open the setup link printed in lqosd's log, or run `lqusers add`.";
    }).catch(() => {});
    login.addEventListener("submit", async ev => {
      ev.preventDefault();
      msg.textContent = "";
      const r = await post("/api/v1/login", { username: login.username.value, password: login.password.value });
      if (r.ok) { location.href = "/app"; return; }
      msg.textContent = r.status === 401 ? "Wrong username or password." : (r.data.message || ("Login failed (" + r.status + ")"));
    });
  }
  const setup = document.getElementById("setup-form");
  if (setup) {
    const token = new URLSearchParams(location.search).get("token") || "";
    setup.addEventListener("submit", async ev => {
      ev.preventDefault();
      msg.textContent = "";
      const p1 = document.getElementById("password").value, p2 = document.getElementById("password2").value;
      if (p1 !== p2) { msg.textContent = "The passwords differ."; return; }
      const r = await post("/api/v1/setup", { token, username: document.getElementById("username").value, password: p1 });
      if (r.ok) { location.href = "/app"; return; }
      const fields = (r.data.errors || []).map(e => e.field + ": " + e.message).join("; ");
      msg.textContent = fields || r.data.message || ("Setup failed (" + r.status + ")");
    });
  }
})();
