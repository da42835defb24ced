"""The local Python modules of algos without an image, packed for a cluster.

An algo with ``runtime: python``, an `entrypoint` and no `image` runs in the stock runner
image, which holds algorail but not the pipeline's own modules (``hello_algos`` next to
examples/hello.yaml). `pack` collects them where the files are (`algorail render`, the
Pulumi program, the registry; never the operator, which has no files): the entrypoint's
module found next to the pipeline, its parent packages' ``__init__.py`` and, following
their imports, every other module of that folder they import. The algorail-pipeline chart
puts them in a ConfigMap that runners of such algos mount on their ``PYTHONPATH``.

A ConfigMap holds at most 1 MiB, the plan and the rest of the object included, so the
files are bounded by `MAX_BYTES`; beyond that, the algo needs an image of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

from algorail.errors import AlgorailError
from algorail.plan import Plan, RunnerPlan

MAX_BYTES = 512 * 1024
CODE_DIR = "/opt/algorail/code"  # where runners mount them (the chart's PYTHONPATH)
IMAGE_HINT = ("build an image for it from the algo template's Dockerfile (`algorail new "
              "algo`, templates/algo/{{cookiecutter.distribution}}/Dockerfile) and set the "
              "algo's `image`")


class CodePackError(AlgorailError):
    pass


def packed(runner: RunnerPlan) -> bool:
    """Whether a runner runs code the stock image does not hold, found next to the pipeline."""
    return runner.runtime == "python" and bool(runner.entrypoint) and not runner.image


def pack(plan: Plan, max_bytes: int = MAX_BYTES) -> dict[str, str]:
    """Path under CODE_DIR (``pkg/mod.py``) -> source text, for every algo `packed` whose
    module is next to the pipeline; {} when none is (a plan compiled without its folder,
    or modules installed in the image)."""
    files: dict[str, str] = {}
    for runner in plan.runners:
        base_dir = runner.base_dir or plan.base_dir
        if not packed(runner) or not base_dir:
            continue
        module = runner.entrypoint.partition(":")[0]
        found = _modules(Path(base_dir), module)
        if found:
            files.update(found)
            size = sum(len(text.encode()) for text in files.values())
            if size > max_bytes:
                raise CodePackError(
                    f"algo {runner.component!r}: the Python modules packed for the cluster "
                    f"({', '.join(sorted(files))}) are {size} bytes, more than the "
                    f"{max_bytes} a ConfigMap carries here; {IMAGE_HINT}")
    keys = {config_map_key(path) for path in files}
    if len(keys) != len(files):
        raise CodePackError(f"module files {sorted(files)} would share a ConfigMap key; "
                            f"rename one, or {IMAGE_HINT}")
    return dict(sorted(files.items()))


def config_map_key(path: str) -> str:
    """The ConfigMap key of a packed file (keys take no ``/``): what the chart uses too."""
    return path.replace("/", ".")


def _modules(base: Path, name: str) -> dict[str, str]:
    """`name` and the modules of `base` it imports, transitively: relative path -> text."""
    files: dict[str, str] = {}
    todo = [name]
    while todo:
        module = todo.pop()
        path = _module_file(base, module)
        if path is None:
            continue
        parts = module.split(".")
        for depth in range(1, len(parts)):  # the parent packages' __init__.py
            init = base.joinpath(*parts[:depth], "__init__.py")
            if init.is_file():
                files.setdefault(init.relative_to(base).as_posix(), _read(init))
        text = files[path.relative_to(base).as_posix()] = _read(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        todo += [m for m in _imports(text, package, path) if _module_file(base, m)
                 and _module_file(base, m).relative_to(base).as_posix() not in files]
    return files


def _module_file(base: Path, module: str) -> Path | None:
    stem = base.joinpath(*module.split("."))
    return next((p for p in (stem.with_suffix(".py"), stem / "__init__.py") if p.is_file()),
                None)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CodePackError(f"cannot read {path} to pack it: {exc}") from exc


def _imports(text: str, package: str, path: Path) -> list[str]:
    """Modules `text` imports (relative imports resolved against `package`)."""
    try:
        tree = ast.parse(text, str(path))
    except SyntaxError as exc:
        raise CodePackError(f"{path} does not parse: {exc}") from exc
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*anchor, node.module or ""] if p)
            else:
                base = node.module or ""
            found.append(base)
            found += [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
    return [m for m in found if m]
