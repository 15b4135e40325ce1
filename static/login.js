// The one sign-in of every page: the password, then (on this same page) the second factor when
// the account has one. The challenge lives only in a variable of this page: leaving or reloading
// the page drops it. Then on to where the user starts (or to enrollment / a new password).
"use strict";

// The second step's challenge, between the two steps. Never stored anywhere else.
let challenge = null;

function showStep(id) {
  $("login-form").hidden = id !== "login-form";
  $("verify").hidden = id !== "verify";
}

function onSubmit(formId, handler) {
  $(formId).addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = $(formId).querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try { await handler(); } finally { buttons.forEach((b) => { b.disabled = false; }); }
  });
}

// A signed-in answer (`{token, expires_at, user, ...}`): where to go next. The token in the body
// is ignored; the cookie set with it is the session.
function signedIn(body) {
  if (body.enrollment_required) location.assign("/2fa.html");
  else if (body.password_change_required) location.assign("/account.html#password-change-required");
  else location.assign(landingFor(body.user));
}

onSubmit("login-form", async () => {
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    $("login-error").textContent = "Please enter your email and your password.";
    return;
  }
  $("login-error").textContent = "";
  const reply = await api("POST", "/api/v1/auth/login", { email, password });
  if (reply.status !== 200) {
    $("login-error").textContent = explain(reply);
    return;
  }
  $("password").value = "";
  if (reply.body.mfa_required) {
    challenge = reply.body.challenge;
    $("verify-error").textContent = "";
    $("verify-restart").hidden = true;
    $("verify-form").hidden = false;
    $("backup-form").hidden = true;
    $("verify-code").value = "";
    $("backup-code").value = "";
    showStep("verify");
    $("verify-code").focus();
    return;
  }
  signedIn(reply.body);
});

async function verify(proof) {
  $("verify-error").textContent = "";
  const reply = await api("POST", "/api/v1/auth/2fa/verify", Object.assign({ challenge }, proof));
  if (reply.status === 200) {
    challenge = null;
    signedIn(reply.body);
    return;
  }
  $("verify-error").textContent = explain(reply);
  if (codeOf(reply) === "challenge_expired") {
    challenge = null;
    $("verify-form").hidden = true;
    $("backup-form").hidden = true;
    $("verify-restart").hidden = false;
  }
}

onSubmit("verify-form", () => {
  const code = $("verify-code").value.replace(/\s/g, "");
  if (!/^\d{6}$/.test(code)) {
    $("verify-error").textContent = "The code has 6 digits. Please type all of them.";
    return Promise.resolve();
  }
  return verify({ code });
});

onSubmit("backup-form", () => {
  const backup = $("backup-code").value.trim();
  if (!backup) {
    $("verify-error").textContent = "Please type one of your backup codes.";
    return Promise.resolve();
  }
  return verify({ backup_code: backup });
});

$("use-backup").addEventListener("click", () => {
  $("verify-form").hidden = true;
  $("backup-form").hidden = false;
  $("verify-error").textContent = "";
  $("backup-code").focus();
});

$("use-code").addEventListener("click", () => {
  $("backup-form").hidden = true;
  $("verify-form").hidden = false;
  $("verify-error").textContent = "";
  $("verify-code").focus();
});

$("verify-restart").addEventListener("click", () => {
  challenge = null;
  showStep("login-form");
  $("email").focus();
});

// Already signed in: straight on. Otherwise the password form.
async function start() {
  const me = await api("GET", "/api/v1/auth/me");
  if (me.status === 200) {
    if (me.body.role === "platform_owner" && !me.body.two_factor_enabled) location.assign("/2fa.html");
    else location.assign(landingFor(me.body));
    return;
  }
  showStep("login-form");
  $("email").focus();
}

start();
