// A paged table of a tenant's users with their actions, shared by the admin page (a tenant admin,
// own tenant) and the monitor (a platform owner, any tenant). The routes differ; the caller names
// them.
"use strict";

// Shows a one-time secret (a generated or temporary password) in the page's #secret-box; "Done"
// (#secret-done, wired by `wireSecretBox`) wipes it from the page.
function showSecret(what, value) {
  $("secret-what").textContent = what;
  $("secret-value").textContent = value;
  $("secret-box").hidden = false;
}

function wireSecretBox() {
  $("secret-done").addEventListener("click", () => {
    $("secret-value").textContent = "";
    $("secret-box").hidden = true;
  });
}

// opts: {
//   prefix: element id prefix ("users" → #users tbody, #users-more, #users-error, #users-status),
//   me: the signed-in user (no actions on their own row),
//   listPath: () => the list route,
//   disablePath(user), resetTwoFactorPath(user), resetPasswordPath(user) (optional),
//   secret(what, value): shows a one-time secret (a temporary password),
// }
function userTable(opts) {
  const body = $(opts.prefix).querySelector("tbody");
  const more = $(`${opts.prefix}-more`);
  const error = $(`${opts.prefix}-error`);
  const status = $(`${opts.prefix}-status`);
  let cursor = null;
  // Each fresh list (another tenant, a reload) is a new generation: the answer of a page asked
  // for by an older one is dropped, so rows of two lists never mix. "More" is disabled while a
  // page loads, so the same page is never appended twice.
  let generation = 0;

  function say(text, isError) {
    error.textContent = isError ? text : "";
    status.textContent = isError ? "" : text;
  }

  function row(user) {
    const tr = document.createElement("tr");
    tr.id = `${opts.prefix}-${user.id}`;
    const twoFactor = user.two_factor_enabled === undefined ? "" : user.two_factor_enabled ? "on" : "off";
    const actions = document.createElement("td");
    if (user.id === opts.me.id) {
      actions.textContent = "you";
    } else {
      actions.append(actionButton(user.disabled ? "Enable" : "Disable", () => setDisabled(user, !user.disabled), { action: "toggle" }));
      if (opts.resetPasswordPath) {
        actions.append(actionButton("Reset password", () => resetPassword(user), { action: "password" }));
      }
      actions.append(actionButton("Reset two-factor", () => resetTwoFactor(user), { action: "twofa" }));
    }
    tr.append(
      cell(user.email),
      cell(ROLE_NAMES[user.role] || user.role),
      cell(user.disabled ? "disabled" : "active", "state"),
      cell(twoFactor),
      actions,
    );
    return tr;
  }

  function replaceRow(user) {
    const old = $(`${opts.prefix}-${user.id}`);
    if (old) old.replaceWith(row(user));
    else body.prepend(row(user));
  }

  async function load(next) {
    say("");
    if (!next) {
      generation += 1;
      cursor = null;
      body.replaceChildren();
      more.hidden = true;
    }
    const mine = generation;
    more.disabled = true;
    const reply = await call("GET", pagePath(opts.listPath(), next ? cursor : null));
    if (mine !== generation) return reply;
    more.disabled = false;
    if (reply.status !== 200) {
      say(explain(reply), true);
      return reply;
    }
    body.append(...reply.body.items.map(row));
    cursor = reply.body.next_cursor;
    more.hidden = !cursor;
    return reply;
  }

  async function setDisabled(user, disabled) {
    const reply = await call("PATCH", opts.disablePath(user), { disabled });
    if (reply.status !== 200) return say(explain(reply), true);
    replaceRow(Object.assign({}, user, reply.body));
    say(`${user.email} is ${disabled ? "disabled: their sessions were ended" : "enabled again"}.`);
  }

  async function resetPassword(user) {
    const reply = await call("POST", opts.resetPasswordPath(user));
    if (reply.status !== 200) return say(explain(reply), true);
    opts.secret(`Temporary password of ${user.email}: they must choose a new one when they sign in.`, reply.body.temporary_password);
    say(`The password of ${user.email} was reset.`);
  }

  async function resetTwoFactor(user) {
    const reply = await call("DELETE", opts.resetTwoFactorPath(user));
    if (reply.status === 202) {
      return say(`Approval requested: another platform owner must confirm approval ${reply.body.approval_id}.`);
    }
    if (reply.status !== 204) return say(explain(reply), true);
    replaceRow(Object.assign({}, user, { two_factor_enabled: user.two_factor_enabled === undefined ? undefined : false }));
    say(`Two-factor authentication of ${user.email} was reset: they sign in with their password alone.`);
  }

  more.addEventListener("click", () => load(true));
  return { load, add: replaceRow };
}
