// The key prompt: an admin key, checked with GET /v1/organization/me before it is kept (in this tab's
// sessionStorage only).

import { ApiError, request, storeKey } from "../api.js";
import { busy, errorBox, h, show } from "../dom.js";

export function renderSignIn(view, { message, onSignedIn }) {
  const input = h("input", {
    id: "admin-key",
    name: "admin-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "admin-key-help",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const output = h("div", { "aria-live": "assertive" }, message ? errorBox(new ApiError(401, message)) : null);
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h(
      "p",
      { id: "admin-key-help", class: "muted" },
      "Paste an admin key (from `chatgate admin-keys create`, or one an organisation admin gave you). ",
      "It is kept in this tab only and forgotten when the tab closes.",
    ),
    h("label", { for: "admin-key" }, "Admin key", input),
    h("p", {}, submit),
    output,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    const me = await busy(submit, output, () => request("GET", "me", { key }));
    if (me) {
      storeKey(key);
      input.value = "";
      await onSignedIn(me);
    }
  });
  show(view, form);
  input.focus();
}
