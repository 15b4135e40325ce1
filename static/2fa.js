// The two-factor page: enrollment with a QR code and the backup codes, shown once. (The second
// step of a sign-in is on `/`; new backup codes and turning it off are on the account page.)
"use strict";

const SECTIONS = ["enroll", "backup-codes", "manage", "offer"];

function show(id) {
  for (const s of SECTIONS) $(s).hidden = s !== id;
}

// The key in groups of four, as authenticator apps show and accept it.
function grouped(secret) {
  return secret.match(/.{1,4}/g).join(" ");
}

// --- Confirming the password ------------------------------------------------------------------

// Changing the second factor needs a sign-in within the last five minutes. When the server
// answers reauthentication_required, the password is asked for and the request sent again
// with it (a right password counts as a fresh sign-in, so the next step needs it no more).
// Resolves to the last reply; a cancelled prompt resolves to the refusal.
async function withPassword(method, path, body) {
  let reply = await call(method, path, body);
  while (reply.body && reply.body.error && reply.body.error.code === "reauthentication_required") {
    const password = await askPassword(reply);
    if (password === null) return reply;
    reply = await call(method, path, Object.assign({}, body, { password }));
    if (reply.body && reply.body.error && reply.body.error.code === "invalid_credentials") {
      $("reauth-error").textContent = "That password is not correct. Please try again.";
      reply = { status: 401, body: { error: { code: "reauthentication_required" } }, retryAfter: null };
    }
  }
  $("reauth").hidden = true;
  return reply;
}

// Shows the password form; resolves to the password typed, or null when cancelled.
function askPassword() {
  $("reauth").hidden = false;
  $("reauth-password").value = "";
  $("reauth-password").focus();
  return new Promise((resolve) => {
    $("reauth-form").onsubmit = (event) => {
      event.preventDefault();
      const password = $("reauth-password").value;
      if (!password) {
        $("reauth-error").textContent = "Please type your password.";
        return;
      }
      $("reauth-error").textContent = "";
      resolve(password);
    };
    $("reauth-cancel").onclick = () => {
      $("reauth").hidden = true;
      $("reauth-error").textContent = "";
      resolve(null);
    };
  });
}

// --- Enrollment -----------------------------------------------------------------------------

async function startEnroll(errorId) {
  const reply = await withPassword("POST", "/api/v1/auth/2fa/setup", {});
  if (reply.status !== 200) {
    $(errorId).textContent = explain(reply);
    return;
  }
  $("qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(reply.body.qr_svg);
  $("secret").textContent = grouped(reply.body.secret);
  show("enroll");
  $("enable-code").focus();
}

onSubmit("enable-form", async () => {
  $("enroll-error").textContent = "";
  const code = $("enable-code").value.replace(/\s/g, "");
  if (!/^\d{6}$/.test(code)) {
    $("enroll-error").textContent = "The code has 6 digits. Please type all of them.";
    return;
  }
  const reply = await withPassword("POST", "/api/v1/auth/2fa/enable", { code });
  if (reply.status !== 200) {
    $("enroll-error").textContent = explain(reply);
    return;
  }
  showBackupCodes(reply.body.backup_codes);
});

// --- Backup codes ---------------------------------------------------------------------------

function showBackupCodes(codes) {
  const list = $("codes");
  list.replaceChildren(...codes.map((c) => {
    const li = document.createElement("li");
    li.textContent = c;
    return li;
  }));
  const text = "Rampart backup codes (each works once)\n\n" + codes.join("\n") + "\n";
  $("copy-codes").onclick = async () => {
    try {
      await navigator.clipboard.writeText(text);
      $("codes-status").textContent = "Copied. Paste them somewhere safe.";
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(list);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $("codes-status").textContent = "Copying is blocked here: the codes are selected, press Ctrl+C (or ⌘+C).";
    }
  };
  $("download-codes").onclick = () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = "rampart-backup-codes.txt";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    $("codes-status").textContent = "Downloaded rampart-backup-codes.txt.";
  };
  show("backup-codes");
}

// --- Offering it ------------------------------------------------------------------------------

$("offer-start").addEventListener("click", () => startEnroll("offer-error"));

// --- Start ----------------------------------------------------------------------------------

async function start() {
  const me = await currentUser();
  drawNav(me);
  $("codes-done").href = landingFor(me);
  const owner = me.role === "platform_owner";
  if (me.two_factor_enabled) {
    show("manage");
  } else if (owner) {
    $("enroll-required").hidden = false;
    show("enroll");
    await startEnroll("enroll-error");
  } else {
    show("offer");
  }
}

start();
