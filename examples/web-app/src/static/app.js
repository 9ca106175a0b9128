// The gateway web app: no framework, no build step.
//
// The other services live on sibling subdomains of this page's host, with the same scheme and
// port: https://app.example.com:8443 talks to https://data.example.com:8443.
'use strict';

const hostParts = location.hostname.split('.');
const projectDomain = hostParts.length > 1 ? hostParts.slice(1).join('.') : location.hostname;
const port = location.port ? ':' + location.port : '';

function serviceUrl(subdomain, path) {
  return location.protocol + '//' + subdomain + '.' + projectDomain + port + path;
}

const $ = (id) => document.getElementById(id);

function say(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = ok ? 'ok' : 'error';
}

// The page's state, for people and for the end-to-end test: "anonymous", "user:<id>/<role>", …
function setState(state) {
  document.body.dataset.state = state;
}

async function whoami() {
  say('data-status', 'asking…', true);
  try {
    const res = await fetch(serviceUrl('data', '/whoami'), { credentials: 'include' });
    if (!res.ok) {
      say('data-status', 'data service answered ' + res.status, false);
      return;
    }
    const echo = await res.json();
    const headers = echo.headers || {};
    const userId = headers['x-hasura-user-id'] || '';
    const role = headers['x-hasura-role'] || '';
    $('user-id').textContent = userId;
    $('role').textContent = role;
    $('allowed-roles').textContent = headers['x-hasura-allowed-roles'] || '';
    say('data-status', 'the data service saw user ' + userId + ' with role ' + role, true);
    setState(role === 'anonymous' ? 'anonymous' : 'user:' + userId + '/' + role);
  } catch (e) {
    say('data-status', 'cannot reach the data service: ' + e, false);
  }
}

async function login(event) {
  event.preventDefault();
  say('login-status', 'logging in…', true);
  try {
    const res = await fetch(serviceUrl('auth', '/login'), {
      method: 'POST',
      credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: $('username').value, password: $('password').value }),
    });
    $('password').value = '';
    if (!res.ok) {
      say('login-status', res.status === 401 ? 'wrong username or password' : 'login failed: ' + res.status, false);
      return;
    }
    const body = await res.json();
    say('login-status', 'logged in as user ' + body.user_id, true);
    await whoami();
  } catch (e) {
    say('login-status', 'cannot reach the login service: ' + e, false);
  }
}

async function tryAdmin() {
  say('admin-status', 'asking…', true);
  try {
    const res = await fetch(serviceUrl('admin', '/'), { credentials: 'include' });
    if (res.ok) {
      say('admin-status', 'allowed (' + res.status + ')', true);
    } else {
      say('admin-status', 'refused (' + res.status + ')', false);
    }
  } catch (e) {
    say('admin-status', 'cannot reach the admin service: ' + e, false);
  }
}

async function logout() {
  say('logout-status', 'logging out…', true);
  try {
    const res = await fetch(serviceUrl('auth', '/logout'), { method: 'POST', credentials: 'include' });
    say('logout-status', res.ok ? 'logged out' : 'logout failed: ' + res.status, res.ok);
    say('login-status', '', true);
    say('admin-status', '', true);
  } catch (e) {
    say('logout-status', 'cannot reach the login service: ' + e, false);
  }
  await whoami();
}

$('login-form').addEventListener('submit', login);
$('whoami').addEventListener('click', whoami);
$('admin').addEventListener('click', tryAdmin);
$('logout').addEventListener('click', logout);
whoami();
