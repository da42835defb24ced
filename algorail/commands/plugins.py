"""`algorail plugins`, `install`, `uninstall` and `new`: see and extend what is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import click

PROVIDES_ORDER = ("algo runtimes", "algos", "hook types", "connectors", "content types", "commands")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins: version, status and what each provides."""
    from algorail.cli import cli
    from algorail.plugin_manager import get_registry

    ctx = click.get_current_context()
    cli.list_commands(ctx.find_root())  # collects plugin commands, so they are listed too
    infos = sorted(get_registry().plugins.values(), key=lambda i: i.name)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table(Column("plugin", no_wrap=True), "version", "status", "provides",
                  title="Plugins")
    for info in infos:
        provides = "\n".join(
            f"{kind}: {', '.join(info.provides[kind])}"
            for kind in PROVIDES_ORDER
            if info.provides.get(kind)
        )
        status = info.status
        if info.error or info.conflicts:
            status += ": " + "; ".join(filter(None, [info.error, *info.conflicts]))
        table.add_row(info.name, info.version or "-", status, provides or "-")
    Console().print(table)


def _pip(*args: str) -> None:
    """Run pip in algorail's own environment; exit with its status when it fails."""
    from algorail.plugin_manager import reset_registry

    status = subprocess.run([sys.executable, "-m", "pip", *args], check=False).returncode
    reset_registry()
    if status:
        raise click.exceptions.Exit(status)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade packages to their latest version.")
@click.option("-e", "--editable", multiple=True, help="Install a project in editable mode.")
@click.option("--pip-arg", "pip_args", multiple=True, help="Pass one more argument to pip.")
def install(packages: tuple[str, ...], upgrade: bool, editable: tuple[str, ...],
            pip_args: tuple[str, ...]) -> None:
    """Install plugin PACKAGES into algorail's own Python environment (with pip)."""
    if not packages and not editable:
        raise click.UsageError("name at least one package, or a project with -e PATH")
    args = ["install", *packages, *pip_args]
    if upgrade:
        args.append("--upgrade")
    for path in editable:
        args += ["--editable", path]
    _pip(*args)


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin PACKAGES from algorail's own Python environment (with pip)."""
    _pip("uninstall", *packages, *(["--yes"] if yes else []))


@click.command()
@click.argument("template", type=click.Choice(["algo", "connector", "hook"]))
@click.option("-o", "--output-dir", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Where to create the project.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A template setting, e.g. --set name=sentiment (repeatable).")
@click.option("--no-input", is_flag=True, help="Do not ask; use defaults for unset settings.")
@click.option("--force", is_flag=True, help="Overwrite the project directory if it exists.")
def new(template: str, output_dir: str, settings: tuple[str, ...], no_input: bool,
        force: bool) -> None:
    """Create a plugin project from TEMPLATE: an algo, a data connector or a hook type."""
    from algorail.scaffold import new_project, parse_settings

    generated = new_project(template, output_dir, parse_settings(settings), no_input, force)
    click.echo(f"created {generated.path}")
    click.echo(f"next: cd {generated.path} && algorail install -e . && python -m pytest")
