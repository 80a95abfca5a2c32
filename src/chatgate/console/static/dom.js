// Building the page: elements and text nodes only. Nothing here parses HTML, so anything a user named
// (workspaces, keys, audit entries, error messages) is shown as text, whatever it contains; the page's
// Content-Security-Policy (require-trusted-types-for 'script') makes the browser refuse any HTML-parsing sink anyway.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value") {
      element.value = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function show(container, ...children) {
  container.replaceChildren();
  return append(container, children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error && error.message ? error.message : String(error));
}

export function loading(what) {
  return h("p", { class: "muted", "aria-busy": "true" }, `Loading ${what}…`);
}

export function table(columns, rows, { caption, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: "data" },
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : c.cls || null }, c.cell(row))))),
      ),
    ),
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });
const numbers = new Intl.NumberFormat();

export function when(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "—";
  return `${dateTime.format(new Date(unixSeconds * 1000))} UTC`;
}

export function count(value) {
  return numbers.format(value || 0);
}

// A confirmation in a modal <dialog>: focus moves into it, Escape cancels, the caller gets true/false.
export function confirmDialog(message, action) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel");
    const confirm = h("button", { type: "button", class: "danger", value: "confirm" }, action);
    const dialog = h(
      "dialog",
      { "aria-label": action },
      h("p", {}, message),
      h("div", { class: "buttons" }, cancel, confirm),
    );
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => finish(false));
    confirm.addEventListener("click", () => finish(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// Runs an action from a form or button: disables it meanwhile and reports the API's error beside it.
export async function busy(control, output, action) {
  control.disabled = true;
  output.replaceChildren();
  try {
    return await action();
  } catch (error) {
    if (error && error.signedOut) return undefined; // the app has returned to the key prompt
    output.replaceChildren(errorBox(error));
    return undefined;
  } finally {
    control.disabled = false;
  }
}
