// Forms built from JSON Schemas: one field per property of an object schema (text,
// number, checkbox, choice; JSON for nested values). A test request's body (else one text
// area; the body sent is always what the preview shows), and a component's config.

import { h } from "./dom.js";

/** The smallest body a JSON Schema accepts, for a curl or a form to start from. */
export function example(schema) {
  const kinds = { string: "text", integer: 0, number: 0, boolean: false, array: [], null: null };
  if (!schema || schema.type === "object" || schema.properties) {
    return Object.fromEntries((schema?.required || []).map((name) => [name, example(schema.properties?.[name])]));
  }
  if (schema.enum?.length) return schema.enum[0];
  return schema.type in kinds ? kinds[schema.type] : {};
}

const isJson = (contentType) => /^application\/([\w.+-]*\+)?json\b/.test(contentType || "application/json");

function field(name, schema, required, id, initial, onChange) {
  const label = h("label", { for: id }, name, required ? h("span", { class: "required", title: "required" }, " *") : null);
  const hint = schema.description ? h("span", { class: "field-hint" }, schema.description) : null;
  let input;
  let read;
  if (schema.enum?.length) {
    input = h("select", { id }, schema.enum.map((v) => h("option", { value: JSON.stringify(v), selected: v === initial }, String(v))));
    read = () => JSON.parse(input.value);
  } else if (schema.type === "boolean") {
    input = h("input", { id, type: "checkbox", checked: initial === true });
    read = () => (input.checked ? true : initial === undefined ? undefined : false);
  } else if (schema.type === "integer" || schema.type === "number") {
    input = h("input", { id, type: "number", step: schema.type === "integer" ? "1" : "any", value: initial === undefined ? "" : String(initial) });
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (schema.type === "string" || !schema.type) {
    input = h("input", { id, type: "text", value: initial ?? "", spellcheck: "false" });
    read = () => (input.value === "" && !required ? undefined : input.value);
  } else {
    input = h("textarea", { id, rows: 2, spellcheck: "false", class: "mono" }, initial === undefined ? "" : JSON.stringify(initial));
    read = () => (input.value === "" ? undefined : JSON.parse(input.value));
  }
  input.addEventListener("input", onChange);
  input.addEventListener("change", onChange);
  return { row: h("div", { class: "field" }, label, input, hint), read };
}

/**
 * One field per property of an object schema, starting from `initial`; `value()` is the
 * object the fields hold (empty fields left out), or throws while a JSON field does not parse.
 */
export function objectFields(schema, initial, idPrefix, onChange) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, property]) => ({
    name, ...field(name, property || {}, required.has(name), `${idPrefix}-${name}`, initial?.[name], onChange),
  }));
  const value = () => Object.fromEntries(fields.map(({ name, read }) => [name, read()]).filter(([, v]) => v !== undefined));
  return { rows: fields.map((f) => f.row), value };
}

/** {element, body(): the request text, or throws when a JSON field does not parse}. */
export function requestForm(path, idPrefix) {
  const schema = path.schema || null;
  if (!isJson(path.contentType) || !schema?.properties) {
    const start = isJson(path.contentType) ? JSON.stringify(example(schema), null, 2) : "";
    const area = h("textarea", { id: `${idPrefix}-raw`, rows: 6, class: "mono", spellcheck: "false" }, start);
    return {
      element: h("div", { class: "field" }, h("label", { for: `${idPrefix}-raw` }, `Body (${path.contentType || "application/json"})`), area),
      body: () => area.value,
    };
  }
  const preview = h("pre", { class: "code code-small", "data-testid": "request-preview" });
  const refresh = () => {
    try { preview.textContent = JSON.stringify(form.value()); } catch (error) { preview.textContent = `not JSON yet: ${error.message}`; }
  };
  const form = objectFields(schema, example(schema), idPrefix, refresh);
  refresh();
  return {
    element: h("div", { class: "form-fields" }, form.rows, h("div", { class: "field" }, h("span", { class: "field-label" }, "Body"), preview)),
    body: () => JSON.stringify(form.value()),
  };
}
