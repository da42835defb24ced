"""The plugin hooks: this module is their reference.

A plugin is a module (or object) with functions named like these hooks and marked with
`algorail.hookimpl`. It is found through the `algorail` entry-point group. algorail's own
runtimes, hook types and connectors are plugins registered the same way.

The `register_*` hooks receive a `register` callable: call it once per thing the plugin
adds. A name offered by two plugins is an error that names both.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("algorail")
hookimpl = pluggy.HookimplMarker("algorail")


@hookspec
def register_algo_runtimes(register: Any) -> None:
    """Add algo runtimes: call ``register(runtime)`` with an `algorail.extensions.AlgoRuntime`.

    A pipeline selects one with ``runtime: NAME`` on an algo. Called once, when the
    plugins are loaded.
    """


@hookspec
def register_hook_types(register: Any) -> None:
    """Add hook types: call ``register(hook_type)`` with an `algorail.extensions.HookType`.

    A pipeline selects one with ``type: NAME`` on a hook.
    """


@hookspec
def register_connectors(register: Any) -> None:
    """Add data connectors: call ``register(connector)`` with an `algorail.extensions.Connector`.

    A pipeline selects one with ``connector: NAME`` on a data source or data sink.
    """


@hookspec
def register_content_types(register: Any) -> None:
    """Add content-type validators: call ``register(content_type)`` with an
    `algorail.extensions.ContentType`.

    The gateway checks request bodies of an endpoint path with the validator registered
    for the path's ``contentType``, before anything enters the pipeline.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``algorail`` command line: ``cli`` is its click group.

    Use ``@cli.command()`` inside this hook. Called when the CLI starts.
    """


@hookspec
def startup(context: Any) -> None:
    """Called when an algorail service starts (gateway, runner, hook dispatcher).

    ``context`` is an `algorail.extensions.StartupContext`: its ``service`` names the
    service, ``routes`` takes extra gateway routes, ``metrics`` is the Prometheus registry
    the service exposes on /metrics. Return value is ignored.
    """
