// The security monitor for platform owners: counts, bans and alerts from the summary route,
// and the live audit feed from the WebSocket `security` channel.
"use strict";

const FEED_ROWS = 200;

function renderCounts(counts) {
  const body = $("counts").querySelector("tbody");
  body.replaceChildren();
  for (const [kind, n] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    const tr = document.createElement("tr");
    tr.append(cell(kind), cell(n));
    body.append(tr);
  }
}

// The summary holds the soonest-ending bans only; `more` says others are in force.
function renderBans(bans, more) {
  const body = $("bans").querySelector("tbody");
  body.replaceChildren();
  $("bans-empty").hidden = bans.length > 0;
  for (const ban of bans) {
    const tr = document.createElement("tr");
    const action = document.createElement("td");
    action.append(actionButton("Lift", () => liftBan(ban.ip)));
    tr.append(cell(ban.ip), cell(new Date(ban.until).toLocaleString()), cell(ban.violations), action);
    body.append(tr);
  }
  if (more) {
    const tr = document.createElement("tr");
    const note = cell(`More bans are in force; these ${bans.length} end soonest.`, "muted");
    note.colSpan = 4;
    tr.id = "bans-more";
    tr.append(note);
    body.append(tr);
  }
}

function renderAlerts(alerts) {
  const list = $("alerts");
  list.replaceChildren();
  $("alerts-empty").hidden = alerts.length > 0;
  for (const alert of alerts) {
    const li = document.createElement("li");
    const who = alert.actor && alert.actor.email ? alert.actor.email : alert.ip || "";
    li.textContent = `${alert.ts} ${alert.kind} ${who} (${JSON.stringify(alert.details)})`;
    list.append(li);
  }
}

async function refresh() {
  const reply = await call("GET", "/api/v1/platform/security/summary");
  if (reply.status !== 200) {
    $("page-error").textContent = explain(reply);
    return;
  }
  $("page-error").textContent = "";
  $("redis").textContent = reply.body.redis;
  $("gap").textContent = reply.body.audit_gap;
  renderCounts(reply.body.counts);
  renderBans(reply.body.active_bans, reply.body.active_bans_more);
  renderAlerts(reply.body.alerts);
}

async function liftBan(ip) {
  const reply = await call("DELETE", `/api/v1/platform/bans/${encodeURIComponent(ip)}`);
  if (reply.status !== 204) {
    $("page-error").textContent = explain(reply);
  }
  refresh();
}

function addToFeed(event) {
  const body = $("feed").querySelector("tbody");
  const tr = document.createElement("tr");
  const who = event.actor ? event.actor.email || event.actor.user_id || "" : "";
  tr.append(
    cell(event.seq),
    cell(event.ts),
    cell(event.kind),
    cell(event.severity, `sev-${event.severity}`),
    cell(who),
    cell(event.ip),
  );
  body.prepend(tr);
  while (body.children.length > FEED_ROWS) body.lastChild.remove();
}

function onFrame(frame, socket) {
  if (frame.type === "welcome") {
    socket.send(JSON.stringify({ type: "subscribe", channel: "security" }));
  } else if (frame.type === "subscribed") {
    $("status").textContent = "Live: new security events appear at the top.";
  } else if (frame.type === "event" && frame.channel === "security") {
    addToFeed(frame.data);
    if (frame.data && /^(alert|ws\.ip_banned|ban\.)/.test(frame.data.kind || "")) refresh();
  } else if (frame.type === "error") {
    $("page-error").textContent = frame.message || frame.code;
  }
}

function onStatus(message, status) {
  $("status").textContent = message || (status === "connecting…" ? "Connecting…" : status);
}

async function start() {
  let me;
  try {
    me = await currentUser();
  } catch (e) {
    $("page-error").textContent = e.message;
    return;
  }
  drawNav(me);
  if (me.role !== "platform_owner") {
    $("status").textContent = "";
    $("page-error").textContent = "This page is for platform owners.";
    return;
  }
  if (!me.two_factor_enabled) {
    location.assign("/2fa.html");
    return;
  }
  $("owner-tools").hidden = false;
  startAdmin(me);
  await refresh();
  setInterval(refresh, 5000);
  liveSocket({ frame: onFrame, status: onStatus });
}

start();
