"""Built-in hook types: webhook (POST to URLs) and response (the run's result).

The hook dispatcher retries a delivery that raises `DeliveryFailed` (hook config
`retries`, `backoffMs`, `maxBackoffMs`) and then sends it to the hook's dead-letter topic;
any other exception goes to the dead-letter topic at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections import OrderedDict
from typing import Any

from algorail.connectors.secrets import SecretNotFound, resolved, value_of

from algorail.errors import AlgorailError
from algorail.extensions import DeliveryContext, DeliveryFailed, HookType
from algorail.hookspecs import hookimpl

SIGNATURE_HEADER = "X-Algorail-Signature"
RETRYABLE_STATUS = {408, 425, 429}
NUMERIC_KEYS = ("timeoutMs", "retries", "backoffMs", "maxBackoffMs")


class WebhookRefused(AlgorailError):
    """A delivery that trying again will not fix: a forbidden URL, a 4xx answer, no secret."""


SECRETS_DIR_ENV = "ALGORAIL_WEBHOOK_SECRETS_DIR"


def sign(secret: str, body: bytes) -> str:
    """The `X-Algorail-Signature` value: ``sha256=`` and the HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHook(HookType):
    name = "webhook"
    description = "POSTs each result as JSON to config.urls, with retries and HMAC signing."

    def __init__(self, resolver: Any = None, network: Any = None) -> None:
        # resolver/network: where names are looked up and sockets opened (tests replace them)
        self._resolver, self._network = resolver, network
        self._pools: dict[bool, Any] = {}
        # URL -> status of the URLs already reached per (run, hook), so a retry after a
        # partial failure does not deliver twice to the URLs that answered
        self._reached: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, hook: Any, pipeline: Any) -> list[str]:
        config = hook.config
        urls = config.get("urls")
        if not isinstance(urls, list) or not urls:
            return ["the webhook hook needs config.urls: a list of http(s) URLs"]
        problems = [
            f"config.urls: {u!r} is not an http(s) URL"
            for u in urls
            if not (isinstance(u, str) and u.startswith(("http://", "https://")))
        ]
        problems += [
            f"config.{key}: must be a whole number of at least 0, got {config[key]!r}"
            for key in NUMERIC_KEYS
            if key in config and not (isinstance(config[key], int) and config[key] >= 0)
        ]
        if "allowPrivateUrls" in config and not isinstance(config["allowPrivateUrls"], bool):
            problems.append("config.allowPrivateUrls: must be true or false")
        if "headers" in config and not isinstance(config["headers"], dict):
            problems.append("config.headers: must be a mapping of header names to values")
        return problems

    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        import httpcore

        from algorail.runtime.egress import AddressRefused

        config = hook.config
        body = json.dumps(payload).encode()
        try:
            extra_headers, secret = resolved(config.get("headers", {})), self._secret(hook)
        except SecretNotFound as exc:
            raise WebhookRefused(f"hook {hook.name}: {exc}") from exc
        headers = {"Content-Type": "application/json", "X-Algorail-Run-Id": context.run_id,
                   "X-Algorail-Hook": hook.name, "X-Algorail-Attempt": str(context.attempt),
                   **extra_headers}
        if context.headers.get("traceparent"):
            headers["traceparent"] = context.headers["traceparent"]
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        public_only = not (context.allow_private_urls or config.get("allowPrivateUrls") is True)
        seconds = config.get("timeoutMs", 5000) / 1000
        timeout = dict.fromkeys(("connect", "read", "write", "pool"), seconds)
        reached = self._reached_for(context.run_id, hook.name)
        for url in config["urls"]:
            if url in reached:
                continue
            try:
                response = self._pool(public_only).request(
                    config.get("method", "POST"), url, headers=list(headers.items()),
                    content=body, extensions={"timeout": timeout})
            except AddressRefused as exc:
                raise WebhookRefused(f"webhook URL {url}: {exc}; use a public URL (dev mode "
                                     "and allowPrivateUrls: true allow private ones)") from exc
            except (httpcore.NetworkError, httpcore.TimeoutException,
                    httpcore.ProtocolError) as exc:
                raise DeliveryFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
            status = response.status
            if status >= 500 or status in RETRYABLE_STATUS:
                raise DeliveryFailed(f"{url} answered {status}")
            if status >= 300:
                more = " (redirects are not followed)" if status < 400 else ""
                raise WebhookRefused(f"{url} answered {status}{more}: "
                                     f"{response.content[:200].decode('utf-8', 'replace')}")
            reached[url] = status
        with self._lock:
            self._reached.pop((context.run_id, hook.name), None)
        return {"delivered": [{"url": url, "status": status} for url, status in reached.items()]}

    @staticmethod
    def _secret(hook: Any) -> str | None:
        """`secret` (a secret reference; inline only in dev), `secretEnv`, or the file named
        after the hook in $ALGORAIL_WEBHOOK_SECRETS_DIR (a Kubernetes Secret the chart mounts)."""
        config = hook.config
        if config.get("secret"):
            return value_of(config["secret"])
        name = config.get("secretEnv")
        if not name:
            folder = os.environ.get(SECRETS_DIR_ENV)
            path = os.path.join(folder, hook.name) if folder else None
            if path and os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    return f.read().strip()
            return None
        if not os.environ.get(name):
            raise WebhookRefused(f"the webhook's secretEnv names {name}, which is not set in "
                                 "the hook dispatcher's environment")
        return os.environ[name]

    def _reached_for(self, run_id: str, hook: str) -> dict[str, int]:
        with self._lock:
            reached = self._reached.setdefault((run_id, hook), {})
            while len(self._reached) > 10_000:
                self._reached.popitem(last=False)
            return reached

    def _pool(self, public_only: bool):
        """One connection pool per policy: public addresses only, or anywhere (dev)."""
        if public_only not in self._pools:
            from algorail.runtime.egress import connection_pool, system_resolver

            self._pools[public_only] = connection_pool(
                public_only=public_only, resolver=self._resolver or system_resolver,
                network=self._network)
        return self._pools[public_only]


class ResponseHook(HookType):
    name = "response"
    description = "Records the payload as the run's result (what a sync call returns)."

    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        return payload


@hookimpl
def register_hook_types(register):
    register(WebhookHook())
    register(ResponseHook())
