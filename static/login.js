// The sign-in page: password step, then on to the second factor or enrollment when needed.
"use strict";

const $ = (id) => document.getElementById(id);

function showSignedIn(me) {
  $("login-form").hidden = true;
  $("signed-in").hidden = false;
  $("signed-in-email").textContent = me.email;
  $("signed-in-role").textContent = ROLE_NAMES[me.role] || me.role;
  $("link-dashboard").hidden = me.role === "platform_owner";
  $("link-monitor").hidden = me.role !== "platform_owner";
}

async function start() {
  const me = await api("GET", "/api/v1/auth/me");
  if (me.status !== 200) return;
  if (me.body.role === "platform_owner" && !me.body.two_factor_enabled) {
    location.assign("/2fa.html");
    return;
  }
  showSignedIn(me.body);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    $("login-error").textContent = "Please enter your email and your password.";
    return;
  }
  $("login-submit").disabled = true;
  $("login-error").textContent = "";
  const reply = await api("POST", "/api/v1/auth/login", { email, password });
  $("login-submit").disabled = false;
  if (reply.status !== 200) {
    $("login-error").textContent = explain(reply);
    return;
  }
  $("password").value = "";
  if (reply.body.mfa_required) {
    sessionStorage.setItem(CHALLENGE_KEY, reply.body.challenge);
    location.assign("/2fa.html");
  } else if (reply.body.enrollment_required) {
    location.assign("/2fa.html");
  } else {
    showSignedIn(reply.body.user);
  }
});

$("logout").addEventListener("click", async () => {
  const reply = await api("POST", "/api/v1/auth/logout");
  if (reply.status !== 204) {
    $("logout-error").textContent = explain(reply);
    return;
  }
  $("signed-in").hidden = true;
  $("login-form").hidden = false;
});

start();
