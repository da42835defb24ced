"""Plans that change while the gateway and the hook dispatcher run.

A *source* says which plans exist now, as ``{key: plan JSON text}``:

- `DirectorySource`: every ``*.json`` file of a folder (`--plans-dir`). A ConfigMap mounted
  as a folder (no ``subPath``) is one: kubelet swaps its files when the ConfigMap changes.
- `ClusterSource`: every ConfigMap of a namespace labelled ``algorail.io/plan=true`` (what
  the algorail-pipeline chart, and so the operator, writes for each pipeline), narrowed by
  a label selector, read from the Kubernetes API with the pod's service account.

`PlanWatcher` reads its source every `interval` seconds in a thread and tells its listeners
what changed: a plan added, replaced by another version, or removed. A file that does not
parse as a plan is reported in the log and otherwise ignored (the plan it replaced, if any,
stays served), so a half-written file never takes a pipeline down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from algorail.errors import AlgorailError
from algorail.plan import Plan, plan_hash

log = logging.getLogger("algorail.plans")

PLAN_LABEL = "algorail.io/plan=true"
PLAN_KEY = "plan.json"  # the plan ConfigMap's key
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_INTERVAL = 2.0


class PlanSourceError(AlgorailError):
    pass


class PlanSource(Protocol):
    def read(self) -> dict[str, str]:
        """Every plan there is now: key -> plan JSON text."""


def plan_label(plan: Plan) -> dict[str, str]:
    """How a run names the plan version it started on."""
    return {"version": plan.version, "hash": plan_hash(plan)}


@dataclass
class DirectorySource:
    """The ``*.json`` files of `path` (hidden files and folders are skipped)."""

    path: Path

    def __str__(self) -> str:
        return f"the folder {self.path}"

    def read(self) -> dict[str, str]:
        if not self.path.is_dir():
            raise PlanSourceError(f"the plans folder {self.path} does not exist")
        found = {}
        for file in sorted(self.path.glob("*.json")):
            if file.name.startswith(".") or not file.is_file():
                continue
            try:
                found[file.name] = file.read_text(encoding="utf-8")
            except OSError as exc:  # removed between the listing and the read
                log.warning("cannot read %s: %s", file, exc.strerror)
        return found


@dataclass
class ClusterSource:
    """The plan ConfigMaps of `namespace`: those labelled ``algorail.io/plan=true`` and
    matching `selector` (a Kubernetes label selector), keyed by ConfigMap name."""

    namespace: str
    selector: str = ""
    server: str = "https://kubernetes.default.svc"
    token: str | None = None
    ca_file: str | bool = True

    @classmethod
    def in_cluster(cls, namespace: str | None, selector: str = "") -> ClusterSource:
        """With the pod's service account; `namespace` defaults to the pod's own."""
        import os

        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get(
            "KUBERNETES_SERVICE_PORT", "443")
        try:
            token = (SERVICE_ACCOUNT / "token").read_text().strip()
            namespace = namespace or (SERVICE_ACCOUNT / "namespace").read_text().strip()
        except OSError as exc:
            raise PlanSourceError(
                "--plans-from-cluster needs a service account token (run in a pod with "
                f"automountServiceAccountToken): {exc}") from exc
        server = f"https://{host}:{port}" if host else cls.server
        return cls(namespace, selector, server, token, str(SERVICE_ACCOUNT / "ca.crt"))

    def __str__(self) -> str:
        narrowed = f" matching {self.selector}" if self.selector else ""
        return f"the plan ConfigMaps of namespace {self.namespace}{narrowed}"

    def read(self) -> dict[str, str]:
        import httpx

        selector = ",".join(s for s in (PLAN_LABEL, self.selector) if s)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.server}/api/v1/namespaces/{self.namespace}/configmaps"
        try:
            response = httpx.get(url, params={"labelSelector": selector}, headers=headers,
                                 verify=self.ca_file, timeout=10)
        except httpx.HTTPError as exc:
            raise PlanSourceError(f"cannot list ConfigMaps at {url}: {exc}") from exc
        if not response.is_success:
            raise PlanSourceError(f"listing ConfigMaps in {self.namespace} answered HTTP "
                                  f"{response.status_code}: {response.text.strip()[:300]}")
        label, _, value = PLAN_LABEL.partition("=")
        return {item["metadata"]["name"]: item["data"][PLAN_KEY]
                for item in response.json().get("items", [])
                if PLAN_KEY in (item.get("data") or {})
                and (item["metadata"].get("labels") or {}).get(label) == value}


@dataclass(frozen=True)
class Change:
    """One plan's change: `old` None when added, `new` None when removed."""

    key: str
    old: Plan | None
    new: Plan | None


Listener = Callable[[list[Change]], None]


def parse_plan(key: str, text: str) -> Plan:
    from pydantic import ValidationError

    try:
        return Plan.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        raise PlanSourceError(f"{key} is not a plan written by `algorail plan -o`: "
                              f"{str(exc)[:500]}") from exc


class PlanWatcher:
    """Follows a source: `poll()` once (listeners run in the calling thread), or `start()`
    a thread polling every `interval` seconds until `stop()`. `plans` is what is served."""

    def __init__(self, source: PlanSource, interval: float = DEFAULT_INTERVAL):
        self.source, self.interval = source, interval
        self.plans: dict[str, Plan] = {}
        self._texts: dict[str, str] = {}
        self._bad: dict[str, str] = {}  # key -> text that did not parse (logged once)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def poll(self) -> list[Change]:
        """Read the source once and tell the listeners what changed."""
        texts = self.source.read()
        with self._lock:
            changes = self._diff(texts)
        if changes:
            log.info("plans: %s", describe(changes))
            for listener in self._listeners:
                listener(changes)
        return changes

    def _diff(self, texts: dict[str, str]) -> list[Change]:
        changes = []
        for key in sorted(set(self.plans) - set(texts)):
            changes.append(Change(key, self.plans.pop(key), None))
            self._texts.pop(key, None)
        for key, text in sorted(texts.items()):
            if self._texts.get(key) == text or self._bad.get(key) == text:
                continue
            try:
                plan = parse_plan(key, text)
            except PlanSourceError as exc:
                self._bad[key] = text
                log.error("%s; %s", exc, "the version before it stays served"
                          if key in self.plans else "not served")
                continue
            self._bad.pop(key, None)
            self._texts[key] = text
            old = self.plans.get(key)
            if old is not None and plan_hash(old) == plan_hash(plan):
                continue  # rewritten, same plan
            self.plans[key] = plan
            changes.append(Change(key, old, plan))
        return changes

    def start(self) -> PlanWatcher:
        self._thread = threading.Thread(target=self._run, name="algorail-plans", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except PlanSourceError as exc:
                log.warning("%s; keeping the plans served", exc)
            except Exception:
                log.exception("following the plans failed; keeping the plans served")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 15)
            self._thread = None


def open_source(plans_dir: str | None, from_cluster: bool, namespace: str | None = None,
                selector: str = "") -> PlanSource:
    if from_cluster:
        return ClusterSource.in_cluster(namespace, selector)
    return DirectorySource(Path(plans_dir))


def describe(changes: list[Change]) -> str:
    words = []
    for c in changes:
        what = "added" if c.old is None else "removed" if c.new is None else "updated"
        plan: Any = c.new or c.old
        words.append(f"{plan.owner}/{plan.deployment} {what} ({c.key})")
    return ", ".join(words)
