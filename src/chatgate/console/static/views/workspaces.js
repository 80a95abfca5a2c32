// Workspaces (OpenAI's projects): the list an organisation admin sees, creating one, archiving one.

import { encodeId, get, listAll, post } from "../api.js";
import { busy, confirmDialog, errorBox, h, loading, show, table, when } from "../dom.js";

export async function renderWorkspaces(view, { me }) {
  const includeArchived = h("input", { type: "checkbox", id: "include-archived" });
  const listArea = h("div", {}, loading("workspaces"));
  const name = h("input", { id: "new-workspace-name", name: "name", required: true, maxlength: 200 });
  const id = h("input", {
    id: "new-workspace-id",
    name: "id",
    "aria-describedby": "new-workspace-id-help",
  });
  const create = h("button", { type: "submit" }, "Create workspace");
  const output = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card inline", "aria-label": "Create a workspace" },
    h("label", { for: "new-workspace-name" }, "Name", name),
    h("label", { for: "new-workspace-id" }, "Id (optional)", id),
    create,
    h("p", { id: "new-workspace-id-help", class: "muted" }, "Without an id, one is generated. The admin API says which ids it takes."),
    output,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    if (id.value.trim()) body.id = id.value.trim();
    const project = await busy(create, output, () => post("projects", body));
    if (project) {
      form.reset();
      window.location.hash = `#/workspaces/${encodeURIComponent(project.id)}/keys`;
    }
  });

  async function refresh() {
    try {
      const projects = await listAll("projects", { include_archived: includeArchived.checked || undefined });
      show(
        listArea,
        table(
          [
            { title: "Name", cell: (p) => h("a", { href: `#/workspaces/${encodeURIComponent(p.id)}/keys` }, p.name) },
            { title: "Id", cell: (p) => h("code", {}, p.id) },
            { title: "Status", cell: (p) => p.status },
            { title: "Created", cell: (p) => when(p.created_at) },
            {
              title: "Actions",
              cls: "actions",
              cell: (p) => (p.status === "active" && me.project_id === null ? archiveButton(p) : null),
            },
          ],
          projects,
          { empty: "No workspaces yet: create the first below." },
        ),
      );
    } catch (error) {
      if (!error.signedOut) show(listArea, errorBox(error));
    }
  }

  function archiveButton(project) {
    const button = h("button", { type: "button", class: "danger" }, "Archive");
    button.setAttribute("aria-label", `Archive workspace ${project.name}`);
    button.addEventListener("click", async () => {
      const sure = await confirmDialog(
        `Archive workspace “${project.name}” (${project.id})? Its keys stop working.`,
        "Archive",
      );
      if (!sure) return;
      const done = await busy(button, listArea, () => post(`projects/${encodeId(project.id)}/archive`));
      if (done) await refresh();
    });
    return button;
  }

  includeArchived.addEventListener("change", refresh);
  show(
    view,
    h("h1", {}, "Workspaces"),
    h("p", { class: "muted" }, "Every workspace of the organisation. Open one to manage its keys, limits, BYOK resources and usage."),
    h("label", { class: "check", for: "include-archived" }, includeArchived, "Show archived workspaces"),
    listArea,
    h("h2", {}, "New workspace"),
    form,
  );
  await refresh();
}

export async function loadProject(projectId) {
  return get(`projects/${encodeId(projectId)}`);
}
