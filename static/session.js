// The one session every signed-in page shares: the `rampart_session` cookie that `/` set. This
// file checks it on load, sends the browser back to `/` when it is gone (now or later), draws the
// navigation with its sign-out button, and opens the WebSocket with a ticket. No token is ever
// read or stored by a page: the cookie is HttpOnly.
"use strict";

// Leaves the page; the promise never settles, so nothing after it runs on a page being left.
function leaveTo(path) {
  location.assign(path);
  return new Promise(() => {});
}

// Like `api`, but a reply that means "no usable session" leaves the page: 401 `unauthenticated`
// (expired, revoked, signed out elsewhere) to `/`, and the two half-finished sign-ins to the
// page that finishes them.
async function call(method, path, body) {
  const reply = await api(method, path, body);
  const code = codeOf(reply);
  if (reply.status === 401 && code === "unauthenticated") return leaveTo("/");
  if (code === "password_change_required") return leaveTo("/account.html#password-change-required");
  if (code === "two_factor_enrollment_required") return leaveTo("/2fa.html");
  return reply;
}

// The signed-in user (`GET /api/v1/auth/me`), or off to `/` without one.
async function currentUser() {
  const me = await call("GET", "/api/v1/auth/me");
  if (me.status !== 200) {
    // The server answered something else than a session (e.g. busy): nothing to show.
    throw new Error(explain(me));
  }
  return me.body;
}

// A table cell with `text` (nothing for null).
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

// A small button that runs `handler` (disabled while it runs); `data` becomes data-* attributes.
function actionButton(text, handler, data) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = text;
  for (const [k, v] of Object.entries(data || {})) b.dataset[k] = v;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await handler(); } finally { b.disabled = false; }
  });
  return b;
}

// A time for people: local date and time, or "" when absent.
function when(ts) {
  return ts ? new Date(ts).toLocaleString() : "";
}

// Runs `handler` on the form's submit, with its buttons disabled meanwhile.
function onSubmit(formId, handler) {
  $(formId).addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = $(formId).querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try { await handler(); } finally { buttons.forEach((b) => { b.disabled = false; }); }
  });
}

// A list route's next page: `path` with `cursor` added (the cursor is opaque, passed as given).
function pagePath(path, cursor) {
  if (!cursor) return path;
  return `${path}${path.includes("?") ? "&" : "?"}cursor=${encodeURIComponent(cursor)}`;
}

function link(href, text, id) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (id) a.id = id;
  return a;
}

// Fills `<nav id="nav">`: who is signed in, the pages this user may open, and sign-out.
function drawNav(me) {
  const nav = $("nav");
  if (!nav) return;
  const links = [];
  if (me.role === "platform_owner") links.push(link("/monitor.html", "Security monitor", "nav-monitor"));
  else links.push(link("/dashboard.html", "Live orders", "nav-dashboard"));
  if (me.role === "tenant_admin") links.push(link("/admin.html", "Staff", "nav-admin"));
  links.push(link("/account.html", "My account", "nav-account"));
  const who = document.createElement("span");
  who.className = "who";
  who.id = "nav-who";
  who.textContent = `${me.email} (${ROLE_NAMES[me.role] || me.role})`;
  const out = document.createElement("button");
  out.type = "button";
  out.className = "secondary";
  out.id = "logout";
  out.textContent = "Sign out";
  out.addEventListener("click", signOut);
  nav.replaceChildren(who, ...links, out);
}

// Signs out and leaves for `/`. A session that had already ended (401) is as good as signed
// out; any other failure (network, server) leaves the session alive, so the page stays and
// says so rather than pretend.
async function signOut() {
  const out = $("logout");
  if (out) out.disabled = true;
  const reply = await api("POST", "/api/v1/auth/logout");
  if (reply.status === 204 || reply.status === 200 || reply.status === 401) return leaveTo("/");
  if (out) out.disabled = false;
  showSignOutError(`You are still signed in: signing out failed. ${explain(reply)}`);
}

// Shows why sign-out failed in the navigation, where the button is.
function showSignOutError(text) {
  let note = $("logout-error");
  if (!note) {
    note = document.createElement("span");
    note.id = "logout-error";
    note.className = "error";
    note.setAttribute("role", "alert");
    $("nav").append(note);
  }
  note.textContent = text;
}

// Opens the live connection: a single-use ticket (cookie-authenticated), then `/ws?ticket=`.
// `handlers.frame(frame, socket)` gets every JSON frame; `handlers.status(text)` progress.
// A close with 1008 (policy: signed out, session ended, disabled, suspended) checks the session
// and leaves for `/` when it is gone; other closes reconnect with a growing delay.
function liveSocket(handlers) {
  let retry = 1;
  const again = (message) => {
    const secs = Math.min(retry, 30);
    retry *= 2;
    handlers.status(`${message} Retrying in ${secs} s.`, "offline");
    setTimeout(open, secs * 1000);
  };
  async function open() {
    handlers.status("", "connecting…");
    const ticket = await call("POST", "/api/v1/ws/ticket", {});
    if (ticket.status !== 200) return again(`Cannot open live updates: ${explain(ticket)}`);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws?ticket=${encodeURIComponent(ticket.body.ticket)}`);
    let opened = false;
    socket.addEventListener("open", () => { opened = true; });
    socket.addEventListener("message", (message) => {
      let frame;
      try { frame = JSON.parse(message.data); } catch (_) { return; }
      if (frame.type === "welcome") retry = 1;
      handlers.frame(frame, socket);
    });
    socket.addEventListener("close", async (event) => {
      if (!opened) {
        // The browser hides the refusal's status: too many connections, attempts or a ban.
        return again("The live connection was refused (too many connections or attempts, or this address is blocked).");
      }
      if (event.code === 1008) {
        // Ended by the server: if the session is gone, `call` leaves for `/`.
        await call("GET", "/api/v1/auth/me");
        handlers.status("The server ended the live connection (too many rate-limit violations, or access was withdrawn).", "closed");
        return;
      }
      const reasons = {
        1009: "A message was too large; the live connection was closed.",
        1013: "The connection could not keep up with updates; reconnecting.",
      };
      again(reasons[event.code] || "The live connection was lost.");
    });
  }
  open();
}
