// A workspace's limits per model (OpenAI's project rate limits): requests and tokens per minute.
// Organisation admins edit them; a workspace admin sees them.

import { encodeId, listAll, post } from "../api.js";
import { busy, count, errorBox, h, loading, show, table } from "../dom.js";

export async function renderLimits(panel, { me, project }) {
  const base = `projects/${encodeId(project.id)}/rate_limits`;
  const editable = me.project_id === null || me.project_id === undefined;
  const listArea = h("div", {}, loading("limits"));

  function limitInput(limit, field, label) {
    return h("input", {
      type: "number",
      min: "0",
      step: "1",
      required: true,
      value: String(limit[field]),
      name: field,
      "aria-label": `${label} for ${limit.model}`,
    });
  }

  function editCell(limit) {
    const rpm = limitInput(limit, "max_requests_per_1_minute", "Requests per minute");
    const tpm = limitInput(limit, "max_tokens_per_1_minute", "Tokens per minute");
    const save = h("button", { type: "submit", "aria-label": `Save limits for ${limit.model}` }, "Save");
    const output = h("span", { "aria-live": "polite" });
    const form = h("form", { class: "inline" }, rpm, tpm, save, output);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        max_requests_per_1_minute: Number(rpm.value),
        max_tokens_per_1_minute: Number(tpm.value),
      };
      const updated = await busy(save, output, () => post(`${base}/${encodeId(limit.id)}`, body));
      if (updated) {
        await refresh();
        show(
          saved,
          h("p", { class: "notice" }, `Saved the limits of ${updated.model}. Every gateway instance applies them within 30 s (CHATGATE_KEY_CACHE_SECONDS).`),
        );
      }
    });
    return form;
  }

  const saved = h("div", { "aria-live": "polite" });

  async function refresh() {
    try {
      const limits = await listAll(base);
      const columns = [
        { title: "Model", cell: (l) => l.model },
        { title: "Requests / minute", num: true, cell: (l) => count(l.max_requests_per_1_minute) },
        { title: "Tokens / minute", num: true, cell: (l) => count(l.max_tokens_per_1_minute) },
      ];
      if (editable) columns.push({ title: "Change (requests, tokens per minute)", cell: editCell });
      show(
        listArea,
        editable ? null : h("p", { class: "muted" }, "Only an organisation admin can change limits."),
        table(columns, limits, { empty: "No model is allowed for this workspace." }),
      );
    } catch (error) {
      if (!error.signedOut) show(listArea, errorBox(error));
    }
  }

  show(panel, h("h2", {}, "Limits per model"), saved, listArea);
  await refresh();
}
