"""Registry commands: `registry serve|keys|migrate` run the service; `push`, `pipelines`,
`algos`, `deploy` and `deployments` talk to it over HTTP.

Nothing heavy is imported at module level, so `algorail --help` stays fast.
"""

from __future__ import annotations

import json
from functools import wraps

import click

from algorail.errors import AlgorailError
from algorail.ports import PORT, check_port_free

DATABASE_OPTION = click.option(
    "--database-url", envvar="ALGORAIL_REGISTRY_DATABASE_URL",
    help="sqlite:///FILE (default ~/.algorail/registry.db), postgresql://... or mysql://...",
)


def client_command(func):
    """Add --registry/--api-key and pass a ready `RegistryClient` as `client`."""

    @click.option("--registry", "registry_url", envvar="ALGORAIL_REGISTRY_URL",
                  default="http://127.0.0.1:8700", show_default=True, help="Registry URL.")
    @click.option("--api-key", envvar="ALGORAIL_API_KEY", help="API key (ALGORAIL_API_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
    @wraps(func)
    def wrapper(registry_url, api_key, as_json, **kwargs):
        from algorail.registry.client import RegistryClient

        if not api_key:
            raise AlgorailError("no API key: pass --api-key or set ALGORAIL_API_KEY "
                                "(create one with `algorail registry keys create`)")
        with RegistryClient(registry_url, api_key) as client:
            result = func(client=client, **kwargs)
        _show(result, as_json)

    return wrapper


def _show(result, as_json: bool) -> None:
    if result is None:
        return
    if as_json or not isinstance(result, list | dict):
        click.echo(json.dumps(result, indent=2))
        return
    if isinstance(result, dict):
        for key, value in _flat(result):
            click.echo(f"{key}: {'' if value is None else value}")
        return
    rows = result
    if not rows:
        click.echo("(none)")
        return
    from rich.console import Console
    from rich.table import Table

    columns = [k for k in rows[0] if not isinstance(rows[0][k], dict | list)]
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)


def _flat(result: dict) -> list[tuple[str, object]]:
    """Scalar fields, and those one level down as `key.sub` (e.g. runtime.url)."""
    out = []
    for key, value in result.items():
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items() if not isinstance(v, dict | list)]
        elif not isinstance(value, list):
            out.append((key, value))
    return out


def _ref(ref: str) -> tuple[str, str, str]:
    from algorail.registry.service import parse_ref

    return parse_ref(ref)


def _owner_name(client, value: str) -> tuple[str, str]:
    """OWNER/NAME, or NAME for the calling key's owner."""
    if "/" in value:
        owner, _, name = value.partition("/")
        return owner, name
    return client.whoami()["owner"], value


def _settings(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: write KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# ---- the service ----------------------------------------------------------------------


@click.group()
def registry() -> None:
    """Run the registry service and manage its API keys."""


@registry.command()
@DATABASE_OPTION
@click.option("--redis-url", envvar="ALGORAIL_REGISTRY_REDIS_URL",
              help="Cache hot reads in this Redis (redis://HOST:PORT/DB).")
@click.option("--cache-prefix", envvar="ALGORAIL_REGISTRY_CACHE_PREFIX",
              help="Prefix of the Redis keys (default: algorail:registry:<database identity>).")
@click.option("--state-dir", type=click.Path(file_okay=False), envvar="ALGORAIL_REGISTRY_STATE_DIR",
              help="Where deployments keep specs and logs (default ~/.algorail/state).")
@click.option("--allow-local-deployments", is_flag=True,
              help="Let admin keys deploy to the local target (processes on this host).")
@click.option("--deployments-dir", type=click.Path(exists=True, file_okay=False),
              envvar="ALGORAIL_REGISTRY_DEPLOYMENTS_DIR",
              help="local: the folder every deployment's workdir must be inside.")
@click.option("--allowed-namespace", "namespaces", multiple=True, default=["algorail"],
              show_default=True, metavar="NS",
              help="kubernetes: a namespace non-admin keys may deploy to; repeatable. "
                   "The first is the default.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=PORT)
def serve(database_url, redis_url, cache_prefix, state_dir, allow_local_deployments,
          deployments_dir, namespaces, host, port) -> None:
    """Serve the registry API (migrating the database first)."""
    from pathlib import Path

    from algorail.registry.api import open_registry
    from algorail.registry.api import serve as run
    from algorail.registry.policy import DeploymentPolicy

    policy = DeploymentPolicy(allow_local=allow_local_deployments,
                              deployments_dir=Path(deployments_dir) if deployments_dir else None,
                              namespaces=tuple(namespaces))
    check_port_free(host, port)  # before the database is migrated
    run(open_registry(database_url, redis_url, state_dir, cache_prefix=cache_prefix,
                      policy=policy), host=host, port=port)


@registry.command()
@DATABASE_OPTION
@click.option("--revision", default="head", show_default=True)
def migrate(database_url, revision) -> None:
    """Upgrade the database schema (serve does this too)."""
    from algorail.registry import db

    engine = db.open_engine(database_url)
    db.migrate(engine, revision)
    click.echo(f"database at revision {db.current_revision(engine)}")


@registry.group()
def keys() -> None:
    """API keys, written straight to the registry database."""


@keys.command("create")
@DATABASE_OPTION
@click.option("--owner", required=True, help="The owner the key acts for.")
@click.option("--admin", is_flag=True, help="Also manage broker connections and grants.")
@click.option("--label", help="A note to recognise the key by.")
def keys_create(database_url, owner, admin, label) -> None:
    """Create a key and print it (it is shown only once)."""
    from algorail.registry import auth, db

    engine = db.open_engine(database_url)
    db.migrate(engine)
    with db.session_factory(engine)() as session:
        click.echo(auth.create_key(session, owner, admin=admin, label=label))


@keys.command("list")
@DATABASE_OPTION
def keys_list(database_url) -> None:
    """List keys (prefix, owner, role), never the secrets."""
    from algorail.registry import auth, db

    engine = db.open_engine(database_url)
    db.migrate(engine)
    with db.session_factory(engine)() as session:
        _show(auth.list_keys(session), as_json=False)


@keys.command("revoke")
@DATABASE_OPTION
@click.argument("prefix")
def keys_revoke(database_url, prefix) -> None:
    """Revoke the key with PREFIX (as `keys list` shows it); it stops working at once."""
    from algorail.registry import auth, db

    engine = db.open_engine(database_url)
    db.migrate(engine)
    with db.session_factory(engine)() as session:
        revoked = auth.revoke_key(session, prefix)
    click.echo(f"revoked {revoked['prefix']}... (owner {revoked['owner']})")


# ---- pipelines -------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--bindings", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file mapping algo or Seldon step names to runtime settings.")
@client_command
def push(client, file, bindings):
    """Store FILE as a new pipeline version (owner/name:version from its metadata)."""
    from algorail.loader import load_pipeline
    from algorail.spec import load_bindings, read_document

    bound = load_bindings(bindings)
    load_pipeline(file, bindings=bound)  # problems name the file before anything is sent
    return client.push(read_document(file), bound)


@click.group()
def pipelines() -> None:
    """Pipeline versions in the registry."""


@pipelines.command("list")
@client_command
def pipelines_list(client):
    """This owner's pipelines."""
    return client.pipelines()


@pipelines.command()
@click.argument("pipeline")
@client_command
def versions(client, pipeline):
    """Versions of PIPELINE (OWNER/NAME or NAME)."""
    return client.pipeline_versions(*_owner_name(client, pipeline))


@pipelines.command()
@click.argument("ref")
@click.option("--yaml", "as_yaml", is_flag=True, help="Print only the document, as YAML.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the document to a file.")
@client_command
def show(client, ref, as_yaml, output):
    """One version, REF = OWNER/NAME:VERSION."""
    import yaml

    found = client.pipeline_version(*_ref(ref))
    text = yaml.safe_dump(found["document"], sort_keys=False)
    if output:
        with open(output, "w", encoding="utf-8") as out:
            out.write(text)
    if as_yaml:
        click.echo(text, nl=False)
        return None
    return found


@pipelines.command()
@click.argument("ref")
@click.option("--to", "to", required=True, help="The new version, e.g. 1.1.0.")
@client_command
def clone(client, ref, to):
    """Store a snapshot of REF under a new version (AlgoRun "Clone")."""
    return client.clone(*_ref(ref), to)


@pipelines.command()
@click.argument("name")
@click.option("--blank", is_flag=True, required=True, help="Start from an empty pipeline.")
@click.option("--version", "version", default="1.0.0", show_default=True)
@click.option("--description")
@client_command
def new(client, name, blank, version, description):
    """Create pipeline NAME from nothing (AlgoRun "Blank")."""
    return client.new_blank(name, version, description)


# ---- algos -----------------------------------------------------------------------------


@click.group()
def algos() -> None:
    """The algo repository."""


@algos.command()
@click.argument("ref")
@click.option("--runtime", required=True, help="Algo runtime, e.g. python, http, executable.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="A runtime setting (entrypoint=mod:fn, url=..., image=...); repeatable.")
@click.option("--description")
@click.option("--draft", is_flag=True, help="Store without publishing (no event flows).")
@client_command
def publish(client, ref, runtime, pairs, description, draft):
    """Publish algo version REF = OWNER/NAME:VERSION."""
    owner, name, version = _ref(ref)
    return client.publish_algo(owner, name, version, runtime, _settings(pairs),
                               published=not draft, description=description)


@algos.command("list")
@client_command
def algos_list(client):
    """This owner's algos."""
    return client.algos()


@algos.command("versions")
@click.argument("algo")
@client_command
def algos_versions(client, algo):
    """Versions of ALGO (OWNER/NAME or NAME)."""
    return client.algo_versions(*_owner_name(client, algo))


# ---- deployments -----------------------------------------------------------------------

WAIT_OPTION = click.option("--wait/--no-wait", default=True, show_default=True,
                           help="Wait until the deployment is no longer starting or stopping.")


def _settled(client, deployment: dict, wait: bool) -> dict:
    return client.wait(deployment["owner"], deployment["name"]) if wait else deployment



@click.command()
@click.argument("ref")
@click.option("--name", required=True, help="Deployment name (part of topic names and URLs).")
@click.option("--target", type=click.Choice(["local", "kubernetes"]), default="local",
              show_default=True)
@click.option("--port", type=PORT, help="local: the gateway port (default: a free one).")
@click.option("--workdir",
              help="Folder with the algos' code, inside the registry's --deployments-dir "
                   "(absolute, or relative to it); local: put on PYTHONPATH; kubernetes: "
                   "the modules of python algos without an image are packed from it.")
@click.option("--namespace", help="kubernetes: namespace of the Pipeline resource.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="Another deployment setting; repeatable.")
@WAIT_OPTION
@client_command
def deploy(client, ref, name, target, port, workdir, namespace, pairs, wait):
    """Deploy pipeline version REF = OWNER/NAME:VERSION."""
    given = {"port": port, "workdir": workdir, "namespace": namespace}
    settings = {k: v for k, v in given.items() if v is not None} | _settings(pairs)
    return _settled(client, client.deploy(ref, name, target, settings), wait)


@click.group()
def deployments() -> None:
    """Deployments started by the registry."""


@deployments.command("list")
@client_command
def deployments_list(client):
    """This owner's deployments and their state."""
    return client.deployments()


@deployments.command()
@click.argument("deployment")
@client_command
def status(client, deployment):
    """State of DEPLOYMENT (OWNER/NAME or NAME)."""
    return client.deployment(*_owner_name(client, deployment))


@deployments.command()
@click.argument("deployment")
@WAIT_OPTION
@client_command
def terminate(client, deployment, wait):
    """Stop DEPLOYMENT and every process or release it started."""
    return _settled(client, client.terminate(*_owner_name(client, deployment)), wait)


@deployments.command()
@click.argument("deployment")
@click.option("--pipeline", "ref", help="Move to this pipeline version, OWNER/NAME:VERSION.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="Change a deployment setting; repeatable.")
@WAIT_OPTION
@client_command
def update(client, deployment, ref, pairs, wait):
    """Restart DEPLOYMENT with another pipeline version or settings."""
    owner, name = _owner_name(client, deployment)
    return _settled(client, client.update(owner, name, ref, _settings(pairs) if pairs else None),
                    wait)
