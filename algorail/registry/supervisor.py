"""Runs deployments: `local` as an `algorail dev` process tree supervised by PID,
`kubernetes` as a release of the `algorail-pipeline` Helm chart.

What a target started is returned as a plain dict that the registry stores in SQL, so
a restarted registry can find, check and stop it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

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
    """Installs, upgrades and uninstalls a chart release with the helm CLI."""

    def __init__(self, state_dir: Path, helm: str | None = None):
        self.state_dir = state_dir
        self.helm = helm or os.environ.get("ALGORAIL_HELM", "helm")

    def release(self, owner: str, name: str, document: dict, settings: dict) -> dict:
        """What `start` installs: release name, namespace, chart, and values (the compiled
        plan as `algorail render` gives it, with `settings.values` merged on top)."""
        from algorail import render
        from algorail.plan import compile_plan
        from algorail.spec import parse_pipeline

        plan = compile_plan(parse_pipeline(document), deployment=name)
        if settings.get("release"):
            try:
                plan = plan.with_release(settings["release"])
            except AlgorailError as exc:
                raise DeploymentError(f"settings.release: {exc}") from None
        values = render.helm_values(plan, settings.get("values", {}))
        chart = settings.get("chart") or str(render.chart_dir(render.PIPELINE_CHART))
        return {"release": values.release, "namespace": settings.get("namespace", "algorail"),
                "chart": chart, "values": values.pipeline}

    def _binary(self) -> str:
        binary = shutil.which(self.helm)
        if binary is None:
            raise DeploymentError(f"the helm CLI ({self.helm!r}) is not on PATH: install Helm 3 "
                                  "or set ALGORAIL_HELM to its path")
        return binary

    def _run(self, args: list[str]) -> str:
        done = subprocess.run([self._binary(), *args], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise DeploymentError(f"helm {args[0]} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    def start(self, owner: str, name: str, document: dict, settings: dict,
              launched: Callable[[dict], None] = lambda runtime: None) -> dict:
        """Install or upgrade the release; `launched` is called with what will be installed
        before helm runs (it may refuse, and then nothing is installed)."""
        self._binary()  # no helm, nothing installed: fail before anything is recorded
        release = self.release(owner, name, document, settings)
        folder = self.state_dir / owner / name
        folder.mkdir(parents=True, exist_ok=True)
        values = folder / "values.json"
        values.write_text(json.dumps(release["values"], indent=2), encoding="utf-8")
        runtime = {"release": release["release"], "namespace": release["namespace"],
                   "chart": release["chart"], "valuesFile": str(values)}
        launched(runtime)
        self._run(["upgrade", "--install", release["release"], release["chart"],
                   "--namespace", release["namespace"], "--create-namespace",
                   "--values", str(values)])
        return runtime

    def check(self, runtime: dict) -> str | None:
        return None  # the cluster, not the registry, keeps the release running

    def stop(self, runtime: dict) -> None:
        """Uninstall the release; one that is already gone counts as stopped."""
        if not runtime.get("release"):
            return
        try:
            self._run(["uninstall", runtime["release"], "--namespace", runtime["namespace"]])
        except DeploymentError as exc:
            if "not found" not in str(exc):
                raise


class Supervisor:
    """Dispatches to the deployment target named in each call."""

    def __init__(self, state_dir: str | Path, helm: str | None = None):
        root = Path(state_dir)
        self.targets = {"local": LocalTarget(root / "local"),
                        "kubernetes": KubernetesTarget(root / "kubernetes", helm)}

    def start(self, target: str, owner: str, name: str, document: dict, settings: dict,
              launched: Callable[[dict], None] = lambda runtime: None) -> dict:
        return self.targets[target].start(owner, name, document, settings, launched)

    def check(self, target: str, runtime: dict) -> str | None:
        return self.targets[target].check(runtime)

    def stop(self, target: str, runtime: dict) -> None:
        self.targets[target].stop(runtime)

    def close(self) -> None:
        """End the waits of deployments still starting (they fail and are stopped)."""
        self.targets["local"].closing.set()
