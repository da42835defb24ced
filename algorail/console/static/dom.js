// Building the page from data without innerHTML, so nothing from the API is parsed as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** h("a", {href: "#/x"}, "text", child, [more]) */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

export const badge = (state) => h("span", { class: `badge badge-${state}` }, state);

export function empty(title, hint) {
  return h("div", { class: "empty" }, h("div", { class: "empty-title" }, title),
    hint ? h("p", {}, hint) : null);
}

/** A table whose first column links each row; `columns` is [[heading, row => cell], ...]. */
export function table(columns, rows, label) {
  return h("table", { class: "table", "aria-label": label },
    h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", { scope: "col" }, heading)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: date.toISOString() },
    date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
}

export function copyButton(text, label = "Copy") {
  const button = h("button", { class: "button button-small", type: "button" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}
