// The monitor's administration for platform owners: tenants (paged list, create, suspend and
// resume), the people of a tenant (add one, disable, enable, reset the password or two-factor;
// passwords shown once), the platform owners
// (disable, enable, and the two-owner rule for resetting one's second factor: one requests,
// another approves).
"use strict";

const tenantAdmin = { cursor: null, me: null, users: null, owners: null, tenant: null };

function tenantRow(tenant) {
  const tr = document.createElement("tr");
  tr.id = `tenant-${tenant.id}`;
  const actions = document.createElement("td");
  actions.append(
    actionButton(tenant.suspended ? "Resume" : "Suspend", () => setSuspended(tenant, !tenant.suspended), { action: "suspend" }),
    actionButton("People", () => showUsers(tenant), { action: "users" }),
  );
  tr.append(cell(tenant.slug), cell(tenant.name), cell(tenant.id, "mono"), cell(tenant.suspended ? "suspended" : "active", "state"), actions);
  return tr;
}

function tenantSay(text, isError) {
  $("tenants-error").textContent = isError ? text : "";
  $("tenants-status").textContent = isError ? "" : text;
}

async function loadTenants(next) {
  tenantSay("");
  const body = $("tenants").querySelector("tbody");
  if (!next) {
    tenantAdmin.cursor = null;
    body.replaceChildren();
  }
  // Disabled while a page loads: a second click would append the same page twice.
  $("tenants-more").disabled = true;
  const reply = await call("GET", pagePath("/api/v1/platform/tenants?limit=50", tenantAdmin.cursor));
  $("tenants-more").disabled = false;
  if (reply.status !== 200) return tenantSay(explain(reply), true);
  body.append(...reply.body.items.map(tenantRow));
  tenantAdmin.cursor = reply.body.next_cursor;
  $("tenants-more").hidden = !tenantAdmin.cursor;
}

async function setSuspended(tenant, suspended) {
  const reply = await call("PATCH", `/api/v1/platform/tenants/${tenant.id}`, { suspended });
  if (reply.status !== 200) return tenantSay(explain(reply), true);
  const updated = Object.assign({}, tenant, reply.body);
  $(`tenant-${tenant.id}`).replaceWith(tenantRow(updated));
  tenantSay(suspended
    ? `${tenant.slug} is suspended: its people are refused until it is resumed.`
    : `${tenant.slug} is resumed.`);
}

function showUsers(tenant) {
  tenantAdmin.tenant = tenant;
  $("tenant-users-name").textContent = `${tenant.name} (${tenant.slug})`;
  $("tenant-users-section").hidden = false;
  $("tenant-users-error").textContent = "";
  return tenantAdmin.users.load();
}

// Adds a person to the tenant shown; a generated password is shown once.
async function addTenantUser() {
  const tenant = tenantAdmin.tenant;
  const email = $("tenant-user-email").value.trim();
  const say = (text, isError) => {
    $("tenant-users-error").textContent = isError ? text : "";
    $("tenant-users-status").textContent = isError ? "" : text;
  };
  if (!email) return say("Please type the person's email.", true);
  const reply = await call("POST", `/api/v1/platform/tenants/${tenant.id}/users`, { email, role: $("tenant-user-role").value });
  if (reply.status !== 201) return say(explain(reply), true);
  $("tenant-user-email").value = "";
  // Still the tenant shown (another may have been opened meanwhile): then the row goes in.
  if (tenantAdmin.tenant === tenant) tenantAdmin.users.add(reply.body);
  say(`${reply.body.email} was added to ${tenant.slug}.`);
  if (reply.body.password) showSecret(`Password of ${reply.body.email}:`, reply.body.password);
}

async function approve() {
  $("owner-error").textContent = "";
  $("approval-status").textContent = "";
  const id = $("approval-id").value.trim();
  if (!id) {
    $("owner-error").textContent = "Please type the approval id.";
    return;
  }
  const reply = await call("POST", `/api/v1/platform/approvals/${encodeURIComponent(id)}`);
  if (reply.status === 204) {
    $("approval-status").textContent = "Approved: the two-factor authentication was reset.";
  } else {
    $("owner-error").textContent = codeOf(reply) === "forbidden"
      ? "You cannot approve this: a different platform owner must approve a request."
      : explain(reply);
  }
}

function startAdmin(me) {
  tenantAdmin.me = me;
  tenantAdmin.users = userTable({
    prefix: "tenant-users",
    me,
    listPath: () => `/api/v1/tenants/${tenantAdmin.tenant.id}/users?limit=50`,
    disablePath: (u) => `/api/v1/platform/users/${u.id}`,
    resetPasswordPath: (u) => `/api/v1/tenants/${u.tenant_id}/users/${u.id}/password-reset`,
    resetTwoFactorPath: (u) => `/api/v1/platform/users/${u.id}/2fa`,
    secret: showSecret,
  });
  tenantAdmin.owners = userTable({
    prefix: "owners",
    me,
    listPath: () => "/api/v1/platform/owners?limit=50",
    disablePath: (u) => `/api/v1/platform/users/${u.id}`,
    resetTwoFactorPath: (u) => `/api/v1/platform/users/${u.id}/2fa`,
  });
  $("tenants-more").addEventListener("click", () => loadTenants(true));
  onSubmit("tenant-form", async () => {
    const slug = $("tenant-slug").value.trim();
    const name = $("tenant-name").value.trim();
    if (!slug || !name) return tenantSay("Please type a slug and a name.", true);
    const reply = await call("POST", "/api/v1/platform/tenants", { slug, name });
    if (reply.status !== 201) return tenantSay(explain(reply), true);
    $("tenant-slug").value = "";
    $("tenant-name").value = "";
    $("tenants").querySelector("tbody").prepend(tenantRow(reply.body));
    tenantSay(`Tenant ${reply.body.slug} created.`);
  });
  onSubmit("approval-form", approve);
  onSubmit("tenant-user-form", addTenantUser);
  wireSecretBox();
  startAuditSearch();
  loadTenants();
  tenantAdmin.owners.load();
}
