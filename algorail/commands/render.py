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
@click.option("--resource", "as_resource", is_flag=True,
              help="Write OUT/pipeline.yaml, a Pipeline resource for the operator, with the "
                   "algos' local Python modules packed in, instead of the manifests.")
@bindings_option
def render(file: str, out_dir: str, values_files: tuple[str, ...], set_values: tuple[str, ...],
           deployment: str | None, release: str | None, namespace: str, with_services: bool,
           engine: str, as_resource: bool, bindings: str | None) -> None:
    """Write the manifests for pipeline FILE (or a plan JSON from `algorail plan -o`).

    Renders the algorail-pipeline chart with the compiled plan as its values: runner
    Deployments, Strimzi KafkaTopics and KafkaConnectors, Emissary Mappings, the plan
    ConfigMap. Apply with `kubectl apply -R -f OUT`.
    """
    from algorail.render import render_pipeline

    plan = _plan(file, bindings, deployment)
    if as_resource:
        path = _write_resource(file, plan, out_dir, namespace, bindings)
        click.echo(str(path))
        click.echo(f"wrote the Pipeline resource of {plan.owner}/{plan.deployment}: "
                   f"kubectl apply -f {path}", err=True)
        return
    written = render_pipeline(plan, out_dir, values_files=values_files, set_values=set_values,
                              release=release, namespace=namespace,
                              with_services=with_services, engine=engine)
    for path in written:
        click.echo(str(path))
    click.echo(f"wrote {len(written)} files for {plan.owner}/{plan.deployment} to {out_dir}",
               err=True)


def _plan(file: str, bindings: str | None, deployment: str | None):
    from algorail.compiler import load_plan
    from algorail.spec import load_bindings

    return load_plan(file, deployment, load_bindings(bindings))


def _write_resource(file: str, plan, out_dir: str, namespace: str, bindings: str | None):
    """The Pipeline resource of pipeline FILE (`operator.resource.deployment_resource`)."""
    from pathlib import Path

    import yaml

    from algorail.operator.resource import KIND, RESOURCE_API_VERSION, deployment_resource
    from algorail.spec import SELDON_API_VERSION, load_bindings, read_document

    document = read_document(file)
    if document.get("apiVersion") not in (RESOURCE_API_VERSION, SELDON_API_VERSION):
        raise click.UsageError(f"--resource takes a pipeline file ({KIND}, "
                               f"{RESOURCE_API_VERSION} or {SELDON_API_VERSION}); {file} is "
                               "not one")
    resource = deployment_resource(document, plan, namespace, load_bindings(bindings))
    path = Path(out_dir) / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resource, sort_keys=False, width=100), encoding="utf-8")
    return path
