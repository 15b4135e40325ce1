// Staff administration for a restaurant's admins: the people of their own restaurant, adding one
// (a generated password, shown once), disabling and enabling, resetting a password (a temporary
// one, shown once) or the second factor. The server decides who may: staff get 403.
"use strict";

// The user table, once the signed-in user is known.
const staffAdmin = { base: null, table: null };

// Wired before anything loads, so the form never submits natively (a GET with the email in the
// address) whatever happens to the first list.
onSubmit("create-form", addPerson);
wireSecretBox();

async function addPerson() {
  $("create-error").textContent = "";
  if (!staffAdmin.table) {
    $("create-error").textContent = "The page has not finished loading. Reload it and try again.";
    return;
  }
  const email = $("new-email").value.trim();
  if (!email) {
    $("create-error").textContent = "Please type the person's email.";
    return;
  }
  const reply = await call("POST", staffAdmin.base, { email, role: $("new-role").value });
  if (reply.status !== 201) {
    $("create-error").textContent = explain(reply);
    return;
  }
  $("new-email").value = "";
  staffAdmin.table.add(reply.body);
  if (reply.body.password) {
    showSecret(`Password of ${reply.body.email}:`, reply.body.password);
  }
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
  // Adding a person does not need the list: a list that fails to load (its error line says
  // why) leaves the form usable.
  Object.assign(staffAdmin, { base, table });
  // The list says whether this account may administer: staff get 403.
  $("admin-tools").hidden = false;
  const first = await table.load();
  if (first.status === 403) {
    $("admin-tools").hidden = true;
    $("admins-only").hidden = false;
  }
}

start();
