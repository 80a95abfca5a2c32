// One workspace: its name, and tabs for its keys, limits, BYOK resources and usage (#/workspaces/<id>/<tab>).

import { encodeId, get } from "../api.js";
import { errorBox, h, loading, show } from "../dom.js";
import { renderByok } from "./byok.js";
import { renderKeys } from "./keys.js";
import { renderLimits } from "./limits.js";
import { renderUsage } from "./usage.js";

const TABS = [
  ["keys", "Keys", renderKeys],
  ["limits", "Limits", renderLimits],
  ["byok", "BYOK resources", renderByok],
  ["usage", "Usage", renderUsage],
];

export async function renderWorkspace(view, { me, projectId, tab }) {
  show(view, loading("the workspace"));
  let project;
  try {
    project = await get(`projects/${encodeId(projectId)}`);
  } catch (error) {
    if (!error.signedOut) {
      show(view, h("h1", {}, "Workspace not available"), errorBox(error), h("p", {}, h("a", { href: "#/" }, "Back to the workspaces")));
    }
    return;
  }
  const [, , render] = TABS.find(([name]) => name === tab) || TABS[0];
  const base = `#/workspaces/${encodeURIComponent(project.id)}`;
  const panel = h("section", { id: "panel", "aria-labelledby": "workspace-title" });
  show(
    view,
    me.project_id ? null : h("p", {}, h("a", { href: "#/" }, "← All workspaces")),
    h("h1", { id: "workspace-title" }, project.name),
    h(
      "p",
      { class: "muted" },
      "Id ",
      h("code", {}, project.id),
      project.status === "archived" ? " · archived" : null,
    ),
    h(
      "nav",
      { class: "tabs", "aria-label": "Workspace sections" },
      TABS.map(([name, title]) =>
        h("a", { href: `${base}/${name}`, "aria-current": name === (tab || "keys") ? "page" : null }, title),
      ),
    ),
    panel,
  );
  await render(panel, { me, project });
}
