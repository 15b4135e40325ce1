// Shared by every page: JSON requests to the API (with the session cookie) and error messages a
// person can act on. Nothing here keeps a token or a challenge anywhere but in memory.
"use strict";

const $ = (id) => document.getElementById(id);

const ROLE_NAMES = {
  platform_owner: "platform owner",
  tenant_admin: "restaurant admin",
  tenant_staff: "restaurant staff",
};

// Sends a JSON request with the session cookie. Resolves to {status, body, retryAfter};
// a network failure resolves to status 0.
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, init);
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = null; }
    return { status: res.status, body: parsed, retryAfter: res.headers.get("retry-after") };
  } catch (_) {
    return { status: 0, body: null, retryAfter: null };
  }
}

// What went wrong, in words a person understands.
function explain(reply) {
  const code = reply.body && reply.body.error ? reply.body.error.code : "";
  switch (code) {
    case "invalid_credentials":
      return "That email and password do not match an account. Check both and try again.";
    case "invalid_code":
      return "That code is not correct. Check the code in your authenticator app (it changes every 30 seconds) and try again.";
    case "challenge_expired":
      return "This sign-in has expired or had too many wrong codes. Please sign in again.";
    case "too_many_attempts": {
      const wait = reply.retryAfter ? ` Wait ${reply.retryAfter} seconds and` : " Wait a while and";
      return `Too many attempts.${wait} try again.`;
    }
    case "busy": {
      const wait = reply.retryAfter ? ` in ${reply.retryAfter} seconds` : " in a moment";
      return `The server is busy checking other sign-ins. Please try again${wait}.`;
    }
    case "reauthentication_required":
      return "Please confirm your password to continue.";
    case "two_factor_required":
      return "Platform owners must keep two-factor authentication turned on.";
    case "unauthenticated":
      return "You are not signed in, or your session has ended. Please sign in again.";
    case "bad_request":
      // A body the server could not read is the page's doing (a field left out); otherwise
      // the server's own words say what was wrong (which parameter, which value).
      if (/^(invalid JSON body|cannot read body)/.test(reply.body.error.message || "")) {
        return "Please fill in every field.";
      }
      return sentence(reply.body.error.message) || "The request was not understood. Please check what you typed.";
    case "conflict":
      return sentence(reply.body.error.message) || "That conflicts with what exists already.";
    case "validation_failed": {
      const field = reply.body.error.field ? ` (${reply.body.error.field})` : "";
      return `${reply.body.error.message}${field}.`;
    }
    case "forbidden":
      return "Your account is not allowed to do that.";
    case "not_found":
      return "That no longer exists.";
    case "account_disabled":
      return "This account is disabled. Ask an administrator to enable it.";
    case "tenant_suspended":
      return "This restaurant's account is suspended. Contact the platform's operators.";
    case "password_change_required":
      return "You must set a new password first.";
    case "two_factor_enrollment_required":
      return "You must turn on two-factor authentication first.";
    case "origin_not_allowed":
      return "This page is not allowed to make that request. Open Rampart from its own address.";
  }
  if (reply.status === 0) return "Cannot reach the server. Check your connection and try again.";
  if (reply.status >= 500) return "Something went wrong on our side. Please try again in a moment.";
  return "That did not work. Please try again.";
}

// `text` as a sentence: capital first letter, final full stop; "" for nothing.
function sentence(text) {
  const t = (text || "").trim();
  if (!t) return "";
  return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".");
}

// The `error.code` of a reply, or "".
function codeOf(reply) {
  return reply.body && reply.body.error ? reply.body.error.code : "";
}

// Where a signed-in user starts: platform owners watch the monitor, tenant users their orders.
function landingFor(user) {
  return user.role === "platform_owner" ? "/monitor.html" : "/dashboard.html";
}
