// Live orders: sign in, list the tenant's orders, keep them current over the WebSocket, create
// orders and move them along. No build step; the page's CSP forbids inline scripts.
"use strict";

const NEXT = {
  open: ["preparing", "cancelled"],
  preparing: ["ready", "cancelled"],
  ready: ["completed"],
  completed: [],
  cancelled: [],
};

const state = { token: sessionStorage.getItem("rampart_token"), me: null, socket: null, retry: 1, pingSent: 0 };
const $ = (id) => document.getElementById(id);

function notify(text) {
  $("notice").textContent = text || "";
}

function setStatus(text) {
  $("conn-status").textContent = text;
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || { code: "error", message: res.statusText };
    const retry = res.headers.get("retry-after");
    const wait = retry ? ` Try again in ${retry} s.` : "";
    const field = err.field ? ` (${err.field})` : "";
    const e = new Error(`${err.message}${field}.${wait}`);
    e.status = res.status;
    throw e;
  }
  return data;
}

function money(cents) {
  return (cents / 100).toFixed(2);
}

function rowFor(order) {
  let row = document.getElementById(`order-${order.id}`);
  if (!row) {
    row = document.createElement("tr");
    row.id = `order-${order.id}`;
    $("orders").prepend(row);
  }
  row.replaceChildren();
  const cells = [
    new Date(order.created_at).toLocaleTimeString(),
    order.items.map((i) => `${i.quantity} × ${i.name}`).join(", "),
    money(order.total_cents),
    order.status,
  ];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 3) td.className = "status";
    row.appendChild(td);
  }
  const actions = document.createElement("td");
  for (const next of NEXT[order.status] || []) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = next;
    b.dataset.next = next;
    b.addEventListener("click", () => changeStatus(order.id, next));
    actions.appendChild(b);
  }
  row.appendChild(actions);
  row.classList.remove("flash");
  void row.offsetWidth;
  row.classList.add("flash");
  $("empty").hidden = true;
}

async function changeStatus(id, status) {
  try {
    notify("");
    rowFor(await api("PATCH", `/api/v1/tenants/${state.me.tenant_id}/orders/${id}`, { status }));
  } catch (e) {
    notify(`Could not change the order: ${e.message}`);
  }
}

async function createOrder(ev) {
  ev.preventDefault();
  const cents = Math.round(parseFloat($("item-price").value || "0") * 100);
  const body = {
    items: [{ name: $("item-name").value, quantity: parseInt($("item-qty").value, 10), unit_price_cents: cents }],
  };
  if ($("order-note").value) body.note = $("order-note").value;
  try {
    notify("");
    rowFor(await api("POST", `/api/v1/tenants/${state.me.tenant_id}/orders`, body));
    $("item-name").value = "";
  } catch (e) {
    notify(`Could not create the order: ${e.message}`);
  }
}

const CLOSE_REASONS = {
  1008: "The server ended the live connection (signed out, session expired, or too many rate-limit violations).",
  1009: "A message was too large; the live connection was closed.",
  1013: "The connection could not keep up with updates; reconnecting.",
};

function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
      state.retry = 1;
      state.socket.send(JSON.stringify({ type: "subscribe", channel: "orders" }));
      break;
    case "subscribed":
      setStatus("live");
      break;
    case "event":
      if (frame.channel === "orders") rowFor(frame.data);
      break;
    case "pong":
      notify("");
      setStatus(`live (${Math.round(performance.now() - state.pingSent)} ms)`);
      break;
    case "error": {
      const wait = frame.retry_after_ms ? ` Wait ${Math.ceil(frame.retry_after_ms / 1000)} s.` : "";
      const what = frame.code === "rate_limited" ? "Too many messages to the server." : frame.message;
      notify(`${what}${wait}`);
      break;
    }
  }
}

async function connect() {
  if (!state.token) return;
  setStatus("connecting…");
  let ticket;
  try {
    ticket = (await api("POST", "/api/v1/ws/ticket", {})).ticket;
  } catch (e) {
    if (e.status === 401) return signedOut("Your session has ended; sign in again.");
    return reconnectLater(`Cannot open live updates: ${e.message}`);
  }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
  state.socket = socket;
  let opened = false;
  socket.addEventListener("open", () => { opened = true; });
  socket.addEventListener("message", (ev) => {
    try {
      onFrame(JSON.parse(ev.data));
    } catch (_) {
      /* not JSON: ignore */
    }
  });
  socket.addEventListener("close", (ev) => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (!opened) {
      // The browser hides the refusal's status: too many connections, attempts or a ban.
      return reconnectLater("The live connection was refused (too many connections or attempts, or this address is blocked).");
    }
    if (ev.code === 1008) {
      setStatus("closed");
      return notify(CLOSE_REASONS[1008]);
    }
    reconnectLater(CLOSE_REASONS[ev.code] || "The live connection was lost.");
  });
}

function reconnectLater(message) {
  const secs = Math.min(state.retry, 30);
  state.retry *= 2;
  notify(`${message} Retrying in ${secs} s.`);
  setStatus("offline");
  setTimeout(connect, secs * 1000);
}

function checkConnection() {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return notify("Not connected.");
  state.pingSent = performance.now();
  state.socket.send(JSON.stringify({ type: "ping", id: Date.now() }));
}

function signedOut(message) {
  sessionStorage.removeItem("rampart_token");
  state.token = null;
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close();
  $("app").hidden = true;
  $("login-card").hidden = false;
  notify(message || "");
}

async function start() {
  try {
    state.me = await api("GET", "/api/v1/auth/me");
  } catch (e) {
    return signedOut(e.status === 401 ? "" : e.message);
  }
  if (!state.me.tenant_id) return notify("This page shows a tenant's orders; platform accounts have none.");
  $("who").textContent = state.me.email;
  $("login-card").hidden = true;
  $("app").hidden = false;
  $("orders").replaceChildren();
  const list = await api("GET", `/api/v1/tenants/${state.me.tenant_id}/orders?limit=50`);
  for (const order of list.items.slice().reverse()) rowFor(order);
  $("empty").hidden = list.items.length > 0;
  connect();
}

async function login(ev) {
  ev.preventDefault();
  notify("");
  const res = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: $("email").value, password: $("password").value }),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const retry = res.headers.get("retry-after");
    const msg = (data.error && data.error.message) || "Sign-in failed";
    return notify(retry ? `${msg}. Try again in ${retry} s.` : `${msg}.`);
  }
  if (!data.token) return notify("This account needs its second factor; use the 2FA page to sign in.");
  state.token = data.token;
  sessionStorage.setItem("rampart_token", data.token);
  start();
}

async function logout() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    signedOut("Signed out.");
  }
}

$("login-form").addEventListener("submit", login);
$("order-form").addEventListener("submit", createOrder);
$("check-button").addEventListener("click", checkConnection);
$("logout-button").addEventListener("click", logout);
if (state.token) start();
