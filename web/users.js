"use strict";
// Users page (#/users, admins): window.lqosUsers.render(view, ctx) with ctx = { api, el,
// session, showError } from app.js. Lists users and roles (table #users-table), creates
// (username, role, initial password), changes roles, resets passwords and deletes, through
// /api/v1/users. Every name is set with textContent (el()), never as HTML. A change to the
// logged-in user's own account ends this session: the page then goes to the login.
(function () {
  const ROLES = [["read_only", "Read-only"], ["admin", "Admin"]];

  function render(view, ctx) {
    const { api, el, session, showError } = ctx;
    const msg = el("div", { id: "users-msg", role: "status", class: "report" });
    const holder = el("div", { id: "users-list" }, el("div", { class: "empty" }, "Loading…"));

    function say(text, cls) { msg.replaceChildren(el("p", { class: cls || "ok" }, text)); }
    function fail(e) {
      const errs = (e.data && e.data.errors) || [];
      const text = errs.length ? errs.map(f => f.field + ": " + f.message).join("; ") : e.message;
      msg.replaceChildren(el("p", { class: "bad", role: "alert" }, text));
    }
    function own(name) { return session && session.username === name; }
    // After a change to our own account the session is gone (by design): log in again.
    function afterOwnChange(name, what) {
      if (!own(name)) return false;
      say(what + " Your session ended; log in again.");
      setTimeout(() => { location.href = "/login"; }, 1200);
      return true;
    }

    function roleSelect(id, value, label) {
      return el("select", { id, "aria-label": label }, ROLES.map(([v, t]) => el("option", { value: v, selected: v === value }, t)));
    }

    function row(u) {
      const enc = encodeURIComponent(u.username);
      // An explicit button: a keyboard user moving through the options must not change the
      // role on every arrow key.
      const role = roleSelect(null, u.role, "Role of " + u.username);
      const setRole = el("button", { type: "submit", class: "secondary", disabled: true }, "Set role");
      role.addEventListener("change", () => { setRole.disabled = role.value === u.role; });
      const roleForm = el("form", { class: "inline", onsubmit: async ev => {
        ev.preventDefault();
        const next = role.value;
        if (next === u.role) return;
        try {
          const r = await api("PUT", "/users/" + enc + "/role", { role: next });
          if (!afterOwnChange(u.username, "Role changed.")) { say("Role of " + r.username + " is now " + label(r.role) + "; their sessions ended."); load(); }
        } catch (e) { role.value = u.role; setRole.disabled = true; fail(e); }
      } }, role, " ", setRole);
      const pw = el("input", { type: "password", autocomplete: "new-password", minlength: "8", placeholder: "New password", "aria-label": "New password for " + u.username, class: "user-password" });
      const reset = el("button", { type: "submit", class: "secondary" }, "Reset password");
      const resetForm = el("form", { class: "inline", onsubmit: async ev => {
        ev.preventDefault();
        try {
          const r = await api("PUT", "/users/" + enc + "/password", { password: pw.value });
          pw.value = "";
          if (!afterOwnChange(u.username, "Password changed.")) say("Password of " + r.username + " reset; their sessions ended.");
        } catch (e) { fail(e); }
      } }, pw, " ", reset);
      const del = el("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm("Delete user " + u.username + "? Their sessions end at once.")) return;
        try {
          const r = await api("DELETE", "/users/" + enc);
          if (!afterOwnChange(u.username, "Your user was deleted.")) { say("Deleted " + r.username + "."); load(); }
        } catch (e) { fail(e); }
      } }, "Delete");
      return el("tr", { "data-username": u.username },
        el("td", { class: "user-name" }, u.username, own(u.username) ? el("span", { class: "muted" }, " (you)") : null),
        el("td", {}, roleForm),
        el("td", {}, resetForm),
        el("td", {}, del));
    }

    function label(role) { const r = ROLES.find(([v]) => v === role); return r ? r[1] : role; }

    async function load() {
      let list;
      try { list = await api("GET", "/users"); } catch (e) { holder.replaceChildren(showError(e)); return; }
      const admins = list.filter(u => u.role === "admin").length;
      holder.replaceChildren(
        el("table", { id: "users-table" },
          el("thead", {}, el("tr", {}, el("th", {}, "Username"), el("th", {}, "Role"), el("th", {}, "Password"), el("th", {}, ""))),
          el("tbody", {}, list.map(row))),
        el("p", { class: "muted" }, list.length + " user(s), " + admins + " admin(s). The last admin can be neither deleted nor demoted."));
    }

    const name = el("input", { id: "new-username", name: "username", autocomplete: "off", required: true, maxlength: "64", pattern: "[A-Za-z0-9._@\\-]{1,64}", title: "1-64 letters, digits, '.', '_', '-' or '@'" });
    const role = roleSelect("new-role", "read_only", "Role");
    const pass = el("input", { id: "new-password", name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "8" });
    const create = el("form", { id: "user-create", class: "card", onsubmit: async ev => {
      ev.preventDefault();
      try {
        const r = await api("POST", "/users", { username: name.value, role: role.value, password: pass.value });
        name.value = ""; pass.value = "";
        say("Created " + r.username + " (" + label(r.role) + ").");
        load();
      } catch (e) { fail(e); }
    } },
      el("strong", {}, "New user"),
      el("div", { class: "form" },
        el("label", {}, "Username", name),
        el("label", {}, "Role", role),
        el("label", {}, "Initial password (8+ characters)", pass)),
      el("p", {}, el("button", { type: "submit", id: "create-user" }, "Create user")));

    view.replaceChildren(el("h1", {}, "Users"),
      el("p", { class: "muted" }, "Web users and their roles (the same file lqusers edits). Deleting a user, resetting a password or changing a role ends that user's sessions at once."),
      msg, holder, el("h2", {}, "Add a user"), create);
    return load();
  }

  window.lqosUsers = { render };
})();
