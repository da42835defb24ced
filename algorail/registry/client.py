"""A small HTTP client for the registry API, used by the CLI (and usable from Python)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from algorail.errors import AlgorailError

DEFAULT_URL = "http://127.0.0.1:8700"
SETTLING = ("starting", "stopping")


class RegistryRequestError(AlgorailError):
    """The registry refused a request; the message is the registry's own."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None):
        self.status = status
        self.problems = problems or []
        details = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"{message} (HTTP {status}){details}")


def _q(part: str) -> str:
    return quote(part, safe="")


class RegistryClient:
    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0):
        self.url = (url or DEFAULT_URL).rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AlgorailError(f"cannot reach the registry at {self.url}: {exc}; start it with "
                                "`algorail registry serve` or pass --registry URL") from None
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:300]}
        if response.status_code >= 400:
            error = data.get("error", "request failed") if isinstance(data, dict) else data
            problems = data.get("problems") if isinstance(data, dict) else None
            raise RegistryRequestError(response.status_code, error, problems)
        return data

    # pipelines
    def push(self, document: dict, bindings: dict | None = None) -> dict:
        body = {"document": document, **({"bindings": bindings} if bindings else {})}
        return self.request("POST", "/v1/pipelines", body)

    def pipelines(self) -> list[dict]:
        return self.request("GET", "/v1/pipelines")

    def pipeline_versions(self, owner: str, name: str) -> list[dict]:
        return self.request("GET", f"/v1/pipelines/{_q(owner)}/{_q(name)}/versions")

    def pipeline_version(self, owner: str, name: str, version: str) -> dict:
        return self.request(
            "GET", f"/v1/pipelines/{_q(owner)}/{_q(name)}/versions/{_q(version)}")

    def clone(self, owner: str, name: str, version: str, to: str) -> dict:
        return self.request(
            "POST", f"/v1/pipelines/{_q(owner)}/{_q(name)}/versions/{_q(version)}/clone",
            {"to": to})

    def new_blank(self, name: str, version: str, description: str | None = None) -> dict:
        return self.request("POST", "/v1/pipelines/blank",
                            {"name": name, "version": version, "description": description})

    # algos
    def publish_algo(self, owner: str, name: str, version: str, runtime: str,
                     settings: dict | None = None, published: bool = True,
                     description: str | None = None) -> dict:
        return self.request("POST", f"/v1/algos/{_q(owner)}/{_q(name)}/versions", {
            "version": version, "runtime": runtime, "settings": settings or {},
            "published": published, "description": description})

    def algos(self) -> list[dict]:
        return self.request("GET", "/v1/algos")

    def algo_versions(self, owner: str, name: str) -> list[dict]:
        return self.request("GET", f"/v1/algos/{_q(owner)}/{_q(name)}/versions")

    # deployments
    def deploy(self, pipeline: str, name: str, target: str = "local",
               settings: dict | None = None) -> dict:
        return self.request("POST", "/v1/deployments", {
            "pipeline": pipeline, "name": name, "target": target, "settings": settings or {}})

    def deployments(self) -> list[dict]:
        return self.request("GET", "/v1/deployments")

    def deployment(self, owner: str, name: str) -> dict:
        return self.request("GET", f"/v1/deployments/{_q(owner)}/{_q(name)}")

    def terminate(self, owner: str, name: str) -> dict:
        return self.request("DELETE", f"/v1/deployments/{_q(owner)}/{_q(name)}")

    def update(self, owner: str, name: str, pipeline: str | None = None,
               settings: dict | None = None) -> dict:
        return self.request("PATCH", f"/v1/deployments/{_q(owner)}/{_q(name)}",
                            {"pipeline": pipeline, "settings": settings})

    def wait(self, owner: str, name: str, timeout: float = 360.0) -> dict:
        """The deployment once it is no longer starting or stopping (deploy, update and
        terminate answer at once and finish in the background), or as it is at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deployment(owner, name)
            if found["state"] not in SETTLING or time.monotonic() > deadline:
                return found
            time.sleep(0.25)

    def whoami(self) -> dict:
        return self.request("GET", "/v1/whoami")
