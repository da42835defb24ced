"""Built-in hook types: webhook (POST to URLs) and response (the run's result)."""

from __future__ import annotations

from typing import Any

from algorail.extensions import DeliveryContext, HookType
from algorail.hookspecs import hookimpl


class WebhookHook(HookType):
    name = "webhook"
    description = "POSTs each result as JSON to config.urls, with retries and HMAC signing."

    def validate(self, hook: Any, pipeline: Any) -> list[str]:
        urls = hook.config.get("urls")
        if not isinstance(urls, list) or not urls:
            return ["the webhook hook needs config.urls: a list of http(s) URLs"]
        return [
            f"config.urls: {u!r} is not an http(s) URL"
            for u in urls
            if not (isinstance(u, str) and u.startswith(("http://", "https://")))
        ]

    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        raise NotImplementedError


class ResponseHook(HookType):
    name = "response"
    description = "Records the payload as the run's result (what a sync call returns)."

    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        return payload


@hookimpl
def register_hook_types(register):
    register(WebhookHook())
    register(ResponseHook())
