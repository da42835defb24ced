"""Finds plugins through the `algorail` entry-point group and collects what they register.

Plugins load once, lazily, on the first call to `get_registry()`, so commands that do
not need them stay fast. Listing commands (`algorail --help`) imports only other
distributions' plugins, since algorail's own add none. A plugin that fails to import or
whose hook raises is recorded as broken with its reason; the rest of algorail goes on
without it. A name two plugins offer
is kept as a `ConflictedName`, so using it is an error that names both. Services call
`call_startup`; the CLI adds `plugin_commands`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from algorail import hookspecs
from algorail.errors import AlgorailError

ENTRY_POINT_GROUP = "algorail"
LOAD_ENV = "ALGORAIL_LOAD_PLUGINS"
# Distributions of algorail's own plugins (runtimes, hook types, connectors). They add no
# commands, so listing commands does not import them (nor pydantic, jsonschema, kafka).
OWN_DISTRIBUTIONS = (None, "algorail")

# (kind shown to users, hook name, registry attribute, attribute that names the thing)
KINDS = (
    ("algo runtime", "register_algo_runtimes", "runtimes", "name"),
    ("algo", "register_algos", "algos", "name"),
    ("hook type", "register_hook_types", "hook_types", "name"),
    ("connector", "register_connectors", "connectors", "name"),
    ("content type", "register_content_types", "content_types", "media_type"),
)


class PluginConflict(AlgorailError):
    """Two plugins offer the same name."""


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    conflicts: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error:
            return "broken"
        return "conflict" if self.conflicts else "ok"

    def mark_broken(self, error: str) -> None:
        """Record why the plugin is broken and say so once on stderr."""
        self.error = error
        print(f"algorail: plugin {self.name!r} is broken: {error}", file=sys.stderr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "provides": self.provides,
            "hooks": self.hooks,
            "error": self.error,
            "conflicts": self.conflicts,
        }


class ConflictedName:
    """Stands in for a name two plugins offer: validating a pipeline that uses it reports
    the conflict, naming both plugins; using it in any other way raises `PluginConflict`."""

    def __init__(self, kind: str, name: str, owners: list[str]):
        self.kind = kind
        self.name = name
        self.media_type = name
        self.owners = sorted(owners)

    @property
    def message(self) -> str:
        owners = " and ".join(repr(o) for o in self.owners)
        return (
            f"{self.kind} {self.name!r} is offered by {len(self.owners)} plugins: {owners}; "
            "uninstall all but one of them (`algorail uninstall PACKAGE`)"
        )

    def validate(self, item: Any, pipeline: Any) -> list[str]:
        return [self.message]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise PluginConflict(self.message)


@dataclass
class Registry:
    """What the loaded plugins offer, by name, and which plugin offers each."""

    runtimes: dict[str, Any] = field(default_factory=dict)
    algos: dict[str, Any] = field(default_factory=dict)
    hook_types: dict[str, Any] = field(default_factory=dict)
    connectors: dict[str, Any] = field(default_factory=dict)
    content_types: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    pm: pluggy.PluginManager | None = None
    commands: dict[str, Any] | None = None  # filled by `plugin_commands()`

    def raise_on_conflicts(self) -> None:
        if self.conflicts:
            raise PluginConflict("\n".join(self.conflicts))


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("algorail")
    pm.add_hookspecs(hookspecs)
    return pm


def build_registry(pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> Registry:
    """Call every `register_*` hook once per plugin, so each name has a known owner.

    A hook that raises marks its plugin broken and registers nothing from that call.
    """
    registry = Registry(plugins=plugins, pm=pm)
    for kind, hook_name, attr, key in KINDS:
        table = getattr(registry, attr)
        owners: dict[str, list[str]] = {}
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            offered: list[Any] = []
            try:
                impl.function(register=offered.append)
                names = [getattr(obj, key) for obj in offered]
            except Exception as exc:  # a plugin's bug must not take algorail down
                info.mark_broken(f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            for name, obj in zip(names, offered, strict=True):
                if info.name not in owners.setdefault(name, []):
                    owners[name].append(info.name)
                table[name] = obj
                info.provides.setdefault(kind + "s", []).append(name)
        for name, offered_by in owners.items():
            if len(offered_by) > 1:
                table[name] = ConflictedName(kind, name, offered_by)
                registry.conflicts.append(table[name].message)
                for owner in offered_by:
                    plugins[owner].conflicts.append(table[name].message)
    for info in plugins.values():
        plugin = pm.get_plugin(info.name)
        if plugin is not None:
            info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return registry


def load_entry_point_plugins(
    pm: pluggy.PluginManager,
    plugins: dict[str, PluginInfo] | None = None,
    *,
    own: bool | None = None,
) -> dict[str, PluginInfo]:
    """Import and register every `algorail` entry point not yet in `plugins` (those
    `ALGORAIL_LOAD_PLUGINS` allows, when set: a comma-separated list of plugin or
    distribution names); with `own`, only algorail's own (True) or only others' (False)."""
    plugins = {} if plugins is None else plugins
    allowed = os.environ.get(LOAD_ENV)
    allow = {n.strip() for n in allowed.split(",") if n.strip()} if allowed is not None else None
    points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    per_dist = Counter(_dist_name(ep) for ep in points)
    for ep in points:
        dist_name = _dist_name(ep)
        name = _plugin_name(ep.name, dist_name, per_dist[dist_name])
        if allow is not None and not allow & {name, ep.name, dist_name}:
            continue
        if name in plugins or own not in (None, dist_name in OWN_DISTRIBUTIONS):
            continue
        info = PluginInfo(name, dist_name, ep.dist.version if ep.dist is not None else None)
        plugins[name] = info
        try:
            module = ep.load()
        except Exception as exc:
            info.mark_broken(f"failed to load {ep.value}: {type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(module, name=name)
            _check_hook_names(pm, name)
        except Exception as exc:
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            info.mark_broken(str(exc))
    return plugins


def _check_hook_names(pm: pluggy.PluginManager, name: str) -> None:
    """A hookimpl with no matching hookspec is a typo that would silently do nothing."""
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or []:
        if not caller.has_spec():
            raise AlgorailError(
                f"{name} implements an unknown hook {caller.name!r}; algorail's hooks are: "
                + ", ".join(hook_names())
            )


def hook_names() -> list[str]:
    """The names of algorail's hooks (the hookspecs)."""
    return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "algorail_spec"))


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    return ep.dist.metadata["Name"] if ep.dist is not None else None


def _plugin_name(entry_point: str, dist_name: str | None, points_in_dist: int) -> str:
    """algorail's own plugins by entry point; others by distribution, plus the entry
    point when one distribution has several."""
    if dist_name in OWN_DISTRIBUTIONS:
        return entry_point
    return dist_name if points_in_dist == 1 else f"{dist_name}:{entry_point}"


_registry: Registry | None = None  # every plugin loaded and its names registered
_early: Registry | None = None  # only other distributions' plugins, loaded for their commands


def get_registry() -> Registry:
    """The registry of installed plugins, loaded on first use."""
    global _registry, _early
    if _registry is None:
        early = _early or Registry(pm=new_plugin_manager())
        load_entry_point_plugins(early.pm, early.plugins)
        _registry = build_registry(early.pm, early.plugins)
        _registry.commands = early.commands
        _early = None
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins, e.g. after `algorail install`, or between tests."""
    global _registry, _early
    _registry = _early = None


def _command_registry() -> Registry:
    """The registry once loaded; before that, only the plugins of other distributions,
    the only ones that may add commands, so `algorail --help` stays fast."""
    global _early
    if _registry is not None:
        return _registry
    if _early is None:
        _early = Registry(pm=new_plugin_manager())
        load_entry_point_plugins(_early.pm, _early.plugins, own=False)
    return _early


def _each_impl(hook_name: str, call: Any, registry: Registry | None = None) -> None:
    """Run `call(impl, info)` for every implementation of a hook; one that raises marks
    its plugin broken and the others still run."""
    registry = registry or get_registry()
    for impl in getattr(registry.pm.hook, hook_name).get_hookimpls():
        info = registry.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
        try:
            call(impl, info)
        except Exception as exc:  # a plugin's bug must not take the service down
            info.mark_broken(f"{hook_name} raised {type(exc).__name__}: {exc}")


def call_startup(context: Any) -> None:
    """Call every plugin's `startup` hook with a `StartupContext`; services call this once
    when they start. A plugin whose hook raises is reported and skipped."""
    _each_impl("startup", lambda impl, info: impl.function(context=context))


def plugin_commands(reserved: Iterable[str] = ()) -> dict[str, Any]:
    """The click commands plugins add through `register_commands`, by name; collected once
    per registry.

    A plugin command may not take a built-in name (`reserved`) nor another plugin's: the
    clash is reported naming both, and the first owner keeps the name.
    """
    registry = _command_registry()
    if registry.commands is not None:
        return registry.commands
    import click

    owners = dict.fromkeys(reserved, "algorail")
    commands: dict[str, Any] = {}

    def call(impl: Any, info: PluginInfo) -> None:
        group = click.Group()
        try:
            impl.function(cli=group)
        finally:
            for name, command in group.commands.items():
                if name in owners:
                    _command_clash(info, name, owners[name])
                    continue
                owners[name] = info.name
                commands[name] = command
                info.provides.setdefault("commands", []).append(name)

    _each_impl("register_commands", call, registry)
    registry.commands = commands
    return commands


def _command_clash(info: PluginInfo, name: str, owner: str) -> None:
    message = (
        f"command {name!r} is offered by two plugins: {owner!r} and {info.name!r}; "
        f"{owner!r} keeps it"
    )
    info.conflicts.append(message)
    print(f"algorail: {message}", file=sys.stderr)
