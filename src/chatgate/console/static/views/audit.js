// The audit log: every change, newest first, filterable by workspace and event type, a page at a time.

import { get, listAll } from "../api.js";
import { busy, errorBox, h, loading, show, table, when } from "../dom.js";

// The event types chatgate writes (OpenAI's names).
const EVENT_TYPES = [
  "project.created",
  "project.updated",
  "project.archived",
  "service_account.created",
  "service_account.deleted",
  "api_key.created",
  "api_key.updated",
  "api_key.deleted",
  "rate_limit.updated",
  "rate_limit.deleted",
  "external_key.registered",
  "external_key.removed",
  "tenant.admin_api_key.created",
  "tenant.admin_api_key.deleted",
];
const PAGE = 50;

function details(entry) {
  const payload = entry[entry.type];
  if (payload === undefined) return "";
  return JSON.stringify(payload);
}

function actor(entry) {
  const key = entry.actor && entry.actor.api_key;
  if (!key) return entry.actor ? entry.actor.type : "—";
  return key.id || key.type || "api key";
}

export async function renderAudit(view, { me }) {
  const workspace = h("select", { id: "audit-workspace", name: "workspace" });
  const eventType = h(
    "select",
    { id: "audit-type", name: "type" },
    h("option", { value: "" }, "All event types"),
    EVENT_TYPES.map((type) => h("option", { value: type }, type)),
  );
  const apply = h("button", { type: "submit" }, "Filter");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Older entries");
  const output = h("div", { "aria-live": "polite" });
  const listArea = h("div", {}, loading("the audit log"));
  const form = h(
    "form",
    { class: "card inline", "aria-label": "Filter the audit log" },
    h("label", { for: "audit-workspace" }, "Workspace", workspace),
    h("label", { for: "audit-type" }, "Event type", eventType),
    apply,
  );
  let entries = [];
  let after;

  function render() {
    show(
      listArea,
      table(
        [
          { title: "When", cell: (e) => when(e.effective_at) },
          { title: "Event", cls: "nowrap", cell: (e) => h("code", {}, e.type) },
          { title: "Workspace", cell: (e) => (e.project ? (e.project.name ? `${e.project.name} (${e.project.id})` : e.project.id) : "—") },
          { title: "By (admin key)", cell: (e) => actor(e) },
          { title: "Request", cell: (e) => (e.request_id ? h("code", {}, e.request_id) : "—") },
          { title: "Details", cell: (e) => h("code", {}, details(e)) },
        ],
        entries,
        { empty: "No entries match." },
      ),
    );
  }

  async function load(reset) {
    if (reset) {
      entries = [];
      after = undefined;
      show(listArea, loading("the audit log"));
    }
    const page = await busy(reset ? apply : more, output, () =>
      get("audit_logs", {
        "project_ids[]": workspace.value ? [workspace.value] : undefined,
        "event_types[]": eventType.value ? [eventType.value] : undefined,
        limit: PAGE,
        after,
      }),
    );
    if (!page) return;
    entries = entries.concat(page.data || []);
    after = page.last_id;
    more.hidden = !page.has_more;
    render();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(true);
  });
  more.addEventListener("click", () => load(false));
  show(view, h("h1", {}, "Audit log"), form, output, listArea, h("p", {}, more));

  if (me.project_id) {
    workspace.append(h("option", { value: me.project_id }, me.project_id));
    workspace.disabled = true;
  } else {
    workspace.append(h("option", { value: "" }, "All workspaces"));
    try {
      const projects = await listAll("projects", { include_archived: true });
      for (const p of projects) workspace.append(h("option", { value: p.id }, `${p.name} (${p.id})`));
    } catch (error) {
      if (!error.signedOut) show(output, errorBox(error));
    }
  }
  await load(true);
}
