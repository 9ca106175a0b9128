// The gateway console. It only calls the public admin API, with the admin secret kept in
// sessionStorage (never a cookie) and sent as a bearer token. No inline script, no innerHTML
// with data: every value is written with textContent.
"use strict";

(function () {
  const KEY = "gateway.adminSecret";
  const $ = (id) => document.getElementById(id);
  const VIEWS = ["services-view", "sessions-view", "try-view"];
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
      for (const v of VIEWS) $(v).hidden = true;
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    $("t-token").value = "";
    $("t-result").hidden = true;
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
    for (const v of VIEWS) $(v).hidden = v !== id;
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
    tryHosts();
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

  // ---- try a request --------------------------------------------------------------------
  //
  // Asks POST /v1/explain what the gateway would do with a request, and says why in words.
  // The token is read from its password field when "Try" is pressed and sent only in the JSON
  // body of that call: it is never stored and never put in a URL.

  // The hosts of the service list, offered in the host field; the first fills it when empty.
  function tryHosts() {
    const hosts = [];
    for (const s of state.services) {
      for (const h of s.hosts || []) if (h && !hosts.includes(h)) hosts.push(h);
    }
    $("t-hosts").replaceChildren(...hosts.map((h) => el("option", { value: h })));
    if (!$("t-host").value && hosts.length) $("t-host").value = hosts[0];
  }

  function list(items) {
    return items.join(", ");
  }

  // The roles a service allows: the answer's route.allowed_roles, else its detail ("...;
  // allowed roles: user, admin"), else the service list; null when none says.
  function serviceRoles(answer) {
    const structured = answer.route && answer.route.allowed_roles;
    if (Array.isArray(structured)) return structured.length ? list(structured) : "every role";
    const m = /allowed roles?:\s*([^;]+)/i.exec(answer.detail || "");
    if (m) return m[1].trim();
    const name = answer.route && answer.route.service;
    const s = name ? state.services.find((x) => x.name === name) : null;
    if (s) return s.allowed_roles && s.allowed_roles.length ? list(s.allowed_roles) : "every role";
    return null;
  }

  function callerRole(answer) {
    return (answer.identity && answer.identity.role) || "anonymous";
  }

  // One sentence per reason code, for someone who does not read the code. `ask` is what was
  // asked ({ host, path }). An unknown code gets the gateway's own message.
  const REASONS = {
    "allowed": (a) => {
      // Allowed, yet answered by the gateway itself: a CORS preflight, say.
      if (a.status) return "The gateway would answer this request itself (HTTP " + a.status + ") without passing it to the service: " + (a.message || "allowed") + ".";
      const where = a.route ? 'the service "' + a.route.service + '"' + (a.route.upstream ? " (" + a.route.upstream + ")" : "") : "its service";
      const who = a.identity && a.credential !== "none"
        ? "as user " + a.identity.user_id + " with the role " + a.identity.role
        : "without a session (role " + callerRole(a) + ")";
      return "The gateway would let this request through to " + where + ", " + who + ".";
    },
    "authorization-required": (a) => {
      const roles = serviceRoles(a);
      const anonymous = !a.identity || a.credential === "none";
      return "This service does not allow the role " + callerRole(a) +
        (anonymous ? " (requests without a session)" : "") +
        (roles ? "; it allows: " + roles + "." : ".") +
        (anonymous ? " Send the token of a session that has one of these roles." : "");
    },
    "insufficient-role": (a) => {
      const roles = serviceRoles(a);
      return "The session is valid, but its role " + callerRole(a) + " is not allowed on this service" + (roles ? "; it allows: " + roles + "." : ".");
    },
    "role-not-allowed": (a) => {
      const id = a.identity || {};
      const own = id.allowed_roles && id.allowed_roles.length ? " (it has: " + list(id.allowed_roles) + ")" : "";
      return "The request asks for the role " + (id.requested_role || "in its role header") + ", which this session does not have" + own + ".";
    },
    "invalid-token": () => "The token is not accepted: it is unknown, has expired, or was revoked (signed out). The user has to sign in again.",
    "authentication-refused": () => "The identity service that checks tokens for this gateway refused this request.",
    "malformed-authorization": () => "The Authorization header is not of the form \"Bearer <token>\".",
    "duplicate-authorization": () => "The request carries more than one credential in its Authorization header.",
    "malformed-token": () => "The token is not in a form the gateway accepts (it may have been cut or changed when copied).",
    "malformed-cookie": () => "The session cookie is not in a form the gateway accepts.",
    "duplicate-cookie": () => "The request carries the session cookie more than once.",
    "ambiguous-role": () => "The request names a role more than once, so the gateway cannot tell which one is meant.",
    "cross-site-request": () => "Another web site tried to use this user's session cookie; the gateway refuses that to protect the user.",
    "origin-required": () => "A change sent with the session cookie must say which site it comes from (an Origin header); this one does not.",
    "session-store-unavailable": () => "The gateway cannot reach its session store or identity provider right now; the request would fail until it is back.",
    "internal-error": () => "The gateway hit an internal error on this request; its log says more.",
    "unknown-host": (a, ask) => "There is no service at " + ask.host + ": no service of this gateway has this host name.",
    "no-route": (a, ask) => "There is no service for the path " + ask.path + " at " + ask.host + ".",
    "misdirected-request": (a, ask) => "The gateway does not serve " + ask.host + " on this connection: services are reached by their host names, not by an IP address.",
    "invalid-host": (a, ask) => '"' + ask.host + '" is not a valid host name.',
    "missing-host": () => "The request names no host.",
    "invalid-path": (a, ask) => "The gateway refuses the path " + ask.path + " as malformed or unsafe.",
    "ambiguous-path": (a, ask) => "The path " + ask.path + " can be read in two ways that lead to different services, so the gateway refuses it.",
  };

  function inWords(answer, ask) {
    const words = REASONS[answer.reason];
    if (words) return words(answer, ask);
    return answer.message || answer.reason || "The gateway gave no reason.";
  }

  const CREDENTIALS = { none: "none (no token, no cookie)", bearer: "bearer token", cookie: "session cookie" };
  const RESOLVERS = { sessions: "the gateway's sessions", jwt: "a JWT issuer", webhook: "the identity webhook", anonymous: "nobody: an anonymous request" };

  // The upstream the request would go to. A refused request never reaches the choice of an
  // upstream, so the answer names none: the service's upstreams are shown from the list.
  function upstreamText(route) {
    if (!route) return "";
    if (route.upstream) return route.upstream;
    const s = state.services.find((x) => x.name === route.service);
    if (!s || !s.upstreams || !s.upstreams.length) return "";
    return list(s.upstreams) + " (not reached: the gateway answers first)";
  }

  function showAnswer(a, ask) {
    const box = $("t-result");
    const allowed = a.verdict === "allowed";
    box.className = "card result " + (allowed ? "allowed" : "refused");
    box.dataset.verdict = a.verdict || "";
    box.dataset.reason = a.reason || "";
    $("t-verdict").textContent = allowed ? "Allowed" : "Refused" + (a.status ? " (" + a.status + ")" : "");
    $("t-reason").textContent = inWords(a, ask);
    const route = a.route;
    $("t-service").textContent = route ? route.service : "none: " + (a.message || a.reason);
    $("t-upstream").textContent = upstreamText(route);
    const kind = CREDENTIALS[a.credential] || a.credential || "";
    const by = a.resolver ? RESOLVERS[a.resolver] || a.resolver : "";
    $("t-credential").textContent = kind + (by && a.credential !== "none" ? ", answered by " + by : "");
    const id = a.identity;
    $("t-user").textContent = id ? id.user_id : "";
    $("t-role").textContent = id ? id.role : "";
    $("t-requested").textContent = id && id.requested_role ? id.requested_role : "";
    $("t-roles").replaceChildren(...(id && id.allowed_roles ? id.allowed_roles.map((r) => el("span", { class: r === "anonymous" ? "chip anonymous" : "chip", text: r })) : []));
    $("t-status").textContent = a.status ? "HTTP " + a.status + " from the gateway itself" : allowed ? "none of its own: it passes the request to the upstream" : "";
    $("t-code").replaceChildren(el("code", { text: a.reason || "" }));
    $("t-message").textContent = (a.message || "") + (a.detail ? " (" + a.detail + ")" : "");
    box.hidden = false;
  }

  // Answers shown so far: each answer (or error) counts once, so a test can wait for the
  // answer to its own click rather than read the previous one.
  let answered = 0;
  let asking = 0;

  function tryDone() {
    answered += 1;
    $("try-view").dataset.answered = String(answered);
  }

  $("try-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const mine = ++asking;
    $("t-error").textContent = "";
    $("t-result").hidden = true;
    const host = $("t-host").value.trim().replace(/^https?:\/\//i, "").replace(/\/+$/, "");
    let path = $("t-path").value.trim() || "/";
    if (!path.startsWith("/")) path = "/" + path;
    if (!host) {
      $("t-error").textContent = "Enter the host of the request, for example one of the services' hosts.";
      tryDone();
      return;
    }
    const body = { method: $("t-method").value, url: "https://" + host + path };
    const token = $("t-token").value.trim();
    if (token) body.headers = { authorization: "Bearer " + token };
    $("t-submit").disabled = true;
    try {
      const r = await api("POST", "/v1/explain", body);
      if (mine !== asking) return;
      if (r.status === 200 && r.body && r.body.verdict) {
        showAnswer(r.body, { host, path });
      } else if (r.status === 400) {
        $("t-error").textContent = "The gateway could not read this request: " + ((r.body && (r.body.detail || r.body.error)) || "HTTP 400");
      } else {
        $("t-error").textContent = "The explain API answered HTTP " + r.status + ": " + ((r.body && (r.body.detail || r.body.error)) || "no details");
      }
    } catch (e) {
      if (mine !== asking || e.message === "unauthorized") return;
      $("t-error").textContent = "Cannot reach the gateway's admin API: " + e.message;
    } finally {
      if (mine === asking) {
        $("t-submit").disabled = false;
        tryDone();
      }
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
