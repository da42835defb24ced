"""`algorail operator`: run the Pipeline operator (kopf) against the current cluster."""

from __future__ import annotations

import click


@click.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Watch Pipelines in this namespace (repeatable; default: every namespace).")
@click.option("-f", "--values", "values_files", multiple=True, type=click.Path(dir_okay=False),
              help="algorail-pipeline chart values for every pipeline (Kafka, gateway "
                   "Service, ...); a Pipeline's spec.deployment wins over them. Repeatable.")
@click.option("--resync", "resync_seconds", type=click.FloatRange(min=1), default=60.0,
              show_default=True,
              help="Seconds between reconciles of an unchanged Pipeline (recreates deleted "
                   "objects, refreshes runner readiness).")
@click.option("--liveness", "liveness_endpoint", metavar="URL",
              help="Serve a liveness probe here, e.g. http://0.0.0.0:8080/healthz.")
@click.option("--watch-seldon", is_flag=True,
              help="Also turn Seldon Core 2 Pipelines (mlops.seldon.io/v1alpha1) into algorail "
                   "Pipelines, bound by the namespace's ConfigMap algorail-seldon-bindings. "
                   "Off by default: never beside a running Seldon.")
def operator(namespaces: tuple[str, ...], values_files: tuple[str, ...],
             resync_seconds: float, liveness_endpoint: str | None, watch_seldon: bool) -> None:
    """Reconcile Pipeline resources (algorail.io/v1) into topics, runners, connectors,
    routes and the plan ConfigMap. Needs `pip install 'algorail[operator]'`."""
    try:
        from algorail.operator.handlers import OperatorConfig, run_operator
    except ImportError as exc:
        raise click.ClickException(
            f"the operator needs kopf: pip install 'algorail[operator]' ({exc})") from None
    from algorail.render import load_values_files

    config = OperatorConfig(namespaces=namespaces, values=load_values_files(values_files),
                            resync_seconds=resync_seconds, watch_seldon=watch_seldon)
    run_operator(config, liveness_endpoint=liveness_endpoint)
