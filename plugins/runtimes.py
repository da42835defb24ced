"""Built-in algo runtimes: python (in-process), exec (a command), http (a URL)."""

from __future__ import annotations

from typing import Any

from algorail.extensions import AlgoCall, AlgoRuntime
from algorail.hookspecs import hookimpl


class PythonRuntime(AlgoRuntime):
    name = "python"
    description = "Calls a Python function `module:function` in the runner's process."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        entry = algo.entrypoint or ""
        module, _, func = entry.partition(":")
        if not module or not func:
            return ["the python runtime needs entrypoint: 'module.path:function'"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        raise NotImplementedError


class ExecRuntime(AlgoRuntime):
    name = "exec"
    description = "Runs a command per call: JSON on stdin, JSON on stdout."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        if not algo.command:
            return ["the exec runtime needs command: [program, arg, ...]"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        raise NotImplementedError


class HttpRuntime(AlgoRuntime):
    name = "http"
    description = "POSTs to a URL; config.protocol: v2 speaks the V2 inference protocol."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        if not algo.url or not algo.url.startswith(("http://", "https://")):
            return ["the http runtime needs url: http(s)://host/path"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        raise NotImplementedError


@hookimpl
def register_algo_runtimes(register):
    register(PythonRuntime())
    register(ExecRuntime())
    register(HttpRuntime())
