"""`algorail dev` and `algorail runner`: run pipelines on Kafka.

Nothing heavy is imported at module level, so `algorail --help` stays fast.
"""

from __future__ import annotations

import click

from algorail.cli import bindings_option, load
from algorail.commands import service_logging
from algorail.ports import PORT, PORT_OR_OFF, check_port_free


@click.command()
@click.option("--plan", "plan_path", required=True, envvar="ALGORAIL_PLAN",
              type=click.Path(exists=True, dir_okay=False),
              help="Plan JSON written by `algorail plan -o`.")
@click.option("--component", required=True, envvar="ALGORAIL_COMPONENT",
              help="The algo of the plan to run.")
@click.option("--bootstrap-servers", required=True, envvar="ALGORAIL_BOOTSTRAP_SERVERS",
              help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT].")
@click.option("--metrics-port", type=PORT_OR_OFF, default=0, show_default=True,
              envvar="ALGORAIL_METRICS_PORT",
              help="Serve /metrics and /healthz on this port (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              envvar="ALGORAIL_METRICS_HOST", help="Address for /metrics (0.0.0.0 in a pod).")
@click.option("--transactional", is_flag=True, envvar="ALGORAIL_TRANSACTIONAL",
              help="Write outputs and offsets in Kafka transactions (brokers that honour them).")
def runner(plan_path: str, component: str, bootstrap_servers: str, metrics_port: int,
           metrics_host: str, transactional: bool) -> None:
    """Run one algo of a plan: consume its inputs, call it, produce its outputs."""
    from algorail.commands.serve import _load_plan
    from algorail.runtime.runner import run_runner

    service_logging()
    if metrics_port:
        check_port_free(metrics_host, metrics_port, "--metrics-port")
    run_runner(_load_plan(plan_path), component, bootstrap_servers,
               metrics_port=metrics_port or None, metrics_host=metrics_host,
               transactional=transactional)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--port", type=PORT, default=8080, show_default=True, help="Gateway port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Gateway address.")
@click.option("--grpc-port", type=PORT, envvar="ALGORAIL_GRPC_PORT",
              help="Also serve the V2 gRPC inference service on this port, as `algorail "
                   "gateway --grpc-port` does (needs algorail[grpc]; default: off).")
@click.option("--bootstrap-servers", envvar="ALGORAIL_BOOTSTRAP_SERVERS",
              help="Use this Kafka instead of starting an embedded broker.")
@click.option("--deployment", help="Deployment name (default: the pipeline's name).")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Folder for the deployment's state (write-ahead log, plan, files); "
                   "default: one per deployment under the user's state directory.")
@click.option("--keep-going", is_flag=True,
              help="Keep serving when a component fails; it is marked failed in the ready "
                   "line and /healthz answers 503.")
@bindings_option
def dev(file: str, port: int, host: str, grpc_port: int | None,
        bootstrap_servers: str | None, deployment: str | None, work_dir: str | None,
        keep_going: bool, bindings: str | None) -> None:
    """Run pipeline FILE locally: broker, runners, gateway and hooks; Ctrl-C stops all.

    Exits non-zero with a component's error when one fails (unless --keep-going)."""
    from algorail.compiler import compile_plan
    from algorail.connectors.secrets import inline_secrets_warning
    from algorail.runtime.dev import run_dev

    service_logging()
    plan = compile_plan(load(file, bindings), deployment=deployment)
    check_port_free(host, port)  # before the broker or any runner starts
    if grpc_port is not None:
        check_port_free(host, grpc_port, "--grpc-port")
    if warning := inline_secrets_warning(plan):
        click.secho(warning, fg="yellow", err=True)
    run_dev(plan, bootstrap_servers=bootstrap_servers, host=host, port=port,
            grpc_port=grpc_port, workdir=work_dir, keep_going=keep_going,
            echo=lambda line: click.echo(line))
