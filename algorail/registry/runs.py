"""A registry deployment's runs, as the console shows them: where its plan, broker and
gateway are, the live stream and one run's report (see `algorail.ops.runs`), its
components' state (`algorail status`), the last messages of a pipe (`algorail tail`), and a
test request sent to its gateway.
"""

from __future__ import annotations

from typing import Any

from algorail.ops.deployments import Deployment, dev_deployment
from algorail.ops.records import OpsError
from algorail.ops.runs import run_report
from algorail.ops.status import pipeline_status
from algorail.ops.tail import last_messages, resolve_pipes
from algorail.registry.errors import Conflict, Invalid

GATEWAY_TIMEOUT_S = 10.0


class BrokerUnavailable(Conflict):
    """The deployment's broker or gateway cannot be read (down, or not recorded)."""


def ops_deployment(deployment: dict[str, Any]) -> Deployment:
    """Where a registry deployment's plan, broker and gateway are: a local deployment's
    `algorail dev` says (``GET /v1/dev``). A Kubernetes deployment's broker is inside the
    cluster, which the registry does not reach."""
    if deployment["state"] != "running":
        raise Conflict(f"deployment {deployment['owner']}/{deployment['name']} is "
                       f"{deployment['state']}, not running: it has no runs to show")
    if deployment["target"] != "local":
        raise BrokerUnavailable("the registry does not reach the broker of a Kubernetes "
                                "deployment: run `algorail tail` or `algorail inspect` with "
                                "--bootstrap-servers where the cluster's Kafka is reachable")
    try:
        return dev_deployment((deployment.get("runtime") or {})["url"])
    except (OpsError, KeyError) as exc:
        raise BrokerUnavailable(f"cannot read the deployment's `algorail dev`: {exc}") from None


def inspect(deployment: Deployment, run_id: str) -> dict[str, Any]:
    """One run's report (see `run_report`); an unreadable broker or gateway is a 409."""
    try:
        return run_report(deployment, run_id)
    except OpsError as exc:
        raise BrokerUnavailable(str(exc)) from None


STATUS_INTERVAL_S = 1.0


def _from_broker(deployment: Deployment, read):
    """`read()` of the deployment's broker; a broker that cannot be read is a 409 saying
    so (the client libraries raise their own kinds of errors for it)."""
    try:
        return read()
    except OpsError as exc:
        raise BrokerUnavailable(str(exc)) from None
    except Exception as exc:  # each client library fails in its own way; all mean this
        raise BrokerUnavailable(f"cannot read the deployment's broker "
                                f"{deployment.bootstrap_servers}: {exc}") from None


def components(deployment: Deployment) -> dict[str, Any]:
    """Each component's state, replicas, lag, rates and last error: what
    `algorail status --json` prints."""
    return _from_broker(deployment, lambda: pipeline_status(
        deployment.plan, deployment.bootstrap_servers, STATUS_INTERVAL_S).to_dict())


def messages(deployment: Deployment, pipe: str | None, last: int) -> dict[str, Any]:
    """The last messages of a pipe, as `algorail tail --last N` reads them; a pipe the
    deployment does not have is a 422 that lists those it has."""
    if pipe:
        try:
            resolve_pipes(deployment.plan, [pipe])
        except OpsError as exc:
            raise Invalid(str(exc)) from None
    return _from_broker(deployment, lambda: last_messages(
        deployment.plan, deployment.bootstrap_servers, pipe, last))


def send_test_request(deployment: Deployment, path: str, body: str) -> dict[str, Any]:
    """POST `body` to the gateway at endpoint path `path` (an http path), as a client
    would; answers the gateway's status and JSON answer (a run id when accepted)."""
    import httpx

    routes = {r.path: r for r in deployment.plan.routes if r.type == "http"}
    route = routes.get(path)
    if route is None:
        raise Invalid(f"the deployment has no http endpoint path {path!r}: it has "
                      f"{', '.join(sorted(routes)) or 'none'}")
    if not deployment.gateway_url:
        raise BrokerUnavailable("the registry records no gateway URL for this deployment")
    url = f"{deployment.gateway_url.rstrip('/')}{route.url}"
    try:
        response = httpx.post(url, content=body.encode("utf-8"), timeout=GATEWAY_TIMEOUT_S,
                              headers={"content-type": route.content_type})
    except httpx.HTTPError as exc:
        raise BrokerUnavailable(f"cannot reach the gateway at {deployment.gateway_url}: "
                                f"{exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:2000]
    return {"status": response.status_code, "url": route.url, "answer": answer}
