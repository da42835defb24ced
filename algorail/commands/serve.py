"""`algorail gateway` and `algorail hooks`: the services clients and hooks talk to.

Options fall back to ALGORAIL_* environment variables, which is how the charts set them.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import click

from algorail.errors import AlgorailError
from algorail.ports import PORT, PORT_OR_OFF, check_port_free
from algorail.runtime.wal import DEFAULT_MAX_BYTES as WAL_MAX_BYTES  # stdlib only


def _common(func):
    options = [
        click.option("--plan", "plan_path", envvar="ALGORAIL_PLAN",
                     type=click.Path(exists=True, dir_okay=False),
                     help="Plan JSON written by `algorail plan -o`, read once at start."),
        click.option("--plans-dir", envvar="ALGORAIL_PLANS_DIR",
                     type=click.Path(file_okay=False),
                     help="Serve every plan JSON (*.json) in this folder, following what is "
                          "added, changed and removed (a ConfigMap mounted as a folder)."),
        click.option("--plans-from-cluster", is_flag=True, envvar="ALGORAIL_PLANS_FROM_CLUSTER",
                     help="Serve every plan ConfigMap (label algorail.io/plan=true) of the "
                          "namespace, following the cluster's pipelines (in a pod)."),
        click.option("--plans-namespace", envvar="ALGORAIL_PLANS_NAMESPACE",
                     help="With --plans-from-cluster: the namespace (default: the pod's)."),
        click.option("--plans-selector", default="", envvar="ALGORAIL_PLANS_SELECTOR",
                     help="With --plans-from-cluster: only ConfigMaps matching this label "
                          "selector, e.g. team=search."),
        click.option("--plans-interval", type=click.FloatRange(min=0.1), default=2.0,
                     show_default=True, envvar="ALGORAIL_PLANS_INTERVAL",
                     help="Seconds between looks at --plans-dir or the cluster."),
        click.option("--bootstrap-servers", required=True, envvar="ALGORAIL_BOOTSTRAP_SERVERS",
                     help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]."),
        click.option("--results-url", envvar="ALGORAIL_RESULTS_URL",
                     help="redis://HOST:PORT/DB for run results (default: in memory)."),
        click.option("--results-ttl", type=int, default=86_400, show_default=True,
                     envvar="ALGORAIL_RESULTS_TTL", help="Seconds Redis keeps a run's results."),
        click.option("--dev", is_flag=True,
                     help="Dev mode: webhooks may reach private/loopback URLs."),
        click.option("--drain-seconds", type=click.FloatRange(min=0), default=300.0,
                     show_default=True, envvar="ALGORAIL_DRAIN_SECONDS",
                     help="With followed plans: how long hooks a new version dropped keep "
                          "delivering for runs started on the old one."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class Plans:
    """Which of --plan, --plans-dir and --plans-from-cluster was given: `plan` (one plan,
    read once) or `watcher` (a plans.PlanWatcher, not started)."""

    def __init__(self, plan_path, plans_dir, from_cluster, namespace, selector, interval):
        given = [o for o, v in (("--plan", plan_path), ("--plans-dir", plans_dir),
                                ("--plans-from-cluster", from_cluster)) if v]
        if len(given) != 1:
            raise click.UsageError("give one of --plan, --plans-dir and --plans-from-cluster"
                                   + (f" (got {', '.join(given)})" if given else ""))
        self.plan = self.watcher = None
        if plan_path:
            self.plan = _load_plan(plan_path)
        else:
            from algorail.runtime.plans import PlanWatcher, open_source

            self.watcher = PlanWatcher(open_source(plans_dir, from_cluster, namespace,
                                                   selector), interval)

    def describe(self) -> str:
        if self.plan is not None:
            return f"{self.plan.owner}/{self.plan.deployment}"
        return f"every plan in {self.watcher.source}"


def _load_plan(path: str):
    from pydantic import ValidationError

    from algorail.plan import Plan

    try:
        return Plan.from_file(path)
    except (ValidationError, ValueError) as exc:
        raise AlgorailError(f"{path} is not a plan written by `algorail plan -o`: {exc}") from exc


@click.command()
@_common
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ALGORAIL_HOST",
              help="Address to listen on (0.0.0.0 in a container).")
@click.option("--port", type=PORT, default=8080, show_default=True, envvar="ALGORAIL_PORT")
@click.option("--grpc-port", type=PORT, envvar="ALGORAIL_GRPC_PORT",
              help="Also serve the V2 gRPC inference service on this port (needs "
                   "algorail[grpc]; default: off).")
@click.option("--object-store-url", envvar="ALGORAIL_OBJECT_STORE_URL",
              help="s3://BUCKET?endpoint=URL or a folder, for fileReference paths.")
@click.option("--api-keys-file", envvar="ALGORAIL_API_KEYS_FILE",
              type=click.Path(dir_okay=False),
              help="File with one API key per line; requests must send one of them.")
@click.option("--max-body-bytes", type=int, default=10 * 1024 * 1024, show_default=True,
              envvar="ALGORAIL_MAX_BODY_BYTES")
@click.option("--with-hooks/--no-hooks", default=False, show_default=True,
              help="Also run the hook dispatcher in this process.")
@click.option("--wal-dir", envvar="ALGORAIL_WAL_DIR", type=click.Path(file_okay=False),
              help="Write-ahead log folder: requests are kept there until the broker has "
                   "them, so a broker outage or a crash loses none (default: off).")
@click.option("--wal-max-bytes", type=int, default=WAL_MAX_BYTES, show_default=True,
              envvar="ALGORAIL_WAL_MAX_BYTES",
              help="Beyond this many bytes waiting in the log, answer 503.")
def gateway(plan_path, plans_dir, plans_from_cluster, plans_namespace, plans_selector,
            plans_interval, bootstrap_servers, results_url, results_ttl, dev, drain_seconds,
            host, port, grpc_port, object_store_url, api_keys_file, max_body_bytes,
            with_hooks, wal_dir, wal_max_bytes) -> None:
    """Serve pipelines' endpoints over HTTP: POST to start runs, GET runs/{runId}, sync
    mode. One plan (--plan), or every plan of a folder or the cluster, followed live."""
    from algorail.commands import service_logging
    from algorail.runtime.gateway import load_api_keys, serve
    from algorail.runtime.objectstore import open_object_store
    from algorail.runtime.results import open_results_store

    service_logging("%(asctime)s %(name)s %(message)s")
    plans = Plans(plan_path, plans_dir, plans_from_cluster, plans_namespace, plans_selector,
                  plans_interval)
    check_port_free(host, port)
    if grpc_port is not None:
        check_port_free(host, grpc_port, "--grpc-port")
    click.echo(f"algorail gateway: {plans.describe()} on http://{host}:{port}", err=True)
    options = dict(
        bootstrap_servers=bootstrap_servers, host=host, port=port,
        results=open_results_store(results_url, ttl=results_ttl),
        object_store=open_object_store(object_store_url) if object_store_url else None,
        dev=dev, hooks=with_hooks,
        api_keys=load_api_keys(api_keys_file) if api_keys_file else None,
        max_body_bytes=max_body_bytes, wal_dir=wal_dir, wal_max_bytes=wal_max_bytes)
    if plans.watcher is not None:
        from algorail.runtime.router import serve_live

        serve_live(plans.watcher, drain_seconds=drain_seconds, grpc_port=grpc_port, **options)
    else:
        serve(plans.plan, grpc_port=grpc_port, **options)


@click.command()
@_common
@click.option("--metrics-port", type=PORT_OR_OFF, default=0, show_default=True,
              envvar="ALGORAIL_METRICS_PORT",
              help="Serve /metrics and /healthz on this port (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              envvar="ALGORAIL_METRICS_HOST", help="Address for /metrics (0.0.0.0 in a pod).")
def hooks(plan_path, plans_dir, plans_from_cluster, plans_namespace, plans_selector,
          plans_interval, bootstrap_servers, results_url, results_ttl, dev, drain_seconds,
          metrics_port, metrics_host) -> None:
    """Run the hook dispatcher: deliver hook payloads and record run results. One plan
    (--plan), or every plan of a folder or the cluster, followed live."""
    import threading

    from algorail.commands import service_logging
    from algorail.runtime.results import open_results_store
    from algorail.runtime.signals import stop_on_signals

    service_logging("%(asctime)s %(name)s %(message)s")
    plans = Plans(plan_path, plans_dir, plans_from_cluster, plans_namespace, plans_selector,
                  plans_interval)
    if results_url is None and not dev:
        click.echo("algorail hooks: no --results-url: results are kept in this process only "
                   "and no gateway can read them", err=True)
    if metrics_port:
        check_port_free(metrics_host, metrics_port, "--metrics-port")
    stop = threading.Event()
    stop_on_signals(stop.set)
    results = open_results_store(results_url, ttl=results_ttl)
    if plans.watcher is not None:
        from algorail.runtime.fleet import HookFleet

        dispatcher = HookFleet(bootstrap_servers, results, allow_private_urls=dev,
                               drain_seconds=drain_seconds)
        plans.watcher.subscribe(dispatcher.apply)
        plans.watcher.poll()
        plans.watcher.start()
    else:
        from algorail.runtime.hooks import HookDispatcher

        dispatcher = HookDispatcher(plans.plan, bootstrap_servers, results,
                                    allow_private_urls=dev).start()
    server = None
    if metrics_port:
        from algorail.runtime.metrics import MetricsServer

        server = MetricsServer(dispatcher.metrics, dispatcher.healthy, metrics_host,
                               metrics_port).start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        if plans.watcher is not None:
            plans.watcher.stop()
        dispatcher.stop()
