// The monitor's audit search: filters (kind, severity, actor, tenant, time range), newest first,
// one page at a time through the list's cursor.
"use strict";

// `request` counts searches and pages asked for: only the latest one's answer is shown.
const auditSearch = { query: null, cursor: null, page: 0, request: 0 };

// A time typed by a person ("2026-12-01 08:00", local time, or RFC 3339) as RFC 3339 UTC;
// "" when empty; null when it is not a time.
function typedTime(text) {
  const t = text.trim();
  if (!t) return "";
  const parsed = new Date(t.includes("T") ? t : t.replace(" ", "T"));
  return Number.isNaN(parsed.getTime()) ? null : parsed.toISOString();
}

// The filters as a query string, or null (with the reason shown) when one is not valid.
function auditQuery() {
  const params = new URLSearchParams();
  const text = { kind: "audit-kind", severity: "audit-severity", actor: "audit-actor", tenant_id: "audit-tenant", limit: "audit-limit" };
  for (const [name, id] of Object.entries(text)) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  for (const [name, id] of Object.entries({ since: "audit-since", until: "audit-until" })) {
    const value = typedTime($(id).value);
    if (value === null) {
      $("audit-error").textContent = `"${$(id).value}" is not a date and time (e.g. 2026-12-01 08:00).`;
      return null;
    }
    if (value) params.set(name, value);
  }
  return params;
}

function auditRow(event) {
  const tr = document.createElement("tr");
  const who = event.actor ? event.actor.email || event.actor.user_id || event.actor.role || "" : "";
  tr.append(
    cell(event.seq),
    cell(event.ts),
    cell(event.kind),
    cell(event.severity, `sev-${event.severity}`),
    cell(who),
    cell(event.tenant_id || event.target_tenant_id),
    cell(event.ip),
  );
  return tr;
}

// Why a page could not be shown. A refused cursor (400 on "Next page") means the instance
// answering no longer has the log the first page came from: it was rotated, or (behind a
// balancer) another instance answered, each keeping its own log.
function auditFailure(reply, next) {
  if (next && reply.status === 400 && codeOf(reply) === "bad_request" && /cursor/i.test(reply.body.error.message || "")) {
    return "The audit log changed since the first page (it was rotated, or another server answered): search again.";
  }
  return explain(reply);
}

// Shows one page of results: the first of a new search, or the next one of the current search.
// "Next page" is disabled while a page loads; a new search overrides a page still loading.
async function auditPage(next) {
  $("audit-error").textContent = "";
  if (!next) {
    const query = auditQuery();
    if (!query) return;
    auditSearch.query = query;
    auditSearch.cursor = null;
    auditSearch.page = 0;
  }
  const request = ++auditSearch.request;
  const params = new URLSearchParams(auditSearch.query);
  if (next && auditSearch.cursor) params.set("cursor", auditSearch.cursor);
  $("audit-next").disabled = true;
  const reply = await call("GET", `/api/v1/platform/audit?${params}`);
  if (request !== auditSearch.request) return;
  $("audit-next").disabled = false;
  if (reply.status !== 200) {
    $("audit-error").textContent = auditFailure(reply, next);
    if (next) {
      auditSearch.cursor = null;
      $("audit-next").hidden = true;
    }
    return;
  }
  auditSearch.page += 1;
  auditSearch.cursor = reply.body.next_cursor || null;
  const body = $("audit-results").querySelector("tbody");
  body.replaceChildren(...reply.body.items.map(auditRow));
  const count = reply.body.items.length;
  $("audit-page").textContent = count
    ? `Page ${auditSearch.page}: ${count} event${count === 1 ? "" : "s"}${auditSearch.cursor ? "" : " (last page)"}.`
    : `Page ${auditSearch.page}: no events.`;
  $("audit-next").hidden = !auditSearch.cursor;
}

function startAuditSearch() {
  onSubmit("audit-form", () => auditPage(false));
  $("audit-next").addEventListener("click", () => auditPage(true));
}
