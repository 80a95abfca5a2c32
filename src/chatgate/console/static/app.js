// The console's shell: who is signed in, the hash router (#/, #/workspaces/<id>/<tab>, #/audit), the
// header. Views render into a fresh container, so a slow answer for a page already left lands nowhere.

import { events, forgetKey, get, storedKey } from "./api.js";
import { h, show } from "./dom.js";
import { renderAudit } from "./views/audit.js";
import { renderSignIn } from "./views/signin.js";
import { renderWorkspace } from "./views/workspace.js";
import { renderWorkspaces } from "./views/workspaces.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOut = document.getElementById("signout");
const status = document.getElementById("status");

const session = { me: null };

function setHeader() {
  const me = session.me;
  nav.hidden = !me;
  signOut.hidden = !me;
  if (!me) {
    who.textContent = "";
    return;
  }
  const scope = me.project_id ? `workspace admin of ${me.project_id}` : "organisation admin";
  nav.querySelector("a").textContent = me.project_id ? "My workspace" : "Workspaces";
  who.textContent = `${me.name || me.id} (${scope})`;
  for (const link of nav.querySelectorAll("a")) {
    const here = window.location.hash || "#/";
    const current = link.getAttribute("href") === "#/" ? !here.startsWith("#/audit") : here.startsWith(link.getAttribute("href"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function signedOut(message) {
  forgetKey();
  session.me = null;
  setHeader();
  const view = h("div");
  show(main, view);
  renderSignIn(view, { message, onSignedIn });
}

async function onSignedIn(me) {
  session.me = me;
  status.textContent = `Signed in as ${me.name || me.id}.`;
  session.landing = window.location.hash || "#/";
  if (!window.location.hash || window.location.hash === "#" || window.location.hash === "#/signin") {
    window.location.hash = "#/";
  }
  await route();
}

function parse(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts;
}

async function route() {
  if (!session.me) return;
  setHeader();
  if (window.location.hash !== session.landing) status.textContent = "";
  const parts = parse(window.location.hash);
  const view = h("div");
  show(main, view);
  const context = { me: session.me };
  if (parts[0] === "audit") {
    await renderAudit(view, context);
  } else if (parts[0] === "workspaces" && parts[1]) {
    await renderWorkspace(view, { ...context, projectId: parts[1], tab: parts[2] || "keys" });
  } else if (session.me.project_id) {
    // A workspace admin lands in its own workspace.
    window.location.replace(`#/workspaces/${encodeURIComponent(session.me.project_id)}/keys`);
  } else {
    await renderWorkspaces(view, context);
  }
}

// "Interactive": the first view (key prompt or a page of data) is drawn and takes input. Marked once, for
// bench/console_load.py and the browser tests' page-weight check.
function interactive() {
  if (performance.getEntriesByName("console:interactive").length === 0) performance.mark("console:interactive");
}

async function start() {
  events.addEventListener("unauthorized", (event) => {
    signedOut(`Your admin key was not accepted: ${event.detail}`);
  });
  signOut.addEventListener("click", () => {
    signedOut("Signed out. The key was removed from this tab.");
  });
  window.addEventListener("hashchange", () => {
    route().then(() => main.focus({ preventScroll: true }));
  });
  if (!storedKey()) {
    signedOut();
    interactive();
    return;
  }
  try {
    session.me = await get("me");
  } catch (error) {
    if (!error.signedOut) signedOut(error.message);
    interactive(); // a 401 already returned to the key prompt
    return;
  }
  await route();
  interactive();
}

start();
