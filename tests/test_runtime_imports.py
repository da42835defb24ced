"""The runtime depends on the plan and the codec alone: importing any `algorail.runtime`
module loads neither the pipeline model (`algorail.spec`) nor its graph (`algorail.graph`),
and the plan module loads neither either."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import algorail.runtime

RUNTIME = sorted(f"algorail.runtime.{m.name}" for m in pkgutil.iter_modules(
    algorail.runtime.__path__))
FORBIDDEN = ("algorail.spec", "algorail.graph", "algorail.compiler", "algorail.loader")
CHECK = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
         f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")


def test_the_runtime_modules_are_found():
    assert {"algorail.runtime.codec", "algorail.runtime.runner", "algorail.runtime.hooks",
            "algorail.runtime.gateway", "algorail.runtime.join"} <= set(RUNTIME)


def test_no_runtime_module_imports_the_pipeline_model_or_graph():
    modules = [*RUNTIME, "algorail.plan", "algorail.naming"]
    # one fresh interpreter per module, all at once; each bounded by the timeout below
    procs = {m: subprocess.Popen([sys.executable, "-c", CHECK, m], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for m in modules}
    loaded = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"importing {module} failed:\n{err}"
        if out.strip():
            loaded[module] = out.strip()
    assert loaded == {}, f"modules that load the pipeline model or graph: {loaded}"


def test_spec_does_not_import_graph():
    """The pipeline model is parsed without the graph rules (`algorail.loader` runs both)."""
    out = subprocess.run([sys.executable, "-c", CHECK, "algorail.spec"], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert out == "algorail.spec"
