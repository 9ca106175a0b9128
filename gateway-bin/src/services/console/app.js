// The gateway console. It only calls the public admin API, with the admin secret kept in
// sessionStorage (never a cookie) and sent as a bearer token. No inline script, no innerHTML
// with data: every value is written with textContent.
"use strict";

(function () {
  const KEY = "gateway.adminSecret";
  const $ = (id) => document.getElementById(id);
  const state = { etag: null, services: [], editing: null, roles: [], sessionsUser: null };

  function secret() {
    return sessionStorage.getItem(KEY);
  }

  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "text") e.textContent = v;
        else if (k === "class") e.className = v;
        else if (k === "dataset") Object.assign(e.dataset, v);
        else e.setAttribute(k, v);
      }
    }
    for (const c of children || []) if (c) e.append(c);
    return e;
  }

  // One admin API call. Resolves to { status, etag, body } (body parsed when JSON).
  async function api(method, path, body, ifMatch) {
    const headers = { Authorization: "Bearer " + secret() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (ifMatch) headers["If-Match"] = ifMatch;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    let parsed = null;
    const text = await res.text();
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch (_) {
      parsed = { error: text };
    }
    if (res.status === 401) {
      signOut("The admin secret was refused. Sign in again.");
      throw new Error("unauthorized");
    }
    return { status: res.status, etag: res.headers.get("ETag"), body: parsed };
  }

  function notice(id, message, isError) {
    const n = $(id);
    n.textContent = message;
    n.classList.toggle("error", !!isError);
    n.hidden = !message;
  }

  // ---- sign in / out --------------------------------------------------------------------

  function showApp(signedIn) {
    $("login-view").hidden = signedIn;
    $("nav").hidden = !signedIn;
    if (signedIn) {
      showView("services-view");
    } else {
      $("services-view").hidden = true;
      $("sessions-view").hidden = true;
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    showApp(false);
    $("login-error").textContent = message || "";
    $("secret").value = "";
    $("secret").focus();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const value = $("secret").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    $("secret").value = "";
    try {
      const r = await api("GET", "/v1/services");
      if (r.status !== 200) throw new Error((r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status);
      $("login-error").textContent = "";
      showApp(true);
      render(r);
    } catch (e) {
      if (e.message !== "unauthorized") signOut("Cannot reach the admin API: " + e.message);
    }
  });

  $("logout").addEventListener("click", () => signOut(""));

  function showView(id) {
    for (const v of ["services-view", "sessions-view"]) $(v).hidden = v !== id;
    for (const t of document.querySelectorAll("nav .tab")) {
      t.classList.toggle("active", t.dataset.view === id);
    }
  }
  for (const t of document.querySelectorAll("nav .tab")) {
    t.addEventListener("click", () => showView(t.dataset.view));
  }

  // ---- the service list -----------------------------------------------------------------

  async function load() {
    const r = await api("GET", "/v1/services");
    if (r.status === 200) render(r);
    else notice("notice", (r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status, true);
  }

  function roleChips(roles) {
    if (!roles || roles.length === 0) {
      return [el("span", { class: "chip everyone", text: "every role" })];
    }
    return roles.map((r) => el("span", { class: r === "anonymous" ? "chip anonymous" : "chip", text: r }));
  }

  function certificateText(c) {
    if (c === null || c === undefined) return "—";
    if (typeof c === "string") return c;
    if (c.not_after) return c.source + ": valid until " + c.not_after;
    if (c.state) return c.source + ": " + c.state + (c.last_error ? " (" + c.last_error + ")" : "");
    return JSON.stringify(c);
  }

  function render(r) {
    state.etag = r.etag;
    state.services = r.body.services || [];
    const persisted = r.body.persisted ? "saved next to the config" : "kept in memory only";
    $("services-meta").textContent = "version " + r.body.version + " · API services " + persisted;
    const tbody = document.querySelector("#services tbody");
    tbody.replaceChildren();
    if (state.services.length === 0) {
      tbody.append(el("tr", null, [el("td", { class: "empty", colspan: "7", text: "No services yet." })]));
    }
    for (const s of state.services) {
      const name = el("td", null, [
        el("strong", { text: s.name }),
        el("span", { class: s.origin === "api" ? "badge api" : "badge", text: s.origin === "api" ? "added here" : "config file" }),
      ]);
      if (s.active === false) name.append(el("span", { class: "badge", text: "shadowed by the file" }));
      const hosts = el("td", null, [el("code", { text: (s.hosts && s.hosts[0]) || s.subdomain })]);
      if (s.path_prefix) hosts.append(el("code", { text: s.path_prefix }));
      const upstream = el("td", null, (s.upstreams || []).map((u) => el("div", null, [el("code", { text: u })])));
      const roles = el("td", null, roleChips(s.allowed_roles));
      const options = [];
      if (s.websocket) options.push("WebSocket");
      if (s.forward_credentials) options.push("forwards credentials");
      if (s.session_issuer) options.push("session issuer");
      const flags = el("td", { class: "muted", text: options.join(", ") || "—" });
      const cert = el("td", { class: "muted", text: certificateText(s.certificate) });
      const actions = el("td", { class: "row-actions" });
      if (s.origin === "api") {
        const edit = el("button", { type: "button", class: "secondary small edit", text: "Edit" });
        edit.addEventListener("click", () => openForm(s));
        const del = el("button", { type: "button", class: "danger small delete", text: "Delete" });
        del.addEventListener("click", () => removeService(s.name));
        actions.append(edit, del);
      } else {
        actions.append(el("span", { class: "muted", text: "edit the config file" }));
      }
      tbody.append(el("tr", { dataset: { name: s.name } }, [name, hosts, upstream, roles, flags, cert, actions]));
    }
  }

  $("refresh").addEventListener("click", () => {
    notice("notice", "");
    load();
  });

  // ---- confirmation ---------------------------------------------------------------------

  function confirmDialog(text, okLabel) {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    return new Promise((resolve) => {
      const done = (answer) => {
        $("confirm-ok").removeEventListener("click", ok);
        $("confirm-cancel").removeEventListener("click", cancel);
        d.removeEventListener("cancel", cancel);
        if (d.open) d.close();
        resolve(answer);
      };
      const ok = () => done(true);
      const cancel = () => done(false);
      $("confirm-ok").addEventListener("click", ok);
      $("confirm-cancel").addEventListener("click", cancel);
      d.addEventListener("cancel", cancel);
      d.showModal();
    });
  }

  async function removeService(name) {
    if (!(await confirmDialog('Delete the service "' + name + '"? It stops serving at once.', "Delete"))) return;
    const r = await api("DELETE", "/v1/services/" + encodeURIComponent(name), undefined, state.etag);
    if (r.status === 200) {
      notice("notice", 'Service "' + name + '" deleted.');
      if (state.editing === name) closeForm();
      await load();
    } else if (r.status === 412) {
      notice("notice", "The services were changed meanwhile; the list is reloaded. Try again.", true);
      await load();
    } else {
      notice("notice", (r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status, true);
    }
  }

  // ---- the add / edit form --------------------------------------------------------------

  const roleInput = $("f-role-input");

  function renderRoles() {
    const box = $("f-roles");
    for (const c of box.querySelectorAll(".chip")) c.remove();
    for (const r of state.roles) {
      const x = el("button", { type: "button", "aria-label": "remove " + r, text: "×" });
      x.addEventListener("click", () => {
        state.roles = state.roles.filter((o) => o !== r);
        renderRoles();
      });
      box.insertBefore(el("span", { class: r === "anonymous" ? "chip anonymous" : "chip", dataset: { role: r } }, [document.createTextNode(r), x]), roleInput);
    }
    for (const b of document.querySelectorAll("button.suggest")) b.disabled = state.roles.includes(b.dataset.role);
  }

  function addRoles(text) {
    for (const part of text.split(/[\s,]+/)) {
      const r = part.trim();
      if (r && !state.roles.includes(r)) state.roles.push(r);
    }
    renderRoles();
  }

  roleInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === ",") {
      ev.preventDefault();
      addRoles(roleInput.value);
      roleInput.value = "";
    } else if (ev.key === "Backspace" && roleInput.value === "" && state.roles.length) {
      state.roles.pop();
      renderRoles();
    }
  });
  roleInput.addEventListener("blur", () => {
    addRoles(roleInput.value);
    roleInput.value = "";
  });
  for (const b of document.querySelectorAll("button.suggest")) {
    b.addEventListener("click", () => addRoles(b.dataset.role));
  }

  function hostHint() {
    const sub = $("f-subdomain").value.trim() || $("f-name").value.trim();
    const anyFile = state.services.find((s) => s.hosts && s.hosts[0] && s.subdomain && s.hosts[0].startsWith(s.subdomain + "."));
    const domain = anyFile ? anyFile.hosts[0].slice(anyFile.subdomain.length + 1) : "";
    $("f-host-hint").textContent = sub && domain ? "Served at " + sub + "." + domain : "";
  }
  $("f-name").addEventListener("input", hostHint);
  $("f-subdomain").addEventListener("input", hostHint);

  function clearErrors() {
    for (const p of document.querySelectorAll("#service-form .field-error")) p.textContent = "";
    for (const i of document.querySelectorAll("#service-form .invalid")) i.classList.remove("invalid");
    $("form-error").textContent = "";
  }

  // Shows an API error next to the field it names (`upstreams[0]` belongs to `upstreams`).
  function showFieldError(field, message) {
    const base = String(field || "").replace(/\[\d+\]$/, "");
    const slot = document.querySelector('#service-form .field-error[data-field="' + CSS.escape(base) + '"]');
    if (slot) {
      slot.textContent = message;
      const input = { name: "f-name", subdomain: "f-subdomain", upstreams: "f-upstream", allowed_roles: "f-roles" }[base];
      if (input) $(input).classList.add("invalid");
    } else {
      $("form-error").textContent = (field ? field + ": " : "") + message;
    }
  }

  function openForm(service) {
    clearErrors();
    state.editing = service ? service.name : null;
    $("form-title").textContent = service ? 'Edit service "' + service.name + '"' : "Add custom service";
    $("f-submit").textContent = service ? "Save changes" : "Add service";
    $("f-name").value = service ? service.name : "";
    $("f-name").readOnly = !!service;
    $("f-subdomain").value = service && service.subdomain !== service.name ? service.subdomain : "";
    $("f-upstream").value = service && service.upstreams ? service.upstreams.join(", ") : "";
    state.roles = service ? (service.allowed_roles || []).slice() : [];
    renderRoles();
    $("f-websocket").checked = service ? !!service.websocket : true;
    $("f-forward").checked = service ? !!service.forward_credentials : false;
    $("service-form").hidden = false;
    hostHint();
    (service ? $("f-upstream") : $("f-name")).focus();
  }

  function closeForm() {
    state.editing = null;
    $("service-form").hidden = true;
  }

  $("add-service").addEventListener("click", () => openForm(null));
  $("f-cancel").addEventListener("click", closeForm);

  $("service-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    addRoles(roleInput.value);
    roleInput.value = "";
    const editing = state.editing;
    const previous = editing ? state.services.find((s) => s.name === editing) : null;
    const body = Object.assign({}, previous || {}, {
      name: $("f-name").value.trim(),
      subdomain: $("f-subdomain").value.trim() || null,
      upstreams: $("f-upstream").value.split(",").map((u) => u.trim()).filter((u) => u),
      allowed_roles: state.roles.slice(),
      websocket: $("f-websocket").checked,
      forward_credentials: $("f-forward").checked,
    });
    const r = editing
      ? await api("PUT", "/v1/services/" + encodeURIComponent(editing), body, state.etag)
      : await api("POST", "/v1/services", body, state.etag);
    if (r.status === 200 || r.status === 201) {
      closeForm();
      notice("notice", 'Service "' + body.name + '" ' + (editing ? "saved" : "added") + ". It is served now.");
      await load();
    } else if (r.status === 412) {
      $("form-error").textContent = "The services were changed by someone else meanwhile; the list was reloaded. Check it and save again.";
      await load();
    } else if (r.body && r.body.field) {
      showFieldError(r.body.field, r.body.detail || r.body.error);
    } else {
      $("form-error").textContent = (r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status;
    }
  });

  // ---- sessions -------------------------------------------------------------------------

  async function lookUp(user) {
    const r = await api("GET", "/v1/users/" + encodeURIComponent(user) + "/sessions");
    const tbody = document.querySelector("#sessions tbody");
    tbody.replaceChildren();
    if (r.status !== 200) {
      notice("s-notice", (r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status, true);
      return;
    }
    state.sessionsUser = user;
    const list = r.body.sessions || [];
    $("s-revoke").disabled = list.length === 0;
    notice("s-notice", list.length + " active session" + (list.length === 1 ? "" : "s") + " for " + user + ".");
    if (list.length === 0) {
      tbody.append(el("tr", null, [el("td", { class: "empty", colspan: "5", text: "No active sessions." })]));
    }
    for (const s of list) {
      tbody.append(el("tr", null, [
        el("td", null, [el("code", { text: String(s.id).slice(0, 12) + "…" })]),
        el("td", null, roleChips(s.roles)),
        el("td", { text: s.default_role }),
        el("td", { text: s.created_at }),
        el("td", { text: s.expires_at }),
      ]));
    }
  }

  $("sessions-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("s-user").value.trim();
    if (user) await lookUp(user);
  });

  $("s-revoke").addEventListener("click", async () => {
    const user = state.sessionsUser;
    if (!user) return;
    if (!(await confirmDialog('Revoke every session of "' + user + '"? They are signed out at once.', "Revoke all"))) return;
    const r = await api("DELETE", "/v1/users/" + encodeURIComponent(user) + "/sessions");
    if (r.status === 200) {
      await lookUp(user);
      notice("s-notice", "Revoked " + r.body.revoked + " session" + (r.body.revoked === 1 ? "" : "s") + " of " + user + ".");
    } else {
      notice("s-notice", (r.body && (r.body.detail || r.body.error)) || "HTTP " + r.status, true);
    }
  });

  // ---- start ----------------------------------------------------------------------------

  if (secret()) {
    showApp(true);
    load().catch(() => {});
  } else {
    showApp(false);
  }
})();
