"""The operator: kopf handlers that run `reconcile.reconcile` on every Pipeline resource
created, changed, resumed after a restart or due for a resync, and `reconcile.finalize`
when one is deleted (kopf's finalizer holds the resource until that is done).

Level-based: each run lists what the resource owns and applies the difference, so a
resync also brings back an owned object someone deleted and refreshes runner readiness.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf

from algorail.errors import PipelineError
from algorail.operator.kube import OWNED_TYPES, Kube, KubeError
from algorail.operator.reconcile import finalize, reconcile
from algorail.operator.resource import GROUP, OWNER_LABEL, PLURAL, VERSION
from algorail.operator.seldon_pipelines import (
    BINDINGS_CONFIG_MAP,
    SELDON_GROUP,
    SELDON_VERSION,
    derived_pipeline,
)

FINALIZER = "algorail.io/operator"


@dataclass
class OperatorConfig:
    """What `algorail operator` is started with."""

    namespaces: Sequence[str] = ()  # empty: every namespace
    values: Mapping[str, Any] = field(default_factory=dict)  # algorail-pipeline chart values
    resync_seconds: float = 60.0
    engine: str = "auto"  # how the chart is rendered (render.ENGINES)
    watch_seldon: bool = False  # also mirror mlops.seldon.io Pipelines (seldon_pipelines)


def registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers, bound to `config`."""
    reg = kopf.OperatorRegistry()
    kube: dict[str, Kube] = {}
    pipelines = {"group": GROUP, "version": VERSION, "plural": PLURAL, "registry": reg}

    @kopf.on.startup(registry=reg)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        # Handler logs become Events from warnings up; the operator posts its own Normal ones.
        settings.posting.level = logging.WARNING

    @kopf.on.login(registry=reg)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            kube["api"] = Kube(info)
        return info

    @kopf.on.cleanup(registry=reg)
    async def close(**_: Any) -> None:
        if "api" in kube:
            await kube.pop("api").close()

    async def observed(body: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = body["metadata"]
        return await kube["api"].list_owned(meta["namespace"], OWNER_LABEL, meta["uid"],
                                            OWNED_TYPES)

    # kopf runs a resource's timer beside its change handlers: one reconcile at a time per
    # Pipeline, or a resync holding the old spec could prune what an update just applied.
    locks: dict[str, asyncio.Lock] = {}

    async def run(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger) -> None:
        async with locks.setdefault(body["metadata"]["uid"], asyncio.Lock()):
            await reconcile_once(body, patch, logger)

    async def reconcile_once(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger) -> None:
        pipeline = _plain(body)
        result = await asyncio.to_thread(reconcile, pipeline, await observed(pipeline),
                                         operator_values=config.values, engine=config.engine)
        if result.problems:
            message = "\n".join(str(p) for p in result.problems)
            if _changed(pipeline, result.status):
                kopf.warn(body, reason="InvalidSpec", message=message[:1000])
            patch.status.update(result.status)
            return
        try:
            for obj in result.apply:
                await kube["api"].apply(obj)
            for obj in result.prune:
                await kube["api"].delete(obj)
        except (KubeError, httpx.HTTPError) as exc:
            kopf.warn(body, reason="ApplyFailed", message=str(exc)[:1000])
            raise kopf.TemporaryError(str(exc), delay=min(30.0, config.resync_seconds)) from exc
        if result.apply or result.prune:
            kopf.event(body, type="Normal", reason="Applied",
                      message=f"applied {len(result.apply)} objects, pruned {len(result.prune)}"
                              f" (plan {result.status['planVersion']},"
                              f" {result.status['planHash'][:19]})")
            logger.info("applied %d objects, pruned %d", len(result.apply), len(result.prune))
        patch.status.update(result.status)

    @kopf.on.create(**pipelines)
    @kopf.on.update(**pipelines)
    @kopf.on.resume(**pipelines)
    async def apply_pipeline(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger,
                             **_: Any) -> None:
        await run(body, patch, logger)

    @kopf.timer(**pipelines, interval=config.resync_seconds, idle=config.resync_seconds / 2)
    async def resync_pipeline(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger,
                              **_: Any) -> None:
        await run(body, patch, logger)

    @kopf.on.delete(**pipelines)
    async def delete_pipeline(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        pipeline = _plain(body)
        gone = finalize(pipeline, await observed(pipeline))
        for obj in gone:
            await kube["api"].delete(obj)
        locks.pop(pipeline["metadata"]["uid"], None)
        logger.info("deleted %d owned objects", len(gone))

    if config.watch_seldon:
        _seldon_handlers(reg, config, kube)
    return reg


def _seldon_handlers(reg: kopf.OperatorRegistry, config: OperatorConfig,
                     kube: dict[str, Kube]) -> None:
    """Each Seldon Pipeline kept mirrored as an algorail Pipeline (seldon_pipelines)."""
    seldon = {"group": SELDON_GROUP, "version": SELDON_VERSION, "plural": PLURAL,
              "registry": reg}
    warned: dict[str, str] = {}  # uid -> the last problem posted, so a resync posts it once

    async def mirror(body: kopf.Body, logger: logging.Logger) -> None:
        meta = body["metadata"]
        bindings = await kube["api"].get("v1", "ConfigMap", meta["namespace"],
                                         BINDINGS_CONFIG_MAP)
        try:
            resource = derived_pipeline(_plain(body), bindings)
        except PipelineError as exc:
            message = "\n".join(str(p) for p in exc.problems)
            if warned.get(meta["uid"]) != message:
                warned[meta["uid"]] = message
                kopf.warn(body, reason="InvalidSpec", message=message[:1000])
            return
        warned.pop(meta["uid"], None)
        try:
            await kube["api"].apply(resource)
        except (KubeError, httpx.HTTPError) as exc:
            kopf.warn(body, reason="ApplyFailed", message=str(exc)[:1000])
            raise kopf.TemporaryError(str(exc), delay=min(30.0, config.resync_seconds)) from exc
        logger.debug("mirrored as %s/%s", resource["apiVersion"], resource["metadata"]["name"])

    @kopf.on.create(**seldon)
    @kopf.on.update(**seldon)
    @kopf.on.resume(**seldon)
    async def apply_seldon(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        await mirror(body, logger)

    @kopf.timer(**seldon, interval=config.resync_seconds, idle=config.resync_seconds / 2)
    async def resync_seldon(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        await mirror(body, logger)  # a changed bindings ConfigMap is picked up here

    @kopf.on.delete(**seldon)
    async def delete_seldon(body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        warned.pop(meta["uid"], None)
        await kube["api"].delete({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Pipeline",
                                  "metadata": {"namespace": meta["namespace"],
                                               "name": meta["name"]}})


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's read-only body as the plain dict `reconcile` takes."""
    return dict(body)


def _changed(resource: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return (resource.get("status") or {}).get("conditions") != status.get("conditions")


def run_operator(config: OperatorConfig, *, handlers: kopf.OperatorRegistry | None = None,
                 stop_flag: threading.Event | None = None,
                 ready_flag: threading.Event | None = None,
                 liveness_endpoint: str | None = None) -> None:
    """Run the operator until stopped (a signal, or `stop_flag`); `handlers` defaults to
    `registry(config)`."""
    kopf.run(registry=handlers or registry(config), standalone=True,
             clusterwide=not config.namespaces, namespaces=list(config.namespaces),
             stop_flag=stop_flag, ready_flag=ready_flag, liveness_endpoint=liveness_endpoint)
