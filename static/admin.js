// Staff administration for a restaurant's admins: the people of their own restaurant, adding one
// (a generated password, shown once), disabling and enabling, resetting a password (a temporary
// one, shown once) or the second factor. The server decides who may: staff get 403.
"use strict";

function showSecret(what, value) {
  $("secret-what").textContent = what;
  $("secret-value").textContent = value;
  $("secret-box").hidden = false;
}

$("secret-done").addEventListener("click", () => {
  $("secret-value").textContent = "";
  $("secret-box").hidden = true;
});

async function start() {
  let me;
  try {
    me = await currentUser();
  } catch (e) {
    $("page-error").textContent = e.message;
    return;
  }
  drawNav(me);
  if (!me.tenant_id) {
    $("page-error").textContent = "Platform owners manage a restaurant's people from the security monitor.";
    return;
  }
  const base = `/api/v1/tenants/${me.tenant_id}/users`;
  const table = userTable({
    prefix: "users",
    me,
    listPath: () => `${base}?limit=50`,
    disablePath: (u) => `${base}/${u.id}`,
    resetPasswordPath: (u) => `${base}/${u.id}/password-reset`,
    resetTwoFactorPath: (u) => `${base}/${u.id}/2fa`,
    secret: showSecret,
  });
  // The list says whether this account may administer: staff get 403.
  $("admin-tools").hidden = false;
  const first = await table.load();
  if (first.status === 403) {
    $("admin-tools").hidden = true;
    $("admins-only").hidden = false;
    return;
  }

  onSubmit("create-form", async () => {
    $("create-error").textContent = "";
    const email = $("new-email").value.trim();
    if (!email) {
      $("create-error").textContent = "Please type the person's email.";
      return;
    }
    const reply = await call("POST", base, { email, role: $("new-role").value });
    if (reply.status !== 201) {
      $("create-error").textContent = explain(reply);
      return;
    }
    $("new-email").value = "";
    table.add(reply.body);
    if (reply.body.password) {
      showSecret(`Password of ${reply.body.email}:`, reply.body.password);
    }
  });
}

start();
