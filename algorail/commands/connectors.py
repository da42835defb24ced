"""`algorail connectors ...`, `algorail connect` and `algorail eventflows`."""

from __future__ import annotations

import json

import click

from algorail.cli import bindings_option


def _plan(file: str, deployment: str | None = None, bindings: str | None = None):
    from algorail.compiler import load_plan
    from algorail.spec import load_bindings

    return load_plan(file, deployment, load_bindings(bindings))


def plan_argument(func):
    func = bindings_option(func)
    func = click.option("--deployment", help="Deployment name (default: the pipeline's name).")(
        func)
    return click.argument("file", type=click.Path(exists=True, dir_okay=False))(func)


def strimzi_api_option(func):
    from algorail.kafka_connect import STRIMZI_API_VERSION, STRIMZI_API_VERSIONS

    return click.option(
        "--strimzi-api-version", type=click.Choice(STRIMZI_API_VERSIONS),
        default=STRIMZI_API_VERSION, show_default=True,
        help="Strimzi API of the resources: v1 for Strimzi 1.x, v1beta2 for Strimzi 0.4x.",
    )(func)


def cluster_option(func):
    return click.option("--cluster", default="algorail-connect", show_default=True,
                        help="The KafkaConnect cluster (label strimzi.io/cluster).")(func)


def connect_url_option(func):
    return click.option(
        "--connect-url", envvar="ALGORAIL_CONNECT_URL", required=True,
        help="Kafka Connect REST URL, e.g. http://connect:8083 [env ALGORAIL_CONNECT_URL].",
    )(func)


@click.group()
def connectors() -> None:
    """Data sources and sinks on Kafka Connect: list, render, apply, status, delete."""


@connectors.command("list")
def list_connectors() -> None:
    """Installed connectors, what they can be, and whether they run without Kafka Connect."""
    from rich.console import Console
    from rich.table import Table

    from algorail.extensions import Connector
    from algorail.plugin_manager import get_registry

    table = Table("connector", "kinds", "Kafka Connect class", "dev mode")
    for name, connector in sorted(get_registry().connectors.items()):
        dev = type(connector).open_dev is not Connector.open_dev
        table.add_row(name, ", ".join(connector.kinds), connector.connector_class or "-",
                      "python" if dev else "Kafka Connect only")
    Console().print(table)


@connectors.command()
@plan_argument
@click.option("--strimzi", is_flag=True, help="Print Strimzi KafkaConnector resources (YAML).")
@cluster_option
@click.option("--namespace", help="Namespace of the KafkaConnector resources.")
@strimzi_api_option
def render(file: str, deployment: str | None, bindings: str | None, strimzi: bool,
           cluster: str, namespace: str | None, strimzi_api_version: str) -> None:
    """Print the Kafka Connect configs of FILE's data sources and sinks."""
    from algorail import kafka_connect

    plan = _plan(file, deployment, bindings)
    if strimzi:
        import yaml

        resources = kafka_connect.kafka_connector_resources(
            plan, cluster, namespace, api_version=strimzi_api_version)
        click.echo(yaml.safe_dump_all(resources, sort_keys=False), nl=False)
    else:
        click.echo(json.dumps(kafka_connect.render_plan(plan), indent=2))


@connectors.command()
@click.option("--image", default="registry.example/algorail-connect:latest", show_default=True,
              help="Where Strimzi pushes the built worker image.")
@click.option("--push-secret", help="Secret with the registry credentials.")
@cluster_option
@strimzi_api_option
@click.argument("names", nargs=-1)
def plugins(image: str, push_secret: str | None, cluster: str, strimzi_api_version: str,
            names: tuple[str, ...]) -> None:
    """Print the Strimzi KafkaConnect spec for connector NAMES (default: every installed
    connector): the Connect group and storage topics, spec.config and spec.build. Add
    replicas and bootstrapServers to make it a whole KafkaConnect."""
    import yaml

    from algorail import kafka_connect

    spec = {
        **kafka_connect.worker_group(cluster, strimzi_api_version),
        "build": kafka_connect.kafka_connect_build(image, push_secret, list(names) or None),
    }
    click.echo(yaml.safe_dump({"spec": spec}, sort_keys=False), nl=False)


@connectors.command()
@plan_argument
@connect_url_option
def apply(file: str, deployment: str | None, bindings: str | None, connect_url: str) -> None:
    """Create or update FILE's data sources and sinks on a Kafka Connect cluster."""
    from algorail import kafka_connect

    plan = _plan(file, deployment, bindings)
    with kafka_connect.KafkaConnectClient(connect_url) as client:
        for name, outcome in kafka_connect.apply_plan(client, plan):
            click.echo(f"{name}: {outcome}")


@connectors.command()
@plan_argument
@connect_url_option
def status(file: str, deployment: str | None, bindings: str | None, connect_url: str) -> None:
    """Show connector and task states, with the error of each failed task. Exit status 1
    unless every connector and task is RUNNING."""
    from algorail import kafka_connect

    plan = _plan(file, deployment, bindings)
    healthy = True
    with kafka_connect.KafkaConnectClient(connect_url) as client:
        for name, state in kafka_connect.status_plan(client, plan):
            if state is None:
                healthy = False
                click.secho(f"{name}: not deployed (run `algorail connectors apply`)", fg="yellow")
                continue
            healthy &= state.healthy
            click.secho(f"{name}: {state.state} on {state.worker or '-'}",
                        fg="green" if state.healthy else "red")
            if state.trace:
                click.echo(f"  error: {state.trace.strip().splitlines()[0]}")
            for task in state.tasks:
                click.echo(f"  task {task.id}: {task.state} on {task.worker or '-'}")
                if task.trace:
                    click.echo(f"    error: {task.trace.strip().splitlines()[0]}")
    if not healthy:
        raise click.exceptions.Exit(1)


@connectors.command()
@plan_argument
@connect_url_option
def delete(file: str, deployment: str | None, bindings: str | None, connect_url: str) -> None:
    """Remove FILE's data sources and sinks from a Kafka Connect cluster."""
    from algorail import kafka_connect

    plan = _plan(file, deployment, bindings)
    with kafka_connect.KafkaConnectClient(connect_url) as client:
        for name, outcome in kafka_connect.delete_plan(client, plan):
            click.echo(f"{name}: {outcome}")


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False),
              envvar="ALGORAIL_PLAN", help="A plan JSON file (`algorail plan -o`).")
@click.option("--component", required=True, help="The data source or sink to run.")
@click.option("--bootstrap-servers", required=True, envvar="ALGORAIL_BOOTSTRAP_SERVERS",
              help="Kafka HOST:PORT [env ALGORAIL_BOOTSTRAP_SERVERS].")
@click.option("--connections", type=click.Path(exists=True, dir_okay=False),
              envvar="ALGORAIL_CONNECTIONS_FILE",
              help="External broker connections file [env ALGORAIL_CONNECTIONS_FILE].")
def connect(plan_file: str, component: str, bootstrap_servers: str,
            connections: str | None) -> None:
    """Run one data source or sink of a plan in Python (dev mode) until stopped.

    Checks the config and the database, bucket or queue first; a connector without a
    Python implementation prints that it needs Kafka Connect and exits 0."""
    import os
    import threading

    from algorail.commands import service_logging
    from algorail.connections import CONNECTIONS_ENV
    from algorail.plan import Plan
    from algorail.runtime.connect import run_connector
    from algorail.runtime.signals import stop_on_signals

    if connections:
        os.environ[CONNECTIONS_ENV] = connections
    service_logging("algorail connect: %(message)s")
    stop = threading.Event()
    stop_on_signals(stop.set)
    run_connector(Plan.from_file(plan_file), component, bootstrap_servers, stop)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--owner", help="Only this owner's flows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, grouped by owner.")
def eventflows(paths: tuple[str, ...], owner: str | None, as_json: bool) -> None:
    """List the event flows (external Kafka, SQS, Service Bus) of pipelines or plans in
    PATHS, per owner."""
    from algorail.eventflows import event_flows, flows_by_owner, load_plans

    flows = [flow for plan in load_plans(list(paths)) for flow in event_flows(plan)]
    grouped = flows_by_owner(flows, owner)
    if as_json:
        data = {o: [f.to_dict() for f in fs] for o, fs in grouped.items()}
        click.echo(json.dumps(data, indent=2))
        return
    if not grouped:
        click.echo("no event flows")
    for flow_owner, owner_flows in grouped.items():
        click.echo(f"{flow_owner}:")
        for f in owner_flows:
            algos = ", ".join(f.algos) or "-"
            click.echo(f"  {f.pipeline}/{f.component}: {f.direction} {f.source_type} {f.uri} "
                       f"(algos: {algos})")
