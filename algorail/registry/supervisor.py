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
import time
from pathlib import Path

from algorail.errors import AlgorailError


class DeploymentError(AlgorailError):
    """A deployment could not be started or stopped."""


def _proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, process group, state letter) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), fields[0]


def process_tree(root: int, group: int | None = None) -> set[int]:
    """`root`, its descendants, and members of process group `group`, all alive."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))):
            table[int(entry.name)] = stat
    found = {pid for pid, (_, pgid, state) in table.items() if pgid == group and state != "Z"}
    frontier = [root] if root in table and table[root][2] != "Z" else []
    while frontier:
        pid = frontier.pop()
        found.add(pid)
        frontier += [c for c, (ppid, _, st) in table.items()
                     if ppid == pid and c not in found and st != "Z"]
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class LocalTarget:
    """`algorail dev SPEC --port P` in its own session, one per deployment."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self._children: dict[int, subprocess.Popen] = {}

    def start(self, owner: str, name: str, document: dict, settings: dict) -> dict:
        from algorail.runtime.broker import free_port, wait_for_port

        folder = self.state_dir / owner / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / "pipeline.json"
        spec.write_text(json.dumps(document, indent=2), encoding="utf-8")
        port = int(settings.get("port") or free_port())
        command = [sys.executable, "-m", "algorail.cli", "dev", str(spec), "--port", str(port),
                   "--deployment", name]
        if settings.get("bootstrapServers"):
            command += ["--bootstrap-servers", settings["bootstrapServers"]]
        workdir = settings.get("workdir") or str(folder)
        if not Path(workdir).is_dir():
            raise DeploymentError(f"workdir {workdir!r} is not a directory on the registry host")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (workdir, env.get("PYTHONPATH")) if p)
        log = folder / "dev.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._children[proc.pid] = proc
        timeout = float(settings.get("startTimeout", 60))
        if not wait_for_port("127.0.0.1", port, timeout) or proc.poll() is not None:
            self.stop({"pid": proc.pid, "pgid": proc.pid})
            tail = log.read_text(errors="replace")[-800:]
            raise DeploymentError(f"`algorail dev` did not serve on port {port} within "
                                  f"{timeout:.0f}s; its log {log} ends:\n{tail}")
        return {"pid": proc.pid, "pgid": proc.pid, "port": port,
                "url": f"http://127.0.0.1:{port}", "command": command, "log": str(log),
                "spec": str(spec)}

    def _reap(self, pid: int) -> None:
        proc = self._children.get(pid)
        if proc is not None and proc.poll() is not None:
            del self._children[pid]

    def check(self, runtime: dict) -> str | None:
        pid = runtime.get("pid")
        if not pid:
            return "no process recorded"
        self._reap(pid)
        stat = _proc_stat(pid)
        if stat is None or stat[2] == "Z" or runtime.get("spec") not in _cmdline(pid):
            return f"the `algorail dev` process {pid} has exited; see {runtime.get('log')}"
        return None

    def stop(self, runtime: dict, grace: float = 10.0) -> None:
        """SIGTERM every process of the deployment, then SIGKILL what is left."""
        pid = runtime.get("pid")
        if not pid:
            return
        if self.check(runtime) is not None and not process_tree(pid, runtime.get("pgid")):
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for p in process_tree(pid, runtime.get("pgid")):
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self._reap(pid)
                if not process_tree(pid, runtime.get("pgid")):
                    return
                time.sleep(0.1)
        raise DeploymentError(f"processes of deployment (pid {pid}) did not stop")


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
        release = settings.get("release") or render.release_name(plan)
        if len(release) > 53:
            raise DeploymentError(f"Helm release name {release!r} is longer than 53 characters: "
                                  "pass settings.release")
        chart = settings.get("chart") or str(render.chart_dir(render.PIPELINE_CHART))
        values = render.deep_merge(render.pipeline_values(plan), settings.get("values", {}))
        return {"release": release, "namespace": settings.get("namespace", "algorail"),
                "chart": chart, "values": values}

    def _run(self, args: list[str]) -> str:
        binary = shutil.which(self.helm)
        if binary is None:
            raise DeploymentError(f"the helm CLI ({self.helm!r}) is not on PATH: install Helm 3 "
                                  "or set ALGORAIL_HELM to its path")
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise DeploymentError(f"helm {args[0]} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    def start(self, owner: str, name: str, document: dict, settings: dict) -> dict:
        release = self.release(owner, name, document, settings)
        folder = self.state_dir / owner / name
        folder.mkdir(parents=True, exist_ok=True)
        values = folder / "values.json"
        values.write_text(json.dumps(release["values"], indent=2), encoding="utf-8")
        self._run(["upgrade", "--install", release["release"], release["chart"],
                   "--namespace", release["namespace"], "--create-namespace",
                   "--values", str(values)])
        return {"release": release["release"], "namespace": release["namespace"],
                "chart": release["chart"], "valuesFile": str(values)}

    def check(self, runtime: dict) -> str | None:
        return None  # the cluster, not the registry, keeps the release running

    def stop(self, runtime: dict) -> None:
        if runtime.get("release"):
            self._run(["uninstall", runtime["release"], "--namespace", runtime["namespace"]])


class Supervisor:
    """Dispatches to the deployment target named in each call."""

    def __init__(self, state_dir: str | Path, helm: str | None = None):
        root = Path(state_dir)
        self.targets = {"local": LocalTarget(root / "local"),
                        "kubernetes": KubernetesTarget(root / "kubernetes", helm)}

    def start(self, target: str, owner: str, name: str, document: dict, settings: dict) -> dict:
        return self.targets[target].start(owner, name, document, settings)

    def check(self, target: str, runtime: dict) -> str | None:
        return self.targets[target].check(runtime)

    def stop(self, target: str, runtime: dict) -> None:
        self.targets[target].stop(runtime)
