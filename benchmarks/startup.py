"""Start-up time of `algorail --help` against a bare `python -c pass`, on this machine.

    python benchmarks/startup.py [--runs 15]

Runs the two commands alternately (so a busy machine slows both alike), `--runs` times
each, and ends with one JSON line:
``{"baseline_s", "algorail_s", "ratio", "difference_s", "baseline_cpu_s", ...}``
(medians of wall and of CPU time; ratio = algorail / baseline, difference = algorail -
baseline; CPU time suffers less than wall time from other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# As installed for users: byte-code cached (the warm-up run writes it), not compiled anew.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def algorail_command() -> list[str]:
    """The installed `algorail` script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("algorail")
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("algorail")
    return [found, "--help"] if found else [sys.executable, "-m", "algorail.cli", "--help"]


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of `command`."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=ENV)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    baseline_cmd, algorail_cmd = [sys.executable, "-c", "pass"], algorail_command()
    run_once(algorail_cmd)  # warm the file cache and byte-code once
    baseline, algorail = [], []
    for _ in range(args.runs):
        baseline.append(run_once(baseline_cmd))
        algorail.append(run_once(algorail_cmd))
    base, ours = (statistics.median(w for w, _ in baseline),
                  statistics.median(w for w, _ in algorail))
    base_cpu, ours_cpu = (statistics.median(c for _, c in baseline),
                          statistics.median(c for _, c in algorail))
    print(json.dumps({
        "baseline_s": round(base, 4), "algorail_s": round(ours, 4),
        "ratio": round(ours / base, 2), "difference_s": round(ours - base, 4),
        "baseline_cpu_s": round(base_cpu, 4), "algorail_cpu_s": round(ours_cpu, 4),
        "cpu_difference_s": round(ours_cpu - base_cpu, 4),
        "runs": args.runs, "load_average": round(os.getloadavg()[0], 1),
    }))


if __name__ == "__main__":
    main()
