// My account: change my password, see where I am signed in (and end those sessions), and my
// second factor (new backup codes, turning it off where allowed, or a link to set it up).
"use strict";

const account = { me: null, mustChange: false };

// --- Password -------------------------------------------------------------------------------

onSubmit("password-form", async () => {
  $("password-error").textContent = "";
  $("password-status").textContent = "";
  const current = $("current-password").value;
  const next = $("new-password").value;
  if (!current || !next) {
    $("password-error").textContent = "Please type your current password and a new one.";
    return;
  }
  const reply = await call("POST", "/api/v1/auth/password", { current_password: current, new_password: next });
  if (reply.status !== 204) {
    $("password-error").textContent = codeOf(reply) === "invalid_credentials"
      ? "Your current password is not correct."
      : explain(reply);
    return;
  }
  $("current-password").value = "";
  $("new-password").value = "";
  if (account.mustChange) {
    location.assign(landingFor(account.me));
    return;
  }
  $("password-status").textContent = "Password changed. Every other session of yours was signed out.";
  loadSessions();
});

// --- Sessions -------------------------------------------------------------------------------

let sessionsCursor = null;

function sessionRow(s) {
  const tr = document.createElement("tr");
  tr.id = `session-${s.id}`;
  const action = document.createElement("td");
  if (s.current) {
    const mark = document.createElement("strong");
    mark.className = "current";
    mark.textContent = "this one";
    action.append(mark);
  } else {
    action.append(actionButton("Sign out", () => endSession(s.id), { session: s.id }));
  }
  tr.append(cell(when(s.created_at)), cell(when(s.last_seen_at)), cell(s.ip), cell(s.user_agent), action);
  return tr;
}

// The first page (`more` false) or the next one.
async function loadSessions(more) {
  $("sessions-error").textContent = "";
  const body = $("sessions").querySelector("tbody");
  if (!more) {
    sessionsCursor = null;
    body.replaceChildren();
  }
  const reply = await call("GET", pagePath("/api/v1/auth/sessions?limit=10", sessionsCursor));
  if (reply.status !== 200) {
    $("sessions-error").textContent = explain(reply);
    return;
  }
  body.append(...reply.body.items.map(sessionRow));
  sessionsCursor = reply.body.next_cursor;
  $("sessions-more").hidden = !sessionsCursor;
}

async function endSession(id) {
  $("sessions-status").textContent = "";
  const reply = await call("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(id)}`);
  if (reply.status !== 204) {
    $("sessions-error").textContent = explain(reply);
    return;
  }
  const row = $(`session-${id}`);
  if (row) row.remove();
  $("sessions-status").textContent = "That session was signed out.";
}

$("sessions-more").addEventListener("click", () => loadSessions(true));

$("end-others").addEventListener("click", async () => {
  $("sessions-status").textContent = "";
  const reply = await call("DELETE", "/api/v1/auth/sessions");
  if (reply.status !== 204) {
    $("sessions-error").textContent = explain(reply);
    return;
  }
  await loadSessions();
  $("sessions-status").textContent = "Every other session was signed out.";
});

// --- Second factor --------------------------------------------------------------------------

async function loadTwoFactor() {
  const reply = await call("GET", "/api/v1/auth/2fa");
  if (reply.status !== 200) {
    $("twofa-error").textContent = explain(reply);
    return;
  }
  const on = reply.body.enabled;
  $("twofa-status").textContent = on
    ? `On. Backup codes left: ${reply.body.backup_codes_remaining}.`
    : "Off: signing in needs only your password.";
  $("twofa-on").hidden = !on;
  $("twofa-off").hidden = on;
  const owner = account.me.role === "platform_owner";
  $("disable-form").hidden = owner;
  $("owner-keeps").hidden = !owner;
}

onSubmit("regenerate-form", async () => {
  $("twofa-error").textContent = "";
  $("twofa-done").textContent = "";
  const code = $("regenerate-code").value.replace(/\s/g, "");
  if (!code) {
    $("twofa-error").textContent = "Please type the current code from your app.";
    return;
  }
  const reply = await call("POST", "/api/v1/auth/2fa/backup-codes", { code });
  if (reply.status !== 200) {
    $("twofa-error").textContent = explain(reply);
    return;
  }
  $("regenerate-code").value = "";
  $("new-codes").replaceChildren(...reply.body.backup_codes.map((c) => {
    const li = document.createElement("li");
    li.textContent = c;
    return li;
  }));
  $("new-codes-box").hidden = false;
  await loadTwoFactor();
});

onSubmit("disable-form", async () => {
  $("twofa-error").textContent = "";
  $("twofa-done").textContent = "";
  const password = $("disable-password").value;
  const code = $("disable-code").value.replace(/\s/g, "");
  if (!password || !code) {
    $("twofa-error").textContent = "Please type your password and the current code from your app.";
    return;
  }
  const reply = await call("DELETE", "/api/v1/auth/2fa", { code, password });
  if (reply.status !== 204) {
    $("twofa-error").textContent = codeOf(reply) === "invalid_credentials"
      ? "That password is not correct."
      : explain(reply);
    return;
  }
  $("disable-password").value = "";
  $("disable-code").value = "";
  $("new-codes-box").hidden = true;
  $("twofa-done").textContent = "Two-factor authentication is off.";
  await loadTwoFactor();
});

// --- Start ----------------------------------------------------------------------------------

async function start() {
  try {
    account.me = await currentUser();
  } catch (e) {
    $("page-error").textContent = e.message;
    return;
  }
  drawNav(account.me);
  account.mustChange = location.hash === "#password-change-required";
  $("must-change").hidden = !account.mustChange;
  for (const id of ["password-section", "sessions-section", "twofa-section"]) $(id).hidden = false;
  if (account.mustChange) $("current-password").focus();
  await Promise.all([loadSessions(), loadTwoFactor()]);
}

start();
