"""Which deployment settings a key may use: what keeps a registry safe to expose.

A `local` deployment runs processes on the registry's host, so it is off unless the
registry was started with `--allow-local-deployments`, and then only admin keys may use
it, with a `workdir` inside the admin's `--deployments-dir`. On `kubernetes`, a key that
is not an admin's deploys only to the allowed namespaces and sets only the Pipeline
resource's deployment settings in `USER_DEPLOYMENT`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorail.errors import AlgorailError
from algorail.registry.auth import Principal
from algorail.registry.errors import Forbidden, Invalid

MAX_START_TIMEOUT = 300.0
SETTINGS = {
    "local": ("port", "workdir", "bootstrapServers", "startTimeout"),
    "kubernetes": ("namespace", "deployment", "workdir"),
}
# workdir on kubernetes: the folder whose Python modules are packed for the cluster
# (algorail.codepack), files of the registry's host: an admin's choice.
ADMIN_ONLY = ("workdir",)
# The Pipeline resource's spec.deployment settings any key may set (image and kafka: admins).
USER_DEPLOYMENT = ("resources", "autoscaling")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ADMIN_KEY = "(`algorail registry keys create --owner NAME --admin`)"


@dataclass(frozen=True)
class DeploymentPolicy:
    allow_local: bool = False
    deployments_dir: Path | None = None
    namespaces: tuple[str, ...] = ("algorail",)

    def __post_init__(self) -> None:
        bad = [ns for ns in self.namespaces if not NAMESPACE_RE.match(ns)]
        if bad or not self.namespaces:
            raise AlgorailError(f"allowed namespace {bad[0] if bad else ''!r} is not a "
                                "Kubernetes namespace name (lower-case letters, digits and "
                                "'-', at most 63)")

    def check(self, who: Principal, target: str, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings to deploy with (workdir resolved, namespace filled in), or a 403
        or 422 naming the setting that is not allowed."""
        unknown = sorted(set(settings) - set(SETTINGS[target]))
        if unknown:
            raise Invalid(f"settings.{unknown[0]} is not a setting of the {target} target: "
                          f"use {', '.join(SETTINGS[target])}")
        checked = dict(settings)
        if target == "local":
            self._check_local(who, checked)
        else:
            self._check_kubernetes(who, checked)
        return checked

    def _check_local(self, who: Principal, settings: dict[str, Any]) -> None:
        if not self.allow_local:
            raise Forbidden("local deployments are off on this registry: they run processes "
                            "on its host; use target kubernetes, or start the registry with "
                            "--allow-local-deployments (admin keys only)")
        if not who.admin:
            raise Forbidden("local deployments run processes on the registry's host and need "
                            f"an admin API key {ADMIN_KEY}")
        timeout = settings.get("startTimeout", 60)
        if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                or not math.isfinite(timeout) or not 0 < timeout <= MAX_START_TIMEOUT):
            raise Invalid(f"settings.startTimeout must be a number of seconds above 0 and at "
                          f"most {MAX_START_TIMEOUT:.0f}, not {timeout!r}")
        port = settings.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 1 <= port <= 65535):
            raise Invalid(f"settings.port must be a port number (1-65535), not {port!r}")
        servers = settings.get("bootstrapServers")
        if servers is not None and (not isinstance(servers, str) or not servers
                                    or servers.startswith("-") or " " in servers
                                    or len(servers) > 500):
            raise Invalid("settings.bootstrapServers must be HOST:PORT[,HOST:PORT...], "
                          "at most 500 characters")
        if "workdir" in settings:
            settings["workdir"] = str(self._workdir(settings["workdir"]))

    def _workdir(self, workdir: Any) -> Path:
        """`workdir` (absolute, or relative to the deployments folder) with every symlink
        resolved; it must be a folder inside the deployments folder."""
        if self.deployments_dir is None:
            raise Invalid("settings.workdir cannot be set: this registry has no deployments "
                          "folder (start it with --deployments-dir DIR)")
        if not isinstance(workdir, str) or not workdir or "\0" in workdir:
            raise Invalid("settings.workdir must be a folder inside the deployments folder")
        base = self.deployments_dir.resolve()
        try:
            path = (base / workdir).resolve(strict=True)
        except (OSError, RuntimeError):
            raise Invalid(f"settings.workdir {workdir!r} does not exist in the deployments "
                          f"folder {base}") from None
        if not path.is_relative_to(base) or not path.is_dir():
            raise Invalid(f"settings.workdir {workdir!r} is not a folder inside the "
                          f"deployments folder {base}")
        return path

    def _check_kubernetes(self, who: Principal, settings: dict[str, Any]) -> None:
        namespace = settings.setdefault("namespace", self.namespaces[0])
        if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
            raise Invalid(f"settings.namespace {namespace!r} is not a Kubernetes namespace "
                          "name (lower-case letters, digits and '-', at most 63)")
        deployment = settings.get("deployment", {})
        _check_deployment(deployment)
        if who.admin:
            if "workdir" in settings:
                settings["workdir"] = str(self._workdir(settings["workdir"]))
            return
        chosen = [name for name in ADMIN_ONLY if name in settings]
        if chosen:
            raise Forbidden(f"settings.{chosen[0]} needs an admin API key {ADMIN_KEY}")
        if namespace not in self.namespaces:
            raise Forbidden(f"settings.namespace {namespace!r} is not allowed on this "
                            f"registry: use {', '.join(self.namespaces)}")
        for key in deployment:
            if key not in USER_DEPLOYMENT:
                raise Forbidden(f"settings.deployment.{key} needs an admin API key; other keys "
                                f"may set {', '.join(USER_DEPLOYMENT)}")


def _check_deployment(deployment: Any) -> None:
    """`settings.deployment` as the Pipeline CRD checks `spec.deployment` (422 otherwise)."""
    from pydantic import ValidationError

    from algorail.operator.resource import DeploymentSettings

    if not isinstance(deployment, dict) or "code" in deployment:
        raise Invalid("settings.deployment must be a JSON object of image, resources, kafka, "
                      "autoscaling (code is packed from workdir)")
    try:
        DeploymentSettings.model_validate(deployment)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise Invalid(f"settings.deployment.{'.'.join(str(p) for p in error['loc'])}: "
                      f"{error['msg']}") from None
