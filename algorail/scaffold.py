"""`algorail new`: generate a plugin project from one of the cookiecutter templates.

Names are checked before anything is written, because a bad one only shows up later as a
package that cannot be imported, or a plugin that clashes with an installed one.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import metadata, resources, util
from pathlib import Path
from typing import Any

from algorail import naming
from algorail.errors import AlgorailError

# template -> the registry table its plugin adds a name to
TEMPLATES = {"algo": "algos", "connector": "connectors", "hook": "hook_types"}
LABELS = {"algo": "packaged algo", "connector": "connector", "hook": "hook type"}
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
DISTRIBUTION_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class ScaffoldError(AlgorailError):
    """A name `algorail new` cannot use, or a directory it will not overwrite."""


@dataclass(frozen=True)
class Generated:
    kind: str
    path: Path
    context: dict[str, Any]


def template_dir(kind: str) -> Path:
    if kind not in TEMPLATES:
        raise ScaffoldError(f"no template named {kind!r}; choose one of: {', '.join(TEMPLATES)}")
    return Path(str(resources.files("algorail.templates") / kind))


def parse_settings(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`--set key=value` options as a dict."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ScaffoldError(f"--set {pair!r}: write it as KEY=VALUE, e.g. --set name=sentiment")
        values[key.strip()] = value.strip()
    return values


def new_project(
    kind: str,
    output_dir: str | Path = ".",
    values: dict[str, Any] | None = None,
    no_input: bool = True,
    force: bool = False,
    registry: Any = None,
) -> Generated:
    """Generate a `kind` project under `output_dir`; returns where it went.

    `values` override the template's defaults (its cookiecutter.json); without
    `no_input` the remaining ones are asked for on the terminal.
    """
    from cookiecutter.generate import generate_context, generate_files
    from cookiecutter.prompt import prompt_for_config

    source = template_dir(kind)
    values = dict(values or {})
    context = generate_context(str(source / "cookiecutter.json"), extra_context=values)
    unknown = sorted(set(values) - set(context["cookiecutter"]))
    if unknown:
        known = ", ".join(k for k in context["cookiecutter"] if not k.startswith("_"))
        raise ScaffoldError(f"the {kind} template has no setting {unknown[0]!r} (it has: {known})")
    answers = dict(prompt_for_config(context, no_input))
    problems = check_names(kind, answers, registry)
    if problems:
        raise ScaffoldError("; ".join(problems))
    target = Path(output_dir) / answers["distribution"]
    if target.exists() and not force:
        raise ScaffoldError(
            f"{target} already exists; choose another --output-dir or name, "
            "or pass --force to overwrite it"
        )
    answers["_template"] = str(source)
    path = generate_files(
        repo_dir=str(source),
        context={"cookiecutter": answers},
        output_dir=str(output_dir),
        overwrite_if_exists=force,
    )
    return Generated(kind, Path(path), answers)


def check_names(kind: str, answers: dict[str, Any], registry: Any = None) -> list[str]:
    """Every reason the names in `answers` cannot be used, as sentences."""
    name = str(answers.get("name", ""))
    package = str(answers.get("package", ""))
    distribution = str(answers.get("distribution", ""))
    problems = []
    if not naming.is_valid_name(name) or name != name.lower() or not name[:1].isalpha():
        problems.append(
            f"name {name!r} is not usable: start with a lower-case letter, then "
            f"{naming.NAME_RULE}"
        )
    if not PACKAGE_RE.match(package) or keyword.iskeyword(package):
        problems.append(
            f"package {package!r} is not a Python package name: use lower-case letters, "
            "digits and underscores, starting with a letter"
        )
    elif _importable(package):
        problems.append(f"package {package!r} already exists here; pick another name")
    if not DISTRIBUTION_RE.match(distribution):
        problems.append(
            f"distribution {distribution!r} is not a safe project name: use lower-case "
            "letters, digits and single hyphens"
        )
    elif _installed(distribution):
        problems.append(
            f"a distribution named {distribution!r} is already installed; pick another name "
            f"or `algorail uninstall {distribution}` first"
        )
    problems += _check_settings(answers)
    if not problems:
        if registry is None:
            from algorail.plugin_manager import get_registry

            registry = get_registry()
        if name in getattr(registry, TEMPLATES[kind]):
            problems.append(
                f"an installed plugin already offers a {LABELS[kind]} named {name!r} "
                "(see `algorail plugins`); pick another name"
            )
    return problems


def _check_settings(answers: dict[str, Any]) -> list[str]:
    """The other settings end up in Python, TOML and YAML files: keep them plain."""
    problems = []
    for key in ("description", "author"):
        if any(c in str(answers.get(key, "")) for c in '"\\\n'):
            problems.append(f"{key} may not contain double quotes, backslashes or line breaks")
    owner = str(answers.get("owner", ""))
    if not naming.is_valid_name(owner):
        problems.append(f"owner {owner!r} is not usable: {naming.NAME_RULE}")
    if not naming.VERSION_RE.match(str(answers.get("version", ""))):
        problems.append(f"version {answers.get('version')!r} is not a semantic version like 0.1.0")
    class_name = answers.get("class_name")
    if class_name is not None and not str(class_name).isidentifier():
        problems.append(f"class_name {class_name!r} is not a Python class name")
    return problems


def _importable(package: str) -> bool:
    try:
        return util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True
