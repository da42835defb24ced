"""Built-in algo runtimes: python (in-process), exec (a command), http (a URL), grpc (a V2
gRPC model server).

Each `open()` returns an `AlgoCall` that follows `algorail.runtime.convention`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from algorail import v2
from algorail.errors import AlgorailError
from algorail.extensions import AlgoCall, AlgoFailed, AlgoRuntime
from algorail.hookspecs import hookimpl

__all__ = ["AlgoFailed", "AlgoNotFound", "ExecRuntime", "GrpcRuntime", "HttpRuntime",
           "PythonRuntime"]


class AlgoNotFound(AlgorailError):
    """An algo's code cannot be found or opened."""


class PythonRuntime(AlgoRuntime):
    name = "python"
    description = "Calls a Python function `module:function` in the runner's process."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        entry = algo.entrypoint or ""
        module, _, func = entry.partition(":")
        if not module or not func:
            return ["the python runtime needs entrypoint: 'module.path:function'"]
        return []

    def check_code(self, algo: Any, pipeline: Any) -> list[str]:
        module, _, func = (algo.entrypoint or "").partition(":")
        if algo.image or not module or not func:
            return []  # code in an image is not here to check; a bad entrypoint is reported
        problem = entrypoint_problem(module, func, getattr(pipeline, "base_dir", None))
        return [problem] if problem else []

    def open(self, runner: Any) -> AlgoCall:
        module_name, _, func_name = (runner.entrypoint or "").partition(":")
        module = load_module(module_name, getattr(runner, "base_dir", None))
        func = getattr(module, func_name, None)
        if not callable(func):
            raise AlgoNotFound(
                f"algo {runner.component!r}: module {module_name!r} has no function "
                f"{func_name!r}; fix entrypoint"
            )
        return PythonCall(func)


def entrypoint_problem(module: str, func: str, base_dir: str | None) -> str | None:
    """Why `module:func` cannot be loaded next to the pipeline or from sys.path, or None.

    The module is found without running it (`importlib.util.find_spec`; only its parent
    packages are imported), and the function by parsing the module's source with `ast`
    for a top-level definition, assignment or import of that name. A module whose names
    cannot be known without running it (``__getattr__``, ``import *``, compiled code)
    passes."""
    source = _local_module(module, base_dir)
    if source is None:
        if module in sys.modules:
            found = hasattr(sys.modules[module], func.partition(".")[0])
            return None if found else _no_function(module, func)
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            spec, error = None, f": {exc}"
        else:
            error = ""
        if spec is None:
            where = f"next to the pipeline ({base_dir}) or " if base_dir else ""
            return f"no module {module!r} {where}on the Python path{error}"
        if not spec.origin or not spec.origin.endswith(".py"):
            return None
        source = Path(spec.origin)
    try:
        names = _top_level_names(ast.parse(source.read_bytes(), str(source)).body)
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot read module {module!r} ({source}): {exc}"
    if names is None or func.partition(".")[0] in names:
        return None
    return _no_function(module, func)


def _no_function(module: str, func: str) -> str:
    return f"module {module!r} has no function {func!r}"


def _local_module(name: str, base_dir: str | None) -> Path | None:
    """The file of module `name` next to the pipeline, if there is one."""
    if not base_dir:
        return None
    stem = Path(base_dir, *name.split("."))
    return next((p for p in (stem.with_suffix(".py"), stem / "__init__.py") if p.is_file()),
                None)


def _top_level_names(body: list[ast.stmt]) -> set[str] | None:
    """Names a module defines at its top level (in any branch of a top-level ``if`` or
    ``try``); None when that cannot be told without running it."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update(a.asname or a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            branches = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            branches += [h.body for h in getattr(node, "handlers", [])]
            for branch in branches:
                inner = _top_level_names(branch)
                if inner is None:
                    return None
                names |= inner
    return None if "__getattr__" in names else names


def load_module(name: str, base_dir: str | None) -> Any:
    """Import `name` from a file next to the pipeline first, then from sys.path. The
    pipeline's folder is appended to sys.path (after the installed packages), so the
    module can import its neighbours but a folder named like a package never shadows it."""
    if base_dir and base_dir not in sys.path:
        sys.path.append(base_dir)
    path = _local_module(name, base_dir)
    if path is not None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        where = f" next to the pipeline ({base_dir}) or" if base_dir else ""
        raise AlgoNotFound(
            f"cannot import {name!r}{where} on sys.path: {exc}; check the algo's entrypoint"
        ) from exc


class PythonCall(AlgoCall):
    def __init__(self, func: Any):
        self.func = func

    def __call__(self, payload: Any) -> Any:
        return self.func(payload)


class ExecRuntime(AlgoRuntime):
    name = "exec"
    description = "Runs a command per call: JSON on stdin, JSON on stdout."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        if not algo.command:
            return ["the exec runtime needs command: [program, arg, ...]"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        from algorail.connectors.secrets import env_values

        return ExecCall(list(runner.command), {**os.environ, **env_values(runner.env)},
                        runner.timeout_ms / 1000, getattr(runner, "base_dir", None))


class ExecCall(AlgoCall):
    """One process per call. A non-zero exit is an error that keeps the end of stderr."""

    def __init__(self, command: list[str], env: dict[str, str], timeout: float, cwd: str | None):
        self.command, self.env, self.timeout, self.cwd = command, env, timeout, cwd

    def __call__(self, payload: Any) -> Any:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            proc = subprocess.run(self.command, input=data, capture_output=True, env=self.env,
                                  timeout=self.timeout, cwd=self.cwd)
        except subprocess.TimeoutExpired:
            raise AlgoFailed(f"{self.command[0]} took longer than {self.timeout:g}s",
                             "timeout") from None
        except OSError as exc:
            raise AlgoFailed(f"cannot run {self.command[0]}: {exc.strerror}") from None
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise AlgoFailed(f"{self.command[0]} exited with status {proc.returncode}: {stderr}")
        out = proc.stdout.strip()
        return json.loads(out) if out else None


class HttpRuntime(AlgoRuntime):
    name = "http"
    description = "POSTs to a URL; config.protocol: v2 speaks the V2 inference protocol."

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        if not algo.url or not algo.url.startswith(("http://", "https://")):
            return ["the http runtime needs url: http(s)://host/path"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        return HttpCall(runner.url, runner.config, runner.timeout_ms / 1000)


class HttpCall(AlgoCall):
    """POST JSON (or a V2 inference request); a non-2xx status is an error, a 4xx other
    than 408 and 429 a client error (not retried). A V2 call of a batch concatenates the
    batch's tensors along dimension 0 and splits the answer back.

    One HTTP/1.1 connection, kept alive across calls (the runner calls from one thread):
    `http.client` spends a fraction of the CPU a general client does per call, which is
    most of what a call to a model server on the same network costs. A kept-alive
    connection the server closed meanwhile is opened again once; no proxy is used."""

    def __init__(self, url: str, config: dict[str, Any], timeout: float):
        from urllib.parse import urlsplit

        from algorail.connectors.secrets import resolved

        self.url = url
        self.v2 = self.splits_batches = config.get("protocol") == "v2"
        parts = urlsplit(url)
        self.https, self.address = parts.scheme == "https", (parts.hostname, parts.port)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        **resolved(config.get("headers") or {})}
        self.timeout = timeout
        self.connection: Any = None

    def __call__(self, payload: Any) -> Any:
        if not self.v2:
            return self.post(payload)
        try:
            if isinstance(payload, list):
                tensors, sizes = v2.concat(payload)
                return v2.split(v2.decode(self.post(v2.request(tensors)), "outputs"), sizes)
            return v2.decode(self.post(v2.request(payload)), "outputs")
        except v2.V2FormatError as exc:
            raise AlgoFailed(f"POST {self.url}: {exc}", "client") from None

    def post(self, body: Any) -> Any:
        data = json.dumps(body, separators=(",", ":")).encode()
        status, content = self._exchange(data)
        if status >= 300:
            text = content.decode("utf-8", "replace")[:2000]
            raise AlgoFailed(f"POST {self.url} returned {status}: {text}",
                             http_failure_kind(status))
        try:
            return json.loads(content) if content else None
        except ValueError as exc:
            raise AlgoFailed(f"POST {self.url} answered no JSON: {exc}") from None

    def _exchange(self, data: bytes) -> tuple[int, bytes]:
        import http.client

        for fresh in (self.connection is None, True):
            connection = self.connection or self._connect()
            try:
                connection.request("POST", self.target, data, self.headers)
                response = connection.getresponse()
                content = response.read()
            except TimeoutError as exc:
                self.close()
                raise AlgoFailed(f"POST {self.url} timed out: {exc}", "timeout") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if fresh:
                    raise AlgoFailed(f"POST {self.url} failed: the server closed the "
                                     "connection", "connection") from None
                continue  # the server closed the kept-alive connection: once more, anew
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise AlgoFailed(f"POST {self.url} failed: {type(exc).__name__}: {exc}",
                                 "connection") from None
            if response.will_close:
                self.close()
            return response.status, content
        raise AssertionError("unreachable")

    def _connect(self) -> Any:
        import http.client

        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.connection = kind(*self.address, timeout=self.timeout)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def http_failure_kind(status: int) -> str:
    if status == 429:
        return "throttled"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "client" if status >= 400 else "error"


class GrpcRuntime(AlgoRuntime):
    name = "grpc"
    description = ("Calls ModelInfer of a V2 gRPC inference server (MLServer, Triton) at url "
                   "HOST:PORT; config.model names the model (default: the algo's name).")

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        host, _, port = (algo.url or "").removeprefix("grpc://").rpartition(":")
        if not host or not port.isdigit():
            return ["the grpc runtime needs url: HOST:PORT of a V2 gRPC inference server"]
        return []

    def open(self, runner: Any) -> AlgoCall:
        return GrpcCall(runner.url.removeprefix("grpc://"),
                        runner.config.get("model") or runner.component, runner.timeout_ms / 1000)


class GrpcCall(AlgoCall):
    """One ModelInfer per call (raw tensor contents); a batch is one call along dimension 0.
    A status saying the request is wrong (INVALID_ARGUMENT, NOT_FOUND, ...) is a client
    error: not retried."""

    splits_batches = True

    def __init__(self, address: str, model: str, timeout: float):
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self.pb, self.grpc = service_pb2, grpc
        self.address, self.model, self.timeout = address, model, timeout
        self.channel = grpc.insecure_channel(address)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def __call__(self, payload: Any) -> Any:
        try:
            if isinstance(payload, list):
                tensors, sizes = v2.concat(payload)
                return v2.split(self.infer(tensors), sizes)
            return self.infer(payload)
        except v2.V2FormatError as exc:
            raise AlgoFailed(f"ModelInfer {self.model} at {self.address}: {exc}",
                             "client") from None

    def infer(self, tensors: Any) -> dict[str, Any]:
        request = self.pb.ModelInferRequest(model_name=self.model)
        # raw contents, but typed ones when there are BYTES (MLServer reads those only so)
        raw = not v2.has_bytes(tensors)
        request.raw_input_contents.extend(v2.to_proto(tensors, request.inputs.add, raw))
        try:
            response = self.stub.ModelInfer(request, timeout=self.timeout)
        except self.grpc.RpcError as exc:
            code = exc.code()
            raise AlgoFailed(f"ModelInfer {self.model} at {self.address} failed: "
                             f"{code.name} {exc.details()}", grpc_failure_kind(code)) from None
        return v2.from_proto(response.outputs, response.raw_output_contents, "outputs")

    def close(self) -> None:
        self.channel.close()


def grpc_failure_kind(code: Any) -> str:
    name = code.name
    if name == "DEADLINE_EXCEEDED":
        return "timeout"
    if name == "UNAVAILABLE":
        return "connection"
    if name == "RESOURCE_EXHAUSTED":
        return "throttled"
    if name in ("INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "OUT_OF_RANGE",
                "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED", "ALREADY_EXISTS"):
        return "client"
    return "server"


@hookimpl
def register_algo_runtimes(register):
    register(PythonRuntime())
    register(ExecRuntime())
    register(HttpRuntime())
    register(GrpcRuntime())
