"""Finds plugins through the `algorail` entry-point group and collects what they register.

Plugins load once, lazily, on the first call to `get_registry()`, so `algorail --help`
stays fast. A plugin that fails to import or whose hook raises is recorded as broken
with its reason; the rest of algorail goes on without it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from algorail import hookspecs
from algorail.errors import AlgorailError

ENTRY_POINT_GROUP = "algorail"
LOAD_ENV = "ALGORAIL_LOAD_PLUGINS"

# (kind shown to users, hook name, registry attribute, attribute that names the thing)
KINDS = (
    ("algo runtime", "register_algo_runtimes", "runtimes", "name"),
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "provides": self.provides,
            "hooks": self.hooks,
            "error": self.error,
        }


@dataclass
class Registry:
    """What the loaded plugins offer, by name, and which plugin offers each."""

    runtimes: dict[str, Any] = field(default_factory=dict)
    hook_types: dict[str, Any] = field(default_factory=dict)
    connectors: dict[str, Any] = field(default_factory=dict)
    content_types: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    pm: pluggy.PluginManager | None = None

    def raise_on_conflicts(self) -> None:
        if self.conflicts:
            raise PluginConflict("\n".join(self.conflicts))


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("algorail")
    pm.add_hookspecs(hookspecs)
    return pm


def build_registry(pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> Registry:
    """Call every `register_*` hook once per plugin, so each name has a known owner."""
    registry = Registry(plugins=plugins, pm=pm)
    owners: dict[tuple[str, str], str] = {}
    for kind, hook_name, attr, key in KINDS:
        table = getattr(registry, attr)
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))

            def register(obj: Any, _info: PluginInfo = info) -> None:
                name = getattr(obj, key)
                owner = owners.get((kind, name))
                if owner is not None and owner != _info.name:
                    registry.conflicts.append(
                        f"{kind} {name!r} is offered by two plugins: {owner!r} and "
                        f"{_info.name!r}; uninstall one of them"
                    )
                    return
                owners[(kind, name)] = _info.name
                table[name] = obj
                _info.provides.setdefault(kind + "s", []).append(name)

            try:
                impl.function(register=register)
            except Exception as exc:  # a plugin's bug must not take algorail down
                info.error = f"{hook_name} raised {type(exc).__name__}: {exc}"
                print(f"algorail: plugin {info.name!r} is broken: {info.error}", file=sys.stderr)
    for info in plugins.values():
        plugin = pm.get_plugin(info.name)
        if plugin is not None:
            info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return registry


def load_entry_point_plugins(pm: pluggy.PluginManager) -> dict[str, PluginInfo]:
    allowed = os.environ.get(LOAD_ENV)
    allow = {n.strip() for n in allowed.split(",") if n.strip()} if allowed is not None else None
    plugins: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if allow is not None and ep.name not in allow and dist_name not in allow:
            continue
        name = ep.name if dist_name in (None, "algorail") else f"{dist_name}:{ep.name}"
        info = PluginInfo(name, dist_name, dist.version if dist is not None else None)
        plugins[name] = info
        try:
            module = ep.load()
            pm.register(module, name=name)
        except Exception as exc:
            info.error = f"failed to load {ep.value}: {type(exc).__name__}: {exc}"
            print(f"algorail: plugin {name!r} is broken: {info.error}", file=sys.stderr)
    return plugins


_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of installed plugins, loaded on first use."""
    global _registry
    if _registry is None:
        pm = new_plugin_manager()
        _registry = build_registry(pm, load_entry_point_plugins(pm))
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins, e.g. after `algorail install`, or between tests."""
    global _registry
    _registry = None
