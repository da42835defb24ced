"""The plugin system: entry-point discovery, broken plugins, name conflicts, plugin
commands, startup, and the hook reference in docs/plugins.md.

Third-party plugins are real distributions (a `*.dist-info` with entry_points.txt) in a
temporary folder put on PYTHONPATH of an `algorail` subprocess, so nothing is installed
into the shared environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from algorail import hookspecs, plugin_manager
from algorail.extensions import ContentType, StartupContext
from algorail.hookspecs import hookimpl
from algorail.plugin_manager import PluginConflict, PluginInfo, build_registry, new_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello.yaml"
HOOKSPECS = plugin_manager.hook_names()

HOOK_TYPE_PLUGIN = """
from algorail.extensions import HookType
from algorail.hookspecs import hookimpl

class Dup(HookType):
    name = "dup"
    def deliver(self, hook, payload, context):
        return payload

@hookimpl
def register_hook_types(register):
    register(Dup())
"""

DUP_PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: alice, name: dup}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  hooks: [{name: out, type: dup}]
  pipes: [{from: api.in, to: out}]
"""


class PluginFolder:
    """Distributions written to a folder, and `algorail` run with that folder on its path."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[algorail]\n{lines}")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "PYTHONPATH": str(self.root), **env}
        return subprocess.run(
            [sys.executable, "-m", "algorail.cli", *args],
            capture_output=True, text=True, env=environ, timeout=60, cwd=self.root,
        )

    def plugins(self, **env: str) -> dict[str, dict]:
        result = self.run("plugins", "--json", **env)
        assert result.returncode == 0, result.stderr
        return {p["name"]: p for p in json.loads(result.stdout)}


@pytest.fixture
def folder(tmp_path) -> PluginFolder:
    return PluginFolder(tmp_path)


# -- discovery ---------------------------------------------------------------------------------


def test_first_party_plugins_come_from_the_same_entry_points(folder):
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    first_party = pyproject["project"]["entry-points"]["algorail"]
    plugins = folder.plugins()
    assert {n for n, p in plugins.items() if p["distribution"] == "algorail"} == set(first_party)
    registry = plugin_manager.get_registry()
    offered = {name for p in plugins.values() for names in p["provides"].values() for name in names}
    assert set(registry.runtimes) | set(registry.hook_types) | set(registry.connectors) <= offered
    assert plugins["runtimes"]["provides"]["algo runtimes"] == ["python", "exec", "http", "grpc"]
    assert plugins["hooks"]["provides"]["hook types"] == ["webhook", "response"]
    assert all(p["status"] == "ok" for p in plugins.values())


def test_a_third_party_plugin_is_listed_with_what_it_provides(folder):
    folder.add("algorail-dup", {"dup_plugin": HOOK_TYPE_PLUGIN}, {"dup": "dup_plugin"})
    plugins = folder.plugins()
    assert plugins["algorail-dup"]["version"] == "1.2.3"
    assert plugins["algorail-dup"]["provides"] == {"hook types": ["dup"]}
    assert plugins["algorail-dup"]["hooks"] == ["register_hook_types"]
    (folder.root / "dup.yaml").write_text(DUP_PIPELINE)
    result = folder.run("validate", "dup.yaml")
    assert result.returncode == 0, result.stderr
    table = folder.run("plugins", COLUMNS="120").stdout
    assert "algorail-dup" in table and "hook types: dup" in table


def test_load_plugins_env_limits_what_loads(folder):
    folder.add("algorail-dup", {"dup_plugin": HOOK_TYPE_PLUGIN}, {"dup": "dup_plugin"})
    plugins = folder.plugins(ALGORAIL_LOAD_PLUGINS="algorail-dup,hooks")
    assert sorted(plugins) == ["algorail-dup", "hooks"]


# -- broken plugins ----------------------------------------------------------------------------


def test_a_plugin_that_fails_to_import_is_reported_and_algorail_goes_on(folder):
    folder.add("algorail-broken", {"broken_plugin": "import no_such_module_here\n"},
               {"broken": "broken_plugin"})
    result = folder.run("plugins", "--json")
    assert result.returncode == 0
    assert "plugin 'algorail-broken' is broken" in result.stderr
    broken = {p["name"]: p for p in json.loads(result.stdout)}["algorail-broken"]
    assert broken["status"] == "broken"
    assert "No module named 'no_such_module_here'" in broken["error"]
    validated = folder.run("validate", str(HELLO))
    assert validated.returncode == 0, validated.stderr
    assert "ok (alice/hello:1.0.0)" in validated.stdout


def test_a_hook_that_raises_marks_its_plugin_broken_and_registers_nothing(folder):
    source = """
    from algorail.hookspecs import hookimpl
    from algorail.plugins.hooks import ResponseHook

    class Half(ResponseHook):
        name = "half"

    @hookimpl
    def register_hook_types(register):
        register(Half())
        raise RuntimeError("database is not configured")
    """
    folder.add("algorail-half", {"half_plugin": source}, {"half": "half_plugin"})
    plugins = folder.plugins()
    assert plugins["algorail-half"]["status"] == "broken"
    assert plugins["algorail-half"]["error"] == (
        "register_hook_types raised RuntimeError: database is not configured"
    )
    assert plugins["algorail-half"]["provides"] == {}
    assert plugins["hooks"]["status"] == "ok"


def test_a_misspelled_hook_is_reported_not_silently_ignored(folder):
    source = """
    from algorail.hookspecs import hookimpl

    @hookimpl
    def register_hook_type(register):
        pass
    """
    folder.add("algorail-typo", {"typo_plugin": source}, {"typo": "typo_plugin"})
    typo = folder.plugins()["algorail-typo"]
    assert typo["status"] == "broken"
    assert "unknown hook 'register_hook_type'" in typo["error"]
    assert "register_hook_types" in typo["error"]


# -- name conflicts ----------------------------------------------------------------------------


def test_two_plugins_offering_one_name_is_an_error_naming_both(folder):
    folder.add("algorail-dup", {"dup_plugin": HOOK_TYPE_PLUGIN}, {"dup": "dup_plugin"})
    folder.add("algorail-dup-too", {"dup_too": HOOK_TYPE_PLUGIN}, {"dup": "dup_too"})
    plugins = folder.plugins()
    for name in ("algorail-dup", "algorail-dup-too"):
        assert plugins[name]["status"] == "conflict"
        assert "'algorail-dup' and 'algorail-dup-too'" in plugins[name]["conflicts"][0]
    (folder.root / "dup.yaml").write_text(DUP_PIPELINE)
    result = folder.run("validate", "dup.yaml")
    assert result.returncode == 1
    assert "hook type 'dup' is offered by 2 plugins: 'algorail-dup' and 'algorail-dup-too'" in (
        result.stderr
    )
    assert folder.run("validate", str(HELLO)).returncode == 0


def test_a_conflicted_name_cannot_be_used_at_run_time():
    first, second = _module("first", HOOK_TYPE_PLUGIN), _module("second", HOOK_TYPE_PLUGIN)
    registry = _registry({"first": first, "second": second})
    with pytest.raises(PluginConflict, match="'first' and 'second'"):
        registry.hook_types["dup"].deliver(None, {}, None)
    with pytest.raises(PluginConflict):
        registry.raise_on_conflicts()


# -- commands ----------------------------------------------------------------------------------


COMMAND_PLUGIN = """
import click
from algorail.hookspecs import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command(name="greet")
    @click.argument("who")
    def greet(who):
        "Say hello from a plugin."
        click.echo(f"hello {who}")

    @cli.command(name="validate")
    def validate():
        "Tries to replace a built-in command."
        click.echo("hijacked")
"""


def test_plugin_commands_join_the_cli_but_cannot_replace_built_ins(folder):
    folder.add("algorail-greet", {"greet_plugin": COMMAND_PLUGIN}, {"greet": "greet_plugin"})
    result = folder.run("greet", "world")
    assert (result.returncode, result.stdout) == (0, "hello world\n"), result.stderr
    assert "command 'validate' is offered by two plugins: 'algorail' and 'algorail-greet'" in (
        result.stderr
    )
    assert "greet" in folder.run("--help").stdout
    validated = folder.run("validate", str(HELLO))
    assert validated.returncode == 0 and "hijacked" not in validated.stdout
    plugin = folder.plugins()["algorail-greet"]
    assert plugin["provides"] == {"commands": ["greet"]}
    assert plugin["status"] == "conflict"


# -- start-up cost -----------------------------------------------------------------------------

HEAVY_MODULES = ("pydantic", "jsonschema", "kafka", "starlette", "confluent_kafka")
LOADED_HEAVY = f"""
import json, sys
SETUP
print(json.dumps(sorted({{m.partition(".")[0] for m in sys.modules}} & set({HEAVY_MODULES!r}))))
"""
HELP = """
from algorail.cli import cli
try:
    cli(["--help"], prog_name="algorail")
except SystemExit:
    pass
"""


@pytest.mark.parametrize("setup", ["import algorail.cli", HELP], ids=["import", "help"])
def test_the_cli_and_its_help_import_no_heavy_module(folder, setup):
    """Timing tests flake on a busy machine; what `--help` imports does not."""
    folder.add("algorail-greet", {"greet_plugin": COMMAND_PLUGIN}, {"greet": "greet_plugin"})
    script = LOADED_HEAVY.replace("SETUP", setup)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(folder.root)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    if setup == HELP:
        assert "greet" in result.stdout


def test_algorails_own_plugins_add_no_commands(folder):
    """Listing commands skips importing algorail's own plugins; that holds only while they
    add none."""
    own = {n: p for n, p in folder.plugins().items() if p["distribution"] == "algorail"}
    assert own and not [n for n, p in own.items() if "register_commands" in p["hooks"]]


# -- startup -----------------------------------------------------------------------------------


class RoutePlugin:
    """Adds GET /plugin/ping to the gateway."""

    @hookimpl
    def startup(self, context):
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        if context.service == "gateway":
            context.routes.append(
                Route("/plugin/ping", lambda request: PlainTextResponse("pong"))
            )


class FailingStartup:
    @hookimpl
    def startup(self, context):
        raise ValueError("no licence key")


class CsvPlugin:
    """Checks text/csv bodies: every row needs two columns."""

    class Csv(ContentType):
        media_type = "text/csv"

        def check(self, body):
            bad = [n for n, row in enumerate(body.decode().splitlines(), 1) if row.count(",") != 1]
            return f"rows {bad} do not have two columns" if bad else None

    @hookimpl
    def register_content_types(self, register):
        register(self.Csv())


@pytest.fixture
def startup_registry(monkeypatch):
    registry = _registry({"route": RoutePlugin(), "failing": FailingStartup(), "csv": CsvPlugin()})
    monkeypatch.setattr(plugin_manager, "_registry", registry)
    return registry


CSV_PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: alice, name: csv}
spec:
  endpoints: [{name: api, paths: [{name: rows, contentType: text/csv}]}]
  hooks: [{name: out, type: response}]
  pipes: [{from: api.rows, to: out}]
"""


@pytest.fixture(scope="module")
def csv_plan():
    """Compiled with the installed plugins, before a test swaps the registry."""
    from algorail.compiler import compile_plan
    from algorail.loader import validate_document

    return compile_plan(validate_document(yaml.safe_load(CSV_PIPELINE)))


def _gateway_request(plan, method: str, url: str, **kw) -> httpx.Response:
    """One request to an in-process gateway app built for `plan` (no broker needed)."""
    import asyncio

    from algorail.runtime.gateway import create_app
    from algorail.runtime.results import MemoryResultsStore

    app = create_app(plan, results=MemoryResultsStore(), bootstrap_servers="127.0.0.1:9")

    async def send():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.request(method, url, **kw)

    return asyncio.run(send())


def test_startup_lets_a_plugin_add_a_gateway_route(csv_plan, startup_registry, capsys):
    response = _gateway_request(csv_plan, "GET", "/plugin/ping")
    assert (response.status_code, response.text) == (200, "pong")
    assert startup_registry.plugins["failing"].error == (
        "startup raised ValueError: no licence key"
    )
    assert "plugin 'failing' is broken" in capsys.readouterr().err


def test_a_content_type_plugin_checks_request_bodies(csv_plan, startup_registry):
    response = _gateway_request(csv_plan, "POST", "/alice/csv/rows", content=b"a,1\nb\n",
                                headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert "rows [2] do not have two columns" in response.text
    assert startup_registry.plugins["csv"].provides == {"content types": ["text/csv"]}


def test_call_startup_runs_every_plugin_even_after_one_fails(startup_registry):
    context = StartupContext(service="gateway")
    plugin_manager.call_startup(context)
    assert [r.path for r in context.routes] == ["/plugin/ping"]
    runner = StartupContext(service="runner")
    plugin_manager.call_startup(runner)
    assert runner.routes == []


# -- reference ---------------------------------------------------------------------------------


def test_there_are_the_hooks_the_issue_asks_for():
    assert {"register_algo_runtimes", "register_hook_types", "register_connectors",
            "register_content_types", "register_commands", "startup"} <= set(HOOKSPECS)


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hook_is_documented(hook):
    assert len((getattr(hookspecs, hook).__doc__ or "").strip()) > 40, f"{hook} has no docstring"
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert f"### `{hook}(" in docs, f"docs/plugins.md has no reference section for {hook}"


# -- helpers -----------------------------------------------------------------------------------


def _module(name: str, source: str):
    import types

    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), name, "exec"), module.__dict__)
    return module


def _registry(plugins: dict[str, object]):
    pm = new_plugin_manager()
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return build_registry(pm, {name: PluginInfo(name) for name in plugins})
