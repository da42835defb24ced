"""Runs deployments: `local` as an `algorail dev` process tree supervised by PID,
`kubernetes` as a `Pipeline` resource the cluster's operator reconciles.

What a target started is returned as a plain dict that the registry stores in SQL, so
a restarted registry can find, check and stop it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from algorail.errors import AlgorailError


class DeploymentError(AlgorailError):
    """A deployment could not be started or stopped."""


class DeploymentCancelled(DeploymentError):
    """The deployment was terminated while it was starting."""


TAIL_LINES = 20


def log_tail(log: Path, offset: int = 0) -> str:
    """The last lines written to `log` after byte `offset` (what a failure message shows)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-TAIL_LINES:])[-2000:]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _holds_pid(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.Error:
        return False


def dev_process(runtime: dict) -> psutil.Process | None:
    """The deployment's `algorail dev` process if it still runs: the same PID and start
    time (a deployment recorded before start times were, by its spec on the command line)."""
    try:
        proc = psutil.Process(runtime["pid"])
        if "createTime" in runtime:
            same = proc.create_time() == runtime["createTime"]
        else:
            same = runtime.get("spec") in proc.cmdline()
        return proc if same and _alive(proc) else None
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def deployment_processes(runtime: dict) -> list[psutil.Process]:
    """The live processes of a local deployment: its `algorail dev` process, every
    descendant of it, and every member of its process group (the group's number is the
    dev process's PID: while another process holds that PID, the number was reused and
    names no group of ours)."""
    found: dict[int, psutil.Process] = {}
    root = dev_process(runtime)
    if root is not None:
        found[root.pid] = root
        try:
            found.update((c.pid, c) for c in root.children(recursive=True))
        except psutil.Error:
            pass
    group = runtime.get("pgid")
    if group and (root is not None or not _holds_pid(group)):
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == group:
                    found[proc.pid] = proc
            except OSError:
                continue
    return [p for p in found.values() if _alive(p)]


class LocalTarget:
    """`algorail dev SPEC --port P` in its own session, one per deployment."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.closing = threading.Event()
        self._children: dict[int, subprocess.Popen] = {}

    def start(self, owner: str, name: str, document: dict, settings: dict,
              launched: Callable[[dict], None] = lambda runtime: None) -> dict:
        """Start `algorail dev` and wait until it says it is ready; `launched` is called
        with what was started before the wait, so the caller can record it. If anything
        fails (including `launched`), every process started is stopped."""
        from algorail.runtime.broker import free_port

        folder = self.state_dir / owner / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / "pipeline.json"
        spec.write_text(json.dumps(document, indent=2), encoding="utf-8")
        port = int(settings.get("port") or free_port())
        command = [sys.executable, "-m", "algorail.cli", "dev", str(spec), "--port", str(port),
                   "--deployment", name, "--work-dir", str(folder / "work")]
        if settings.get("bootstrapServers"):
            command += ["--bootstrap-servers", settings["bootstrapServers"]]
        workdir = settings.get("workdir") or str(folder)
        if not Path(workdir).is_dir():
            raise DeploymentError(f"workdir {workdir!r} is not a directory on the registry host")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (workdir, env.get("PYTHONPATH")) if p)
        log = folder / "dev.log"
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._children[proc.pid] = proc
        runtime = {"pid": proc.pid, "pgid": proc.pid, "port": port,
                   "url": f"http://127.0.0.1:{port}", "command": command, "log": str(log),
                   "logOffset": offset, "spec": str(spec)}
        try:
            runtime["createTime"] = psutil.Process(proc.pid).create_time()
            launched(runtime)
            self._wait_ready(proc, runtime, float(settings.get("startTimeout", 60)))
        except BaseException:
            self.stop(runtime)
            raise
        return runtime

    def _wait_ready(self, proc: subprocess.Popen, runtime: dict, timeout: float) -> None:
        """Until `algorail dev` prints its ready line and serves its port; it exiting, the
        timeout or the registry closing is an error that ends with the last lines of its log."""
        from algorail.runtime.broker import wait_for_port
        from algorail.runtime.dev import READY_WORD

        log, offset = Path(runtime["log"]), runtime["logOffset"]
        ready_line, position, partial, ready = f"{READY_WORD}:".encode(), offset, b"", False
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise DeploymentError(f"`algorail dev` exited with status {proc.returncode} "
                                      f"before it was ready; the last lines of {log}:\n"
                                      f"{log_tail(log, offset)}")
            with open(log, "rb") as out:  # only what was written since the last look
                out.seek(position)
                written = out.read()
            position += len(written)
            *lines, partial = (partial + written).split(b"\n")
            ready = ready or any(line.startswith(ready_line) for line in lines)
            if ready and wait_for_port("127.0.0.1", runtime["port"], 1):
                return
            if self.closing.is_set():
                raise DeploymentError("the registry stopped while the deployment was starting")
            if time.monotonic() > deadline:
                raise DeploymentError(f"`algorail dev` was not ready within {timeout:g}s; "
                                      f"the last lines of {log}:\n{log_tail(log, offset)}")
            time.sleep(0.2)

    def check(self, runtime: dict) -> str | None:
        pid = runtime.get("pid")
        if not pid:
            return "no process recorded"
        proc = self._children.get(pid)
        status = proc.poll() if proc is not None else None
        if status is None and dev_process(runtime) is not None:
            return None
        exited = "has exited" if status is None else f"has exited with status {status}"
        tail = log_tail(Path(runtime.get("log", "")), runtime.get("logOffset", 0))
        return (f"the `algorail dev` process {pid} {exited}; the last lines of "
                f"{runtime.get('log')}:\n{tail}")

    def observe(self, runtime: dict) -> tuple[str | None, dict | None]:
        return self.check(runtime), None

    def stop(self, runtime: dict, grace: float = 10.0) -> None:
        """SIGTERM every process of the deployment, then SIGKILL what is left."""
        procs = deployment_processes(runtime)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for p in procs:
                try:
                    p.send_signal(sig)
                except psutil.NoSuchProcess:
                    pass
            deadline = time.monotonic() + wait
            while procs and time.monotonic() < deadline:
                time.sleep(0.05)
                own = self._children.get(runtime.get("pid"))
                if own is not None:
                    own.poll()  # collect our own child's exit status: no zombie is left
                procs = [p for p in procs if _alive(p)]
            if not procs:
                return
        raise DeploymentError(f"processes {sorted(p.pid for p in procs)} of the deployment "
                              "did not stop")


class KubernetesTarget:
    """Deploys through the Pipeline operator (docs/operator.md), which it assumes runs on
    the cluster: creates or updates the deployment's `Pipeline` resource, reads its status,
    deletes it. The API server and credentials are the registry's kubeconfig, or its pod's
    service account."""

    FIELD_MANAGER = "algorail-registry"
    # On each resource, the registry deployment it belongs to: another deployment (or a
    # kubectl user) holding the same namespace/name is refused, never overwritten.
    DEPLOYMENT_ANNOTATION = "algorail.io/registry-deployment"

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def resource(self, owner: str, name: str, document: dict, settings: dict) -> dict:
        """The Pipeline resource `start` creates: `operator.resource.deployment_resource`
        of the compiled plan (the object `algorail render --resource` writes), the Python
        modules of algos without an image packed from `settings.workdir`, and
        `settings.deployment` (image, resources, kafka, autoscaling) in its spec."""
        from algorail import codepack
        from algorail.compiler import compile_plan
        from algorail.operator.resource import deployment_resource
        from algorail.spec import parse_pipeline

        plan = compile_plan(parse_pipeline(document), deployment=name)
        workdir = settings.get("workdir")
        try:
            resource = deployment_resource(
                document, plan.model_copy(update={"base_dir": workdir}),
                settings.get("namespace", "algorail"))
        except codepack.CodePackError as exc:
            raise DeploymentError(str(exc)) from None
        if settings.get("deployment"):
            resource["spec"]["deployment"] = {**resource["spec"].get("deployment", {}),
                                              **settings["deployment"]}
        resource["metadata"].setdefault("annotations", {})[self.DEPLOYMENT_ANNOTATION] = (
            f"{owner}/{name}")
        return resource

    def _call(self, work: Callable[[Any], Any]) -> Any:
        """Run `work(kube)` (a coroutine function) with a client of the cluster's API."""
        import asyncio

        import httpx

        from algorail.operator.kube import Kube, KubeError, login

        async def run() -> Any:
            kube = Kube(info, field_manager=self.FIELD_MANAGER)
            try:
                return await work(kube)
            finally:
                await kube.close()

        try:
            info = login()
            return asyncio.run(run())
        except KubeError as exc:
            raise DeploymentError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise DeploymentError(f"cannot reach the Kubernetes API at {info.server}: "
                                  f"{type(exc).__name__} {exc}".strip()) from None

    def start(self, owner: str, name: str, document: dict, settings: dict,
              launched: Callable[[dict], None] = lambda runtime: None) -> dict:
        """Create or update the Pipeline resource; `launched` is called with what will be
        applied once the cluster is known to serve Pipelines and the name is free (it may
        refuse, and then nothing is applied)."""
        from algorail import naming
        from algorail.operator.resource import KIND, PLURAL, RESOURCE_API_VERSION

        resource = self.resource(owner, name, document, settings)
        meta = resource["metadata"]
        # the release the operator names the pipeline's objects after (operator_plan)
        release = naming.helm_release(resource["spec"]["owner"], meta["name"])
        runtime = {"apiVersion": RESOURCE_API_VERSION, "kind": KIND,
                   "namespace": meta["namespace"], "name": meta["name"], "release": release}

        async def check(kube: Any) -> None:
            if not await kube.serves(RESOURCE_API_VERSION, PLURAL):
                raise DeploymentError(
                    f"the cluster does not serve {KIND} resources ({RESOURCE_API_VERSION}): "
                    "install the CRD and the operator first (helm install algorail "
                    "charts/algorail --set operator.enabled=true, docs/operator.md)")
            found = await kube.get(RESOURCE_API_VERSION, KIND, meta["namespace"], meta["name"])
            holder = ((found or {}).get("metadata", {}).get("annotations") or {}).get(
                self.DEPLOYMENT_ANNOTATION)
            if found is not None and holder != f"{owner}/{name}":
                raise DeploymentError(
                    f"{KIND} {meta['namespace']}/{meta['name']} exists and belongs to "
                    f"{'deployment ' + holder if holder else 'no registry deployment'}: "
                    "deploy under another name or to another namespace")

        async def apply(kube: Any) -> None:
            await kube.apply(resource)

        self._call(check)
        launched(runtime)
        self._call(apply)
        return runtime

    def observe(self, runtime: dict) -> tuple[str | None, dict | None]:
        """Whether the deployment is gone (its resource deleted behind the registry's
        back), and the resource's status as the operator reports it; a cluster that cannot
        be reached is a status, not a failure."""
        from algorail.operator.resource import KIND, RESOURCE_API_VERSION

        if not runtime.get("name"):
            return "no Pipeline resource recorded", None

        async def read(kube: Any) -> dict | None:
            return await kube.get(RESOURCE_API_VERSION, KIND, runtime["namespace"],
                                  runtime["name"])

        try:
            found = self._call(read)
        except DeploymentError as exc:
            return None, {"ready": False, "reconciled": False, "message": str(exc)}
        if found is None:
            return (f"{KIND} {runtime['namespace']}/{runtime['name']} is gone from the "
                    "cluster (deleted outside the registry)"), None
        return None, resource_status(found)

    def check(self, runtime: dict) -> str | None:
        return self.observe(runtime)[0]

    def stop(self, runtime: dict) -> None:
        """Delete the resource (the operator deletes what it made); one that is already
        gone counts as stopped."""
        if not runtime.get("name"):
            return

        async def delete(kube: Any) -> None:
            await kube.delete({"apiVersion": runtime["apiVersion"], "kind": runtime["kind"],
                               "metadata": {"namespace": runtime["namespace"],
                                            "name": runtime["name"]}})

        self._call(delete)


def resource_status(resource: dict) -> dict:
    """A Pipeline resource's status as the registry reports it: ready and degraded from
    its conditions, whether the operator has reconciled its latest generation, each
    component's state, and one message saying what is wrong, if anything."""
    status = resource.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    generation = (resource.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    reconciled = bool(conditions) and (generation is None or observed == generation)
    ready, degraded = (conditions.get(kind, {}).get("status") == "True"
                       for kind in ("Ready", "Degraded"))
    if not reconciled:
        meta = resource.get("metadata") or {}
        message = (f"the operator has not reconciled generation {generation or 1} yet: is "
                   f"`algorail operator` running and watching namespace {meta.get('namespace')}?")
    else:
        message = conditions["Degraded" if degraded else "Ready"].get("message")
    return {"ready": reconciled and ready, "degraded": degraded, "reconciled": reconciled,
            "generation": generation, "observedGeneration": observed,
            "planVersion": status.get("planVersion"), "planHash": status.get("planHash"),
            "endpoints": status.get("endpoints") or [],
            "components": status.get("components") or {},
            "conditions": list(conditions.values()), "message": message}


class Supervisor:
    """Dispatches to the deployment target named in each call."""

    def __init__(self, state_dir: str | Path):
        root = Path(state_dir)
        self.targets = {"local": LocalTarget(root / "local"),
                        "kubernetes": KubernetesTarget(root / "kubernetes")}

    def start(self, target: str, owner: str, name: str, document: dict, settings: dict,
              launched: Callable[[dict], None] = lambda runtime: None) -> dict:
        return self.targets[target].start(owner, name, document, settings, launched)

    def check(self, target: str, runtime: dict) -> str | None:
        return self.targets[target].check(runtime)

    def observe(self, target: str, runtime: dict) -> tuple[str | None, dict | None]:
        """What `check` says, and the target's live status of the deployment (None for a
        target that has none)."""
        return self.targets[target].observe(runtime)

    def stop(self, target: str, runtime: dict) -> None:
        self.targets[target].stop(runtime)

    def close(self) -> None:
        """End the waits of deployments still starting (they fail and are stopped)."""
        self.targets["local"].closing.set()
