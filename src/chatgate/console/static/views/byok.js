// A workspace's own Azure resources per region (bring-your-own-keys): shown without the key, set, removed.
// Writes go to that region's Secrets Manager through the admin API; the key is sent once and never shown.

import { del, encodeId, get, post } from "../api.js";
import { busy, confirmDialog, errorBox, h, loading, show, table } from "../dom.js";

const REGIONS = ["eu", "us"];

// "model=deployment" per line <-> {"model": "deployment"}
function parseDeployments(text) {
  const map = {};
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const [model, deployment, ...rest] = line.split("=").map((part) => part.trim());
    if (!model || !deployment || rest.length) {
      throw new Error(`Deployments, line ${index + 1}: write model=deployment (got “${line}”).`);
    }
    map[model] = deployment;
  }
  return map;
}

function deploymentsText(deployments) {
  return Object.entries(deployments || {})
    .map(([model, deployment]) => (model === deployment ? model : `${model} → ${deployment}`))
    .join(", ");
}

export async function renderByok(panel, { project }) {
  const base = `projects/${encodeId(project.id)}/byok`;
  const listArea = h("div", {}, loading("BYOK resources"));
  const region = h("select", { id: "byok-region", name: "region" }, REGIONS.map((r) => h("option", { value: r }, r)));
  const endpoint = h("input", {
    id: "byok-endpoint",
    name: "endpoint",
    type: "url",
    required: true,
    placeholder: "https://<resource>.openai.azure.com",
  });
  const apiKey = h("input", { id: "byok-key", name: "api_key", type: "password", autocomplete: "off", required: true });
  const apiVersion = h("input", { id: "byok-version", name: "api_version", placeholder: "default" });
  const deployments = h("textarea", {
    id: "byok-deployments",
    name: "deployments",
    rows: "3",
    placeholder: "gpt-4o-mini=my-gpt-4o-mini",
    "aria-describedby": "byok-deployments-help",
  });
  const save = h("button", { type: "submit" }, "Save resource");
  const output = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-label": "Set a BYOK resource" },
    h(
      "div",
      { class: "inline" },
      h("label", { for: "byok-region" }, "Region", region),
      h("label", { for: "byok-endpoint" }, "Azure endpoint", endpoint),
      h("label", { for: "byok-key" }, "Azure API key", apiKey),
      h("label", { for: "byok-version" }, "API version (optional)", apiVersion),
    ),
    h("label", { for: "byok-deployments" }, "Deployments (optional, one model=deployment per line)", deployments),
    h("p", { id: "byok-deployments-help", class: "muted" }, "Without deployments, the workspace's models use deployments of the same name."),
    h("p", {}, save),
    output,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { endpoint: endpoint.value.trim(), api_key: apiKey.value };
    if (apiVersion.value.trim()) body.api_version = apiVersion.value.trim();
    const saved = await busy(save, output, async () => {
      const map = parseDeployments(deployments.value);
      if (Object.keys(map).length) body.deployments = map;
      return post(`${base}/${encodeId(region.value)}`, body);
    });
    apiKey.value = "";
    if (saved) {
      form.reset();
      await refresh(); // the list shows the resource before the message says so
      show(output, h("p", { class: "notice" }, `Saved the ${saved.region} resource.`));
    }
  });

  function removeButton(resource) {
    const button = h("button", { type: "button", class: "danger", "aria-label": `Remove the ${resource.region} resource` }, "Remove");
    button.addEventListener("click", async () => {
      const sure = await confirmDialog(
        `Remove the workspace's own ${resource.region} resource? Its calls go to the platform's resource again.`,
        "Remove",
      );
      if (!sure) return;
      const done = await busy(button, listArea, () => del(`${base}/${encodeId(resource.region)}`));
      if (done) await refresh();
    });
    return button;
  }

  async function refresh() {
    try {
      const result = await get(base);
      show(
        listArea,
        table(
          [
            { title: "Region", cell: (r) => r.region },
            { title: "Endpoint", cell: (r) => h("code", {}, r.endpoint) },
            { title: "API version", cell: (r) => r.api_version || "default" },
            { title: "Deployments", cell: (r) => deploymentsText(r.deployments) || "same names" },
            { title: "Actions", cls: "actions", cell: removeButton },
          ],
          result.data || [],
          { empty: "No resource of its own: this workspace uses the platform's Azure resources." },
        ),
      );
    } catch (error) {
      if (!error.signedOut) show(listArea, errorBox(error));
    }
  }

  show(panel, h("h2", {}, "BYOK resources"), listArea, h("h2", {}, "Set a resource"), form);
  await refresh();
}
