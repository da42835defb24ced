"""The plugin hooks: this module is their reference.

A plugin is a module (or object) with functions named like these hooks and marked with
`algorail.hookspecs.hookimpl`. It is found through the `algorail` entry-point group
(``[project.entry-points.algorail]`` in its pyproject.toml). algorail's own runtimes,
hook types and connectors are plugins registered the same way.

The `register_*` hooks receive a `register` callable: call it once per thing the plugin
adds. They are called once per process, when plugins are first needed. A name offered by
two plugins is an error that names both; a hook that raises marks its plugin broken (shown
by `algorail plugins`) and registers nothing, and the rest of algorail goes on.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("algorail")
hookimpl = pluggy.HookimplMarker("algorail")


# -------------------------------------------------------------------------------------------
# What pipelines refer to by name
# -------------------------------------------------------------------------------------------


@hookspec
def register_algo_runtimes(register: Any) -> None:
    """Add algo runtimes: call ``register(runtime)`` with an `algorail.extensions.AlgoRuntime`.

    A pipeline selects one with ``runtime: NAME`` on an algo. The runtime's ``validate``
    checks the algo's settings when the pipeline is validated; its ``open`` is called once
    per runner process and returns the `AlgoCall` the runner calls per run.
    """


@hookspec
def register_algos(register: Any) -> None:
    """Add packaged algos: call ``register(algo)`` with an `algorail.extensions.PackagedAlgo`.

    A packaged algo is a Python function a distribution ships; a pipeline uses it with
    ``runtime: python`` and ``entrypoint: MODULE:FUNCTION`` (its ``entrypoint``), and
    `algorail.testing.run_algo(NAME, payload)` runs it by name. `algorail plugins` lists it.
    """


@hookspec
def register_hook_types(register: Any) -> None:
    """Add hook types: call ``register(hook_type)`` with an `algorail.extensions.HookType`.

    A pipeline selects one with ``type: NAME`` on a hook. The hook dispatcher calls its
    ``deliver`` once per run result; raising `DeliveryFailed` asks for a retry.
    """


@hookspec
def register_connectors(register: Any) -> None:
    """Add data connectors: call ``register(connector)`` with an `algorail.extensions.Connector`.

    A pipeline selects one with ``connector: NAME`` on a data source or data sink. Its
    ``config_schema`` checks the component's ``config``; ``kafka_connect_config`` renders
    the Kafka Connect config for a cluster; ``open_dev`` may give a Python implementation
    that ``algorail connect`` runs in dev mode.
    """


@hookspec
def register_content_types(register: Any) -> None:
    """Add content-type validators: call ``register(content_type)`` with an
    `algorail.extensions.ContentType`.

    The gateway checks request bodies of an endpoint path with the validator registered
    for the path's ``contentType``, before anything enters the pipeline.
    """


# -------------------------------------------------------------------------------------------
# The command line and the services
# -------------------------------------------------------------------------------------------


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``algorail`` command line: ``cli`` is a click group.

    Use ``@cli.command()`` (or ``cli.add_command``) inside this hook; the commands appear
    in ``algorail --help``. Called once, the first time the CLI looks beyond its built-in
    commands. A command may not take a built-in command's or another plugin's name.
    """


@hookspec
def startup(context: Any) -> None:
    """Called when an algorail service starts (gateway, runner, hook dispatcher), through
    `algorail.plugin_manager.call_startup`.

    ``context`` is an `algorail.extensions.StartupContext`: its ``service`` names the
    service (``"gateway"``, ``"runner"`` or ``"hooks"``), ``plan`` is the deployment plan
    it serves, ``routes`` takes extra gateway routes (Starlette ``Route`` objects),
    ``metrics`` is the Prometheus registry the service exposes on /metrics. The return
    value is ignored; raising marks the plugin broken and the service starts anyway.
    """
