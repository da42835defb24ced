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
        click.option("--plan", "plan_path", required=True, envvar="ALGORAIL_PLAN",
                     type=click.Path(exists=True, dir_okay=False),
                     help="Plan JSON written by `algorail plan -o`."),
        click.option("--bootstrap-servers", required=True, envvar="ALGORAIL_BOOTSTRAP_SERVERS",
                     help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]."),
        click.option("--results-url", envvar="ALGORAIL_RESULTS_URL",
                     help="redis://HOST:PORT/DB for run results (default: in memory)."),
        click.option("--results-ttl", type=int, default=86_400, show_default=True,
                     envvar="ALGORAIL_RESULTS_TTL", help="Seconds Redis keeps a run's results."),
        click.option("--dev", is_flag=True,
                     help="Dev mode: webhooks may reach private/loopback URLs."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
def gateway(plan_path, bootstrap_servers, results_url, results_ttl, dev, host, port,
            grpc_port, object_store_url, api_keys_file, max_body_bytes, with_hooks, wal_dir,
            wal_max_bytes) -> None:
    """Serve a plan's endpoints over HTTP: POST to start runs, GET runs/{runId}, sync mode."""
    from algorail.commands import service_logging
    from algorail.runtime.gateway import load_api_keys, serve
    from algorail.runtime.objectstore import open_object_store
    from algorail.runtime.results import open_results_store

    service_logging("%(asctime)s %(name)s %(message)s")
    plan = _load_plan(plan_path)
    check_port_free(host, port)
    if grpc_port is not None:
        check_port_free(host, grpc_port, "--grpc-port")
    click.echo(f"algorail gateway: {plan.owner}/{plan.deployment} on http://{host}:{port}",
               err=True)
    serve(plan, bootstrap_servers=bootstrap_servers, host=host, port=port,
          results=open_results_store(results_url, ttl=results_ttl),
          object_store=open_object_store(object_store_url) if object_store_url else None,
          dev=dev, hooks=with_hooks,
          api_keys=load_api_keys(api_keys_file) if api_keys_file else None,
          max_body_bytes=max_body_bytes, wal_dir=wal_dir, wal_max_bytes=wal_max_bytes,
          grpc_port=grpc_port)


@click.command()
@_common
@click.option("--metrics-port", type=PORT_OR_OFF, default=0, show_default=True,
              envvar="ALGORAIL_METRICS_PORT",
              help="Serve /metrics and /healthz on this port (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              envvar="ALGORAIL_METRICS_HOST", help="Address for /metrics (0.0.0.0 in a pod).")
def hooks(plan_path, bootstrap_servers, results_url, results_ttl, dev, metrics_port,
          metrics_host) -> None:
    """Run a plan's hook dispatcher: deliver hook payloads and record run results."""
    import threading

    from algorail.commands import service_logging
    from algorail.runtime.hooks import HookDispatcher
    from algorail.runtime.results import open_results_store
    from algorail.runtime.signals import stop_on_signals

    service_logging("%(asctime)s %(name)s %(message)s")
    plan = _load_plan(plan_path)
    if results_url is None and not dev:
        click.echo("algorail hooks: no --results-url: results are kept in this process only "
                   "and no gateway can read them", err=True)
    if metrics_port:
        check_port_free(metrics_host, metrics_port, "--metrics-port")
    stop = threading.Event()
    stop_on_signals(stop.set)
    dispatcher = HookDispatcher(plan, bootstrap_servers,
                                open_results_store(results_url, ttl=results_ttl),
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
        dispatcher.stop()
