"""The `algorail` command. Thin: every command calls a library function tests call too.

Heavy modules (kafka, pulumi, kubernetes, helm) are imported inside the commands that
need them, so `algorail --help` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import click

from algorail import __version__
from algorail.errors import AlgorailError

# Commands that live in their own modules, imported only when run (or listed by --help).
# Each module must import nothing heavy at module level.
LAZY_COMMANDS = {
    "dev": "algorail.commands.runtime:dev",
    "runner": "algorail.commands.runtime:runner",
    "gateway": "algorail.commands.serve:gateway",
    "hooks": "algorail.commands.serve:hooks",
    "plugins": "algorail.commands.plugins:plugins",
    "install": "algorail.commands.plugins:install",
    "uninstall": "algorail.commands.plugins:uninstall",
    "new": "algorail.commands.plugins:new",
    "connectors": "algorail.commands.connectors:connectors",
    "connect": "algorail.commands.connectors:connect",
    "eventflows": "algorail.commands.connectors:eventflows",
    "render": "algorail.commands.render:render",
    "operator": "algorail.commands.operator:operator",
    "registry": "algorail.commands.registry:registry",
    "push": "algorail.commands.registry:push",
    "pipelines": "algorail.commands.registry:pipelines",
    "algos": "algorail.commands.registry:algos",
    "deploy": "algorail.commands.registry:deploy",
    "deployments": "algorail.commands.registry:deployments",
    "inspect": "algorail.commands.ops:inspect",
    "tail": "algorail.commands.ops:tail",
    "replay": "algorail.commands.ops:replay",
    "status": "algorail.commands.ops:status",
    "graph": "algorail.commands.ops:graph",
}


def _lazy_available(name: str) -> bool:
    module = LAZY_COMMANDS[name].partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class AlgorailGroup(click.Group):
    """Loads command modules on demand, and prints `AlgorailError`s as one message
    without a traceback, exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [n for n in LAZY_COMMANDS if _lazy_available(n)]
        plugins = self._plugin_commands(ctx)
        return sorted(set(super().list_commands(ctx)) | set(lazy) | set(plugins))

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS and _lazy_available(name):
            module, _, attr = LAZY_COMMANDS[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
        if command is None:
            command = self._plugin_commands(ctx).get(name)
        return command

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Commands added by plugins (`register_commands`); they cannot shadow built-ins."""
        from algorail.plugin_manager import plugin_commands

        return plugin_commands(reserved=[*super().list_commands(ctx), *LAZY_COMMANDS])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AlgorailError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=AlgorailGroup)
@click.version_option(__version__, prog_name="algorail")
def cli() -> None:
    """algorail: pipelines of algorithms and models on Kafka and Kubernetes.

    Validate and compile pipelines (algorail or Seldon Core 2 format), run them
    locally with `algorail dev`, and deploy them with Helm or Pulumi.
    """


def bindings_option(func):
    return click.option(
        "--bindings",
        type=click.Path(exists=True, dir_okay=False),
        help="YAML/JSON file mapping algo or Seldon step names to runtime settings.",
    )(func)


def load(path: str, bindings: str | None):
    from algorail.loader import load_pipeline
    from algorail.spec import load_bindings

    return load_pipeline(path, bindings=load_bindings(bindings))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@bindings_option
def validate(files: tuple[str, ...], bindings: str | None) -> None:
    """Check pipeline FILES; print every problem with file, component and rule."""
    from algorail.compiler import compile_plan
    from algorail.connectors.secrets import require_secret_references
    from algorail.errors import PipelineError
    from algorail.graph import code_problems

    failed = 0
    for file in files:
        try:
            pipeline = load(file, bindings)
            require_secret_references(compile_plan(pipeline))
            problems = code_problems(pipeline)
        except PipelineError as exc:
            problems = exc.problems
        if problems:
            failed += 1
            for problem in problems:
                click.secho(str(problem), fg="red", err=True)
            continue
        click.echo(f"{file}: ok ({pipeline.owner}/{pipeline.name}:{pipeline.metadata.version})")
    if failed:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--deployment", help="Deployment name (default: the pipeline's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan to a file.")
@bindings_option
def plan(
    file: str, deployment: str | None, as_json: bool, output: str | None, bindings: str | None
) -> None:
    """Compile FILE into a deployment plan: topics, runners, routes, hooks, connectors, and
    every name derived from them (consumer groups, URLs, Helm object names)."""
    from algorail.compiler import compile_plan

    compiled = compile_plan(load(file, bindings), deployment=deployment)
    if output:
        Path(output).write_text(compiled.to_json() + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    if as_json:
        click.echo(compiled.to_json())
    elif not output:
        _print_plan_summary(compiled)


def _print_plan_summary(compiled) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{compiled.owner}/{compiled.pipeline}:{compiled.version}[/] "
        f"as deployment [bold]{compiled.deployment}[/]"
    )
    routes = Table("route", "type", "topic", "hooks a sync call waits for", title="Routes")
    for r in compiled.routes:
        routes.add_row(f"POST {r.url}", r.type, r.topic, ", ".join(r.hooks) or "-")
    runners = Table("algo", "runtime", "inputs", "outputs", title="Runners")
    for r in compiled.runners:
        runners.add_row(
            r.id,
            r.runtime,
            "\n".join(f"{i.name} <- {i.topic}" for i in r.inputs),
            "\n".join(f"{p} -> {t}" for p, t in r.outputs.items()),
        )
    hooks = Table("hook", "type", "inputs", title="Hooks")
    for h in compiled.hooks:
        hooks.add_row(h.id, h.type, "\n".join(i.topic for i in h.inputs))
    topics = Table("topic", "role", title="Topics")
    for t in compiled.topics:
        topics.add_row(t.name, t.role + (" (external)" if t.external else ""))
    groups = Table("consumer group", "reads", title="Consumer groups")
    for r in compiled.runners:
        groups.add_row(r.consumer_group, f"algo {r.component}")
    for c in compiled.connectors:
        groups.add_row(c.consumer_group, f"data {c.kind} {c.name}")
        if c.report_consumer_group:
            groups.add_row(c.report_consumer_group, f"hook dispatcher: {c.name}'s reports")
    for h in compiled.hooks:
        groups.add_row(h.consumer_group, f"hook {h.name}")
    groups.add_row(compiled.errors_consumer_group, "hook dispatcher: the error topic")
    names = Table("name", "value", title="Names")
    helm = compiled.helm
    for label, value in (("runs URL", f"GET {compiled.runs_url}/{{runId}}"),
                         ("Helm release (pipeline)", helm.release),
                         ("Helm release (gateway, hooks)", helm.services_release),
                         ("plan ConfigMap", helm.plan_config_map),
                         ("gateway Service", helm.gateway_service)):
        names.add_row(label, value)
    for table in (routes, runners, hooks, topics, groups, names):
        if table.row_count:
            console.print(table)


def main() -> None:
    cli(prog_name="algorail")


if __name__ == "__main__":
    sys.exit(main())
