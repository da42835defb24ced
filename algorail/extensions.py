"""The classes a plugin subclasses to add an algo runtime, hook type, connector or
content type. Each documents what algorail calls and when."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jsonschema import Draft202012Validator


class AlgoRuntime(ABC):
    """Runs one algo. Selected by ``runtime: NAME`` on an algo."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def validate(self, algo: Any, pipeline: Any) -> list[str]:
        """Problems with this algo's settings (an `algorail.spec.Algo`), as sentences."""
        return []

    def check_code(self, algo: Any, pipeline: Any) -> list[str]:
        """Problems finding the algo's code on this machine (`algorail validate` asks;
        `plan` and `render` do not, as a cluster's runners get the code from an image).
        Find it without running it where possible."""
        return []

    @abstractmethod
    def open(self, runner: Any) -> AlgoCall:
        """Get ready to call the algo of this `algorail.plan.RunnerPlan`, once per runner."""


FAILURE_KINDS = ("timeout", "connection", "server", "throttled", "error", "client")
TRANSIENT_FAILURES = ("timeout", "connection", "server", "throttled")


class AlgoFailed(Exception):
    """One call of an algo failed. `kind` says whether trying again may help: `timeout`,
    `connection`, `server` (5xx), `throttled` (429) and `error` (anything else) are retried
    as the algo's ``retry.retryOn`` allows; `client` (the request itself is wrong, V2 4xx) never
    is: the run fails at once. Any exception with ``retryable = False`` counts as `client`."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def failure_kind(exc: BaseException) -> str:
    """The kind of failure an algo's exception is (see `AlgoFailed`)."""
    if getattr(exc, "retryable", True) is False:
        return "client"
    if isinstance(exc, AlgoFailed):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    return "error"


class AlgoCall(ABC):
    """A ready algo: called once per run (or per batch) with the calling convention of
    `algorail.runtime.convention`; raise to report an error for that run (`AlgoFailed`
    says which kind). An AlgoCall that splits a batch itself (V2 model servers: one call
    along dimension 0) sets ``splits_batches = True``: it then gets the list of a batch's
    payloads, rolling or not, and returns one result per payload."""

    splits_batches: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, payload: Any) -> Any: ...

    def close(self) -> None:  # noqa: B027 - optional for algos that hold nothing
        """Release processes, clients, files."""


class HookType(ABC):
    """Delivers results somewhere. Selected by ``type: NAME`` on a hook."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def validate(self, hook: Any, pipeline: Any) -> list[str]:
        """Problems with this hook's config (an `algorail.spec.Hook`), as sentences."""
        return []

    @abstractmethod
    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        """Deliver one payload for one run. Raise `DeliveryFailed` to have it retried;
        the return value is recorded as the hook's result for the run."""


@dataclass
class DeliveryContext:
    run_id: str
    deployment: str
    owner: str
    source: str
    attempt: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    allow_private_urls: bool = False


class DeliveryFailed(Exception):
    """A delivery that may succeed if tried again."""


class Connector(ABC):
    """Moves data between a pipeline and a database, store or queue.

    Selected by ``connector: NAME`` on a data source or data sink. ``config_schema`` is
    a JSON Schema for the component's ``config``; the default `validate` applies it.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ("source", "sink")
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    connector_class: ClassVar[str | None] = None

    def validate(self, component: Any, pipeline: Any) -> list[str]:
        kind = "source" if hasattr(component, "outputs") else "sink"
        if kind not in self.kinds:
            kinds = " and ".join(self.kinds)
            return [f"connector {self.name!r} cannot be a data {kind}; it is a {kinds}"]
        return schema_problems(self.config_schema, component.config, "config")

    @abstractmethod
    def kafka_connect_config(self, connector: Any) -> dict[str, str]:
        """The Kafka Connect connector config for this `algorail.plan.ConnectorPlan`.

        Credentials must be references to secrets (``${secrets:...}`` or
        ``${file:...}`` config providers), never inline values."""

    def open_dev(self, connector: Any) -> Any:
        """A Python implementation for dev mode, or None when it needs Kafka Connect."""
        return None


class ContentType(ABC):
    """Checks request bodies for one media type before they enter a pipeline."""

    media_type: ClassVar[str]

    @abstractmethod
    def check(self, body: bytes) -> str | None:
        """None when the body is acceptable, else a sentence saying what is wrong."""


@dataclass(frozen=True)
class PackagedAlgo:
    """An algo a distribution ships (see the `register_algos` hook). Pipelines use it with
    ``runtime: python`` and this ``entrypoint`` (``module:function``)."""

    name: str
    entrypoint: str
    description: str = ""


@dataclass
class StartupContext:
    service: str
    plan: Any = None
    routes: list[Any] = field(default_factory=list)
    metrics: Any = None


def schema_problems(schema: dict[str, Any], value: Any, prefix: str) -> list[str]:
    """JSON Schema errors as sentences that name the key, e.g. "config.table: ..."."""
    problems = []
    for err in sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path)):
        where = ".".join([prefix, *(str(p) for p in err.path)])
        problems.append(f"{where}: {err.message}")
    return problems
