// Live orders of the signed-in user's tenant: list them, keep them current over the WebSocket,
// create orders and move them along. Signed in through `/` (the cookie session); no sign-in
// and no token here. No build step; the page's CSP forbids inline scripts.
"use strict";

const NEXT = {
  open: ["preparing", "cancelled"],
  preparing: ["ready", "cancelled"],
  ready: ["completed"],
  completed: [],
  cancelled: [],
};

const state = { me: null, socket: null, pingSent: 0 };

function notify(text) {
  $("notice").textContent = text || "";
}

function setStatus(text) {
  $("conn-status").textContent = text;
}

// A call whose failure is worth an exception: resolves to the body, throws the explanation.
async function must(method, path, body) {
  const reply = await call(method, path, body);
  if (reply.status < 200 || reply.status > 299) {
    const wait = reply.retryAfter && codeOf(reply) !== "too_many_attempts" ? ` Try again in ${reply.retryAfter} s.` : "";
    throw new Error(`${explain(reply)}${wait}`);
  }
  return reply.body;
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
    rowFor(await must("PATCH", `/api/v1/tenants/${state.me.tenant_id}/orders/${id}`, { status }));
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
    rowFor(await must("POST", `/api/v1/tenants/${state.me.tenant_id}/orders`, body));
    $("item-name").value = "";
  } catch (e) {
    notify(`Could not create the order: ${e.message}`);
  }
}

function onFrame(frame, socket) {
  switch (frame.type) {
    case "welcome":
      state.socket = socket;
      socket.send(JSON.stringify({ type: "subscribe", channel: "orders" }));
      break;
    case "subscribed":
      notify("");
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

function onStatus(message, status) {
  if (status !== "live") state.socket = null;
  setStatus(status);
  if (message) notify(message);
}

function checkConnection() {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return notify("Not connected.");
  state.pingSent = performance.now();
  state.socket.send(JSON.stringify({ type: "ping", id: Date.now() }));
}

async function start() {
  let me;
  try {
    me = await currentUser();
  } catch (e) {
    $("page-error").textContent = e.message;
    return;
  }
  state.me = me;
  drawNav(me);
  if (!me.tenant_id) {
    $("page-error").textContent = "This page shows a restaurant's orders; platform accounts have none. Use the security monitor.";
    return;
  }
  let list;
  try {
    list = await must("GET", `/api/v1/tenants/${me.tenant_id}/orders?limit=50`);
  } catch (e) {
    $("page-error").textContent = e.message;
    return;
  }
  $("app").hidden = false;
  $("orders").replaceChildren();
  for (const order of list.items.slice().reverse()) rowFor(order);
  $("empty").hidden = list.items.length > 0;
  liveSocket({ frame: onFrame, status: onStatus });
}

$("order-form").addEventListener("submit", createOrder);
$("check-button").addEventListener("click", checkConnection);
start();
