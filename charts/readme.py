"""Writes each chart's README.md from its values.yaml: the `## @section` and `## @param`
lines are the one place a value is documented; the tables here and the README test follow.

    python -m algorail.charts.readme          # rewrite both READMEs
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CHARTS = Path(__file__).resolve().parent
PARAM = re.compile(r"^\s*## @(section|param) (.*)$")
MODIFIER = re.compile(r"^(\S+)(?: \[(\w+)\])? ?(.*)$")


def _default(values: dict, key: str) -> str:
    node = values
    for part in key.split("."):
        node = node[part]
    text = json.dumps(node)
    return text if len(text) <= 60 else "see values.yaml"


def render_readme(folder: Path) -> str:
    """The README of the chart in `folder`, from Chart.yaml and values.yaml."""
    chart = yaml.safe_load((folder / "Chart.yaml").read_text(encoding="utf-8"))
    text = (folder / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    lines = [
        f"# {chart['name']}", "",
        chart["description"], "",
        f"Chart version {chart['version']}, app version {chart['appVersion']}, "
        f"Kubernetes {chart['kubeVersion']}. Changes: [CHANGELOG.md](CHANGELOG.md); "
        "deploying: [docs/helm.md](../../docs/helm.md).", "",
        "This file is generated from the `@param` lines of values.yaml by "
        "`python -m algorail.charts.readme`; edit those, not this.", "",
        "## Parameters",
    ]
    in_table = False
    for line in text.splitlines():
        match = PARAM.match(line)
        if not match:
            continue
        kind, rest = match.groups()
        if kind == "section":
            lines += ["", f"### {rest}", "", "| Name | Description | Value |",
                      "| --- | --- | --- |"]
            in_table = True
            continue
        key, _, description = MODIFIER.match(rest).groups()
        if not in_table:
            lines += ["", "| Name | Description | Value |", "| --- | --- | --- |"]
            in_table = True
        value = _default(values, key).replace("|", "\\|")
        lines.append(f"| `{key}` | {description.replace('|', chr(92) + '|')} | `{value}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    for folder in sorted(p.parent for p in CHARTS.glob("*/Chart.yaml")):
        (folder / "README.md").write_text(render_readme(folder), encoding="utf-8")
        print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
