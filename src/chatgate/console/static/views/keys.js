// A workspace's model keys: the list (name, created, last used, expiry), creating one through a service
// account (its secret shown once, with a copy button) and revoking one after a confirmation.

import { del, encodeId, listAll, post } from "../api.js";
import { busy, confirmDialog, errorBox, h, loading, show, table, when } from "../dom.js";

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select the key and copy it";
  }
}

function shownOnce(secret, name, onDone) {
  const copyButton = h("button", { type: "button" }, "Copy key");
  copyButton.addEventListener("click", () => copy(secret, copyButton));
  const done = h("button", { type: "button", class: "secondary" }, "I have stored it");
  const box = h(
    "div",
    { class: "once", role: "region", "aria-label": "New key", tabindex: "-1" },
    h("strong", {}, `New key “${name}”. Copy it now: you will not see it again.`),
    h("code", { id: "new-key-value" }, secret),
    h("p", {}, copyButton, " ", done),
  );
  done.addEventListener("click", () => {
    box.remove();
    onDone();
  });
  return box;
}

export async function renderKeys(panel, { project }) {
  const base = `projects/${encodeId(project.id)}`;
  const listArea = h("div", {}, loading("keys"));
  const secretArea = h("div");
  const name = h("input", { id: "new-key-name", name: "name", required: true, maxlength: 200 });
  const expires = h("input", { id: "new-key-expires", name: "expires", type: "date" });
  const create = h("button", { type: "submit" }, "Create key");
  const output = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card inline", "aria-label": "Create a key" },
    h("label", { for: "new-key-name" }, "Key name", name),
    h("label", { for: "new-key-expires" }, "Expires (optional, end of day UTC)", expires),
    create,
    output,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    if (expires.value) body.expires_at = Math.floor(Date.parse(`${expires.value}T23:59:59Z`) / 1000);
    const account = await busy(create, output, () => post(`${base}/service_accounts`, body));
    if (account && account.api_key) {
      form.reset();
      const box = shownOnce(account.api_key.value, account.name, () => name.focus());
      show(secretArea, box);
      box.focus();
      await refresh();
    }
  });

  function revokeButton(key) {
    const button = h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${key.name}` }, "Revoke");
    button.addEventListener("click", async () => {
      const sure = await confirmDialog(
        `Revoke key “${key.name}” (${key.redacted_value})? Calls with it are refused within seconds (gateway instances trust a key lookup for CHATGATE_KEY_CACHE_SECONDS, 30 s by default). This cannot be undone.`,
        "Revoke",
      );
      if (!sure) return;
      const done = await busy(button, listArea, () => del(`${base}/api_keys/${encodeId(key.id)}`));
      if (done) await refresh();
    });
    return button;
  }

  async function refresh() {
    try {
      const keys = await listAll(`${base}/api_keys`);
      show(
        listArea,
        table(
          [
            { title: "Name", cell: (k) => k.name },
            { title: "Key", cell: (k) => h("code", {}, k.redacted_value) },
            { title: "Created", cell: (k) => when(k.created_at) },
            { title: "Last used", cell: (k) => (k.last_used_at ? when(k.last_used_at) : "never") },
            { title: "Expires", cell: (k) => (k.expires_at ? when(k.expires_at) : "never") },
            { title: "Actions", cls: "actions", cell: (k) => revokeButton(k) },
          ],
          keys,
          { empty: "No keys yet: create one below." },
        ),
      );
    } catch (error) {
      if (!error.signedOut) show(listArea, errorBox(error));
    }
  }

  show(panel, h("h2", {}, "Keys"), secretArea, listArea, h("h2", {}, "New key"), form);
  await refresh();
}
