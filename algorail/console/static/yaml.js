// JSON-compatible data as block YAML. Strings that YAML could read as something else are
// written as JSON strings, which are valid YAML double-quoted scalars.

const PLAIN = /^[A-Za-z_/][\w./:@${}-]*( [\w./:@${}()-]+)*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function scalar(value) {
  if (value === null) return "null";
  if (typeof value !== "string") return String(value);
  return PLAIN.test(value) && !RESERVED.test(value) && !value.includes(": ") ? value : JSON.stringify(value);
}

const isEmpty = (v) => v !== null && typeof v === "object" && Object.keys(v).length === 0;

function lines(value, indent) {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    return value.flatMap((item) => {
      if (item !== null && typeof item === "object" && !isEmpty(item)) {
        const [first, ...rest] = lines(item, indent + 2);
        return [`${pad}- ${first.trimStart()}`, ...rest];
      }
      return [`${pad}- ${isEmpty(item) ? JSON.stringify(item) : scalar(item)}`];
    });
  }
  return Object.entries(value).flatMap(([key, item]) => {
    const name = scalar(key);
    if (item !== null && typeof item === "object" && !isEmpty(item)) {
      return [`${pad}${name}:`, ...lines(item, Array.isArray(item) ? indent : indent + 2)];
    }
    return [`${pad}${name}: ${isEmpty(item) ? JSON.stringify(item) : scalar(item)}`];
  });
}

export const toYaml = (document) => `${lines(document, 0).join("\n")}\n`;
