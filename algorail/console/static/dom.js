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

export const pageHeader = (title, crumbs = [], actions = []) => h("div", { class: "page-header" },
  crumbs.length ? h("div", { class: "crumbs" }, crumbs.map(([label, href], i) => [i ? h("span", {}, "/") : null, h("a", { href }, label)])) : null,
  h("div", { class: "page-title-row" }, h("h1", {}, title), h("div", { class: "actions" }, actions)));

export const card = (title, ...body) => h("section", { class: "card" }, title ? h("h2", {}, title) : null, body);

/** Tabs switched by click or the arrow keys: [[label, view], ...]. */
export function tabs(panels) {
  const buttons = [];
  const views = [];
  const select = (index) => {
    buttons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === index));
      b.tabIndex = i === index ? 0 : -1;
      views[i].hidden = i !== index;
    });
  };
  panels.forEach(([label, view], index) => {
    const button = h("button", { role: "tab", type: "button", id: `tab-${index}`, "aria-controls": `panel-${index}` }, label);
    button.addEventListener("click", () => select(index));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = (index + step + panels.length) % panels.length;
      select(next);
      buttons[next].focus();
    });
    buttons.push(button);
    views.push(h("div", { role: "tabpanel", id: `panel-${index}`, "aria-labelledby": `tab-${index}` }, view));
  });
  select(0);
  return [h("div", { role: "tablist", class: "tabs" }, buttons), views];
}
