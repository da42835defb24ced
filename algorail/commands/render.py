"""`algorail render`: a pipeline's Kubernetes manifests, for GitOps.

Helm (CLI or SDK) is imported only when the command runs.
"""

from __future__ import annotations

import click

from algorail.cli import bindings_option


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the manifests to (one sub-folder per chart).")
@click.option("-f", "--values", "values_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="YAML values file overriding chart defaults (repeatable; later wins).")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
              help="Helm --set expression applied after the values files (repeatable).")
@click.option("--deployment", help="Deployment name (default: the pipeline's name).")
@click.option("--release", help="Helm release name; every object name follows it "
              "(default: the plan's, OWNER-DEPLOYMENT as a DNS label of at most 41 chars).")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace the manifests are for.")
@click.option("--with-services", is_flag=True,
              help="Also render the algorail chart (gateway, hook dispatcher) for this plan.")
@click.option("--engine", type=click.Choice(["auto", "cli", "sdk"]), default="auto",
              show_default=True, help="auto: the helm CLI when on PATH, else the Python SDK.")
@bindings_option
def render(file: str, out_dir: str, values_files: tuple[str, ...], set_values: tuple[str, ...],
           deployment: str | None, release: str | None, namespace: str, with_services: bool,
           engine: str, bindings: str | None) -> None:
    """Write the manifests for pipeline FILE (or a plan JSON from `algorail plan -o`).

    Renders the algorail-pipeline chart with the compiled plan as its values: runner
    Deployments, Strimzi KafkaTopics and KafkaConnectors, Emissary Mappings, the plan
    ConfigMap. Apply with `kubectl apply -R -f OUT`.
    """
    from algorail.render import render_pipeline

    plan = _plan(file, bindings, deployment)
    written = render_pipeline(plan, out_dir, values_files=values_files, set_values=set_values,
                              release=release, namespace=namespace,
                              with_services=with_services, engine=engine)
    for path in written:
        click.echo(str(path))
    click.echo(f"wrote {len(written)} files for {plan.owner}/{plan.deployment} to {out_dir}",
               err=True)


def _plan(file: str, bindings: str | None, deployment: str | None):
    from algorail.plan import load_plan
    from algorail.spec import load_bindings

    return load_plan(file, deployment, load_bindings(bindings))
