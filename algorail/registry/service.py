"""The registry's rules: owner isolation, immutable validated versions, event-flow grants,
deployment state. The HTTP API is a thin layer over `Registry`; tests call both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algorail import naming
from algorail.errors import AlgorailError, PipelineError, Problem
from algorail.registry import models as m
from algorail.registry.auth import Principal
from algorail.registry.cache import NoCache
from algorail.registry.errors import Conflict, Forbidden, Invalid, NotFound
from algorail.registry.policy import DeploymentPolicy
from algorail.registry.supervisor import DeploymentCancelled, DeploymentError

log = logging.getLogger("algorail.registry")

TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
DIRECTIONS = ("publish", "subscribe")
TARGETS = ("local", "kubernetes")
ENDED = ("terminated", "failed")
ACTIVE = ("starting", "running", "stopping")


def semver_key(version: str) -> tuple:
    """Order semver strings: numeric parts, then a release after its pre-releases."""
    core, _, pre = version.split("+")[0].partition("-")
    numbers = tuple(int(p) for p in core.split("."))
    return numbers, pre == "", pre


def parse_ref(ref: str) -> tuple[str, str, str]:
    match = naming.REF_RE.match(ref)
    if not match:
        raise Invalid(
            f"{ref!r} is not a reference: write OWNER/NAME:VERSION, e.g. alice/hello:1.0.0"
        )
    return match["owner"], match["name"], match["version"]


def checked(row: m.Base) -> m.Base:
    """`row`, if every string fits its column; else a 422 naming the field and its limit."""
    problem = m.too_long(row)
    if problem:
        raise Invalid(problem)
    return row


def check_version(version: str) -> None:
    if len(version) > m.VERSION:
        raise Invalid(f"version is {len(version)} characters long; the limit is {m.VERSION}")
    if not naming.VERSION_RE.match(version):
        raise Invalid(f"version {version!r} is not semver: write MAJOR.MINOR.PATCH, e.g. 1.2.0")


def check_name(name: str, what: str) -> None:
    if not naming.is_valid_name(name):
        raise Invalid(f"{what} {name!r} is not a valid name: {naming.NAME_RULE}")


def check_document(document: dict[str, Any], bindings: dict | None = None
                   ) -> tuple[Any, list[Problem]]:
    """The pipeline a document describes (None when it cannot be read) and every rule it
    breaks: the shape checks and graph rules of `algorail validate`."""
    from algorail.graph import check_pipeline
    from algorail.spec import parse_pipeline

    try:
        pipeline = parse_pipeline(document, bindings=bindings)
    except PipelineError as exc:
        return None, exc.problems
    return pipeline, check_pipeline(pipeline)


def validate_document(document: dict[str, Any], bindings: dict | None = None) -> dict[str, Any]:
    """Parse and check a pipeline document; return its canonical algorail form."""
    pipeline, problems = check_document(document, bindings)
    if problems:
        raise Invalid("the pipeline is not valid", [str(p) for p in problems])
    return pipeline.to_dict()


def validation(document: dict[str, Any] | None = None, text: str | None = None,
               bindings: dict | None = None) -> dict[str, Any]:
    """What POST /v1/validate answers: whether a document (or YAML text, a Seldon
    manifest's included, which is converted) would be accepted by a push, each problem
    with its rule, the component it is about and (for text) its line, and the algorail
    document it reads as (None when the text cannot be read)."""
    from algorail.spec import SELDON_API_VERSION, component_lines, parse_document

    lines: dict[str, int] = {}
    try:
        if text is not None:
            document = parse_document(text)
            if document.get("apiVersion") == SELDON_API_VERSION:
                from algorail.seldon import seldon_to_algorail

                document = seldon_to_algorail(document, bindings=bindings)
            else:
                lines = component_lines(text)
    except PipelineError as exc:
        document, problems = None, exc.problems
    else:
        _, problems = check_document(document, bindings)
    return {"valid": not problems, "document": document,
            "problems": [{"rule": p.rule, "message": p.message, "component": p.component,
                          "line": p.line or lines.get(p.component), "text": str(p)}
                         for p in problems]}


def installed_plugins() -> dict[str, Any]:
    """The connectors (with their config's JSON Schema) and hook types this registry's
    plugins offer: the designer's palette."""
    from algorail.plugin_manager import get_registry

    plugins = get_registry()
    return {
        "connectors": [{"name": name, "description": c.description, "kinds": list(c.kinds),
                        "configSchema": c.config_schema}
                       for name, c in sorted(plugins.connectors.items())],
        "hookTypes": [{"name": name, "description": h.description}
                      for name, h in sorted(plugins.hook_types.items())],
    }


def _iso(value) -> str:
    return value.isoformat() + "Z"


def version_summary(pv: m.PipelineVersion) -> dict[str, Any]:
    p = pv.pipeline
    return {"ref": f"{p.owner}/{p.name}:{pv.version}", "owner": p.owner, "name": p.name,
            "version": pv.version, "description": pv.description, "digest": pv.digest,
            "createdAt": _iso(pv.created_at)}


def algo_version_dict(av: m.AlgoVersion) -> dict[str, Any]:
    a = av.algo
    return {"ref": f"{a.owner}/{a.name}:{av.version}", "owner": a.owner, "name": a.name,
            "version": av.version, "runtime": av.runtime, "settings": av.settings,
            "published": av.published, "createdAt": _iso(av.created_at)}


def deployment_dict(d: m.Deployment, status: dict | None = None) -> dict[str, Any]:
    """`status`: what the target reports of a running deployment (kubernetes: its Pipeline
    resource's conditions and components), None when it reports nothing."""
    pv = d.pipeline_version
    return {"owner": d.owner, "name": d.name,
            "pipeline": f"{pv.pipeline.owner}/{pv.pipeline.name}:{pv.version}",
            "target": d.target, "state": d.state, "message": d.message,
            "settings": d.settings, "runtime": d.runtime, "status": status,
            "createdAt": _iso(d.created_at), "updatedAt": _iso(d.updated_at)}


def event_dict(e: m.DeploymentEvent) -> dict[str, Any]:
    pv = e.pipeline_version
    return {"state": e.state, "message": e.message, "at": _iso(e.created_at),
            "pipeline": f"{pv.pipeline.owner}/{pv.pipeline.name}:{pv.version}"}


def grant_dict(g: m.EventFlowGrant) -> dict[str, Any]:
    return {"id": g.id, "algo": algo_version_dict(g.algo_version)["ref"],
            "connection": g.connection.name,
            "bootstrapServers": g.connection.bootstrap_servers, "topic": g.topic,
            "direction": g.direction, "createdAt": _iso(g.created_at)}


class Registry:
    """Every registry operation, acting for a `Principal`."""

    def __init__(self, sessions: sessionmaker[Session], cache=None, supervisor=None,
                 policy: DeploymentPolicy | None = None):
        self.sessions = sessions
        self.cache = cache or NoCache()
        self.supervisor = supervisor
        self.policy = policy or DeploymentPolicy()
        # Starting a deployment can take minutes (startTimeout, helm): it runs here, never
        # in a request, which answers at once with the deployment "starting".
        self._starts = ThreadPoolExecutor(max_workers=16, thread_name_prefix="algorail-deploy")

    def close(self) -> None:
        """Stop starting deployments (a restarted registry reconciles them)."""
        if self.supervisor is not None:
            self.supervisor.close()
        self._starts.shutdown(wait=True, cancel_futures=True)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def _own(self, who: Principal, owner: str, what: str) -> None:
        """Another owner's things do not exist for this key: 404, never 403."""
        if owner != who.owner:
            raise NotFound(f"{what} not found")

    def _see(self, who: Principal, owner: str, what: str) -> None:
        """Reading another owner's things: an admin key sees the whole registry (its
        cluster-wide views); any other key gets 404, as for `_own`."""
        if not who.admin:
            self._own(who, owner, what)

    @staticmethod
    def _visible(who: Principal, model) -> Any:
        """The rows of `model` a listing shows this key: its owner's, or all for an admin."""
        query = select(model).order_by(model.owner, model.name)
        return query if who.admin else query.where(model.owner == who.owner)

    def _listing(self, who: Principal, key: str, load):
        """A listing, cached per owner; an admin's spans every owner, so it is not cached
        (a write invalidates only its own owner's entries)."""
        return load() if who.admin else self.cache.get_or_load(who.owner, key, load)

    # ---- pipelines -------------------------------------------------------------------

    def push(self, who: Principal, document: dict, bindings: dict | None = None) -> dict:
        canonical = validate_document(document, bindings)
        meta = canonical["metadata"]
        owner, name, version = meta["owner"], meta["name"], meta["version"]
        if owner != who.owner:
            raise Forbidden(
                f"this API key acts for owner {who.owner!r}, but the pipeline's metadata.owner "
                f"is {owner!r}: change metadata.owner or use that owner's key"
            )
        check_version(version)
        text = json.dumps(canonical, sort_keys=True)
        pipeline_id = self._row_id(m.Pipeline, owner, name)
        with self._session() as s:
            pv = checked(m.PipelineVersion(
                pipeline_id=pipeline_id, version=version, description=meta.get("description"),
                document=text, digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            ))
            s.add(pv)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                raise Conflict(
                    f"{owner}/{name}:{version} already exists and versions are immutable: "
                    f"push a new version, e.g. `algorail pipelines clone "
                    f"{owner}/{name}:{version} --to NEW`"
                ) from None
            result = version_summary(pv)
        self.cache.invalidate(owner)
        return result

    def _row_id(self, model, owner: str, name: str, **extra) -> int:
        """Find or create the (owner, name) row; a concurrent creator may win the insert."""
        for _ in range(2):
            with self._session() as s:
                found = s.scalar(select(model.id).where(model.owner == owner,
                                                        model.name == name))
                if found is not None:
                    return found
                row = checked(model(owner=owner, name=name, **extra))
                s.add(row)
                try:
                    s.commit()
                    return row.id
                except IntegrityError:
                    s.rollback()
        raise Conflict(f"could not create {owner}/{name}: try again")

    def list_pipelines(self, who: Principal) -> list[dict]:
        def load():
            with self._session() as s:
                rows = s.scalars(self._visible(who, m.Pipeline)).all()
                out = []
                for p in rows:
                    versions = sorted((v.version for v in p.versions), key=semver_key)
                    out.append({"owner": p.owner, "name": p.name, "versions": len(versions),
                                "latest": versions[-1] if versions else None})
                return out

        return self._listing(who, "pipelines", load)

    def pipeline_versions(self, who: Principal, owner: str, name: str) -> list[dict]:
        self._see(who, owner, f"pipeline {owner}/{name}")

        def load():
            with self._session() as s:
                p = s.scalar(select(m.Pipeline).where(
                    m.Pipeline.owner == owner, m.Pipeline.name == name))
                if p is None:
                    raise NotFound(f"pipeline {owner}/{name} not found")
                out = [version_summary(v) for v in p.versions]
                return sorted(out, key=lambda v: semver_key(v["version"]))

        return self.cache.get_or_load(owner, f"versions:{name}", load)

    def pipeline_version(self, who: Principal, owner: str, name: str, version: str) -> dict:
        ref = f"{owner}/{name}:{version}"
        self._see(who, owner, f"pipeline {ref}")

        def load():
            with self._session() as s:
                pv = self._find_version(s, owner, name, version)
                return {**version_summary(pv), "document": json.loads(pv.document)}

        return self.cache.get_or_load(owner, f"version:{name}:{version}", load)

    @staticmethod
    def _find_version(s: Session, owner: str, name: str, version: str) -> m.PipelineVersion:
        pv = s.scalar(select(m.PipelineVersion).join(m.Pipeline).where(
            m.Pipeline.owner == owner, m.Pipeline.name == name,
            m.PipelineVersion.version == version))
        if pv is None:
            raise NotFound(f"pipeline {owner}/{name}:{version} not found")
        return pv

    def clone(self, who: Principal, owner: str, name: str, version: str, to: str) -> dict:
        """AlgoRun's "Clone": a snapshot of a version stored under a new version tag."""
        check_version(to)
        document = self.pipeline_version(who, owner, name, version)["document"]
        document["metadata"]["version"] = to
        return self.push(who, document)

    def new_blank(self, who: Principal, name: str, version: str,
                  description: str | None = None) -> dict:
        """AlgoRun's "Blank": an empty pipeline to build from scratch."""
        check_name(name, "pipeline name")
        metadata = {"owner": who.owner, "name": name, "version": version}
        if description:
            metadata["description"] = description
        return self.push(who, {"apiVersion": "algorail.io/v1", "kind": "Pipeline",
                               "metadata": metadata, "spec": {}})

    # ---- algos -----------------------------------------------------------------------

    def publish_algo(self, who: Principal, owner: str, name: str, version: str, runtime: str,
                     settings: dict | None = None, published: bool = True,
                     description: str | None = None) -> dict:
        self._own(who, owner, f"algo {owner}/{name}")
        check_name(name, "algo name")
        check_version(version)
        if not runtime:
            raise Invalid("an algo version needs a runtime, e.g. python or http")
        algo_id = self._row_id(m.Algo, owner, name, description=description)
        with self._session() as s:
            av = checked(m.AlgoVersion(algo_id=algo_id, version=version, runtime=runtime,
                                       settings=settings or {}, published=published))
            s.add(av)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                raise Conflict(f"algo {owner}/{name}:{version} already exists; versions are "
                               "immutable: publish a new version") from None
            s.refresh(av)
            result = algo_version_dict(av)
        self.cache.invalidate(owner)
        return result

    def list_algos(self, who: Principal) -> list[dict]:
        def load():
            with self._session() as s:
                rows = s.scalars(self._visible(who, m.Algo)).all()
                out = []
                for a in rows:
                    published = sorted((v.version for v in a.versions if v.published),
                                       key=semver_key)
                    out.append({"owner": a.owner, "name": a.name,
                                "description": a.description, "versions": len(a.versions),
                                "latestPublished": published[-1] if published else None})
                return out

        return self._listing(who, "algos", load)

    def algo_versions(self, who: Principal, owner: str, name: str) -> list[dict]:
        self._see(who, owner, f"algo {owner}/{name}")

        def load():
            with self._session() as s:
                a = s.scalar(select(m.Algo).where(m.Algo.owner == owner, m.Algo.name == name))
                if a is None:
                    raise NotFound(f"algo {owner}/{name} not found")
                out = [algo_version_dict(v) for v in a.versions]
                return sorted(out, key=lambda v: semver_key(v["version"]))

        return self.cache.get_or_load(owner, f"algo-versions:{name}", load)

    # ---- broker connections and event flows (admin) ----------------------------------

    @staticmethod
    def _admin(who: Principal) -> None:
        if not who.admin:
            raise Forbidden("this needs an admin API key "
                            "(`algorail registry keys create --owner NAME --admin`)")

    def add_connection(self, who: Principal, name: str, bootstrap_servers: str) -> dict:
        self._admin(who)
        check_name(name, "connection name")
        if not bootstrap_servers or " " in bootstrap_servers:
            raise Invalid("bootstrapServers must be HOST:PORT[,HOST:PORT...]")
        with self._session() as s:
            row = checked(m.BrokerConnection(name=name, bootstrap_servers=bootstrap_servers))
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                raise Conflict(f"a broker connection named {name!r} already exists") from None
            return {"name": row.name, "bootstrapServers": row.bootstrap_servers,
                    "createdAt": _iso(row.created_at)}

    def list_connections(self, who: Principal) -> list[dict]:
        self._admin(who)
        with self._session() as s:
            rows = s.scalars(select(m.BrokerConnection).order_by(m.BrokerConnection.name)).all()
            return [{"name": r.name, "bootstrapServers": r.bootstrap_servers,
                     "createdAt": _iso(r.created_at)} for r in rows]

    def grant(self, who: Principal, algo: str, connection: str, topic: str,
              direction: str) -> dict:
        """Let a published algo version publish to or subscribe from a connected topic."""
        self._admin(who)
        owner, name, version = parse_ref(algo)
        if direction not in DIRECTIONS:
            raise Invalid(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        if not TOPIC_RE.match(topic or ""):
            raise Invalid(f"{topic!r} is not a Kafka topic name (letters, digits, . _ -)")
        with self._session() as s:
            av = s.scalar(select(m.AlgoVersion).join(m.Algo).where(
                m.Algo.owner == owner, m.Algo.name == name, m.AlgoVersion.version == version))
            if av is None:
                raise NotFound(f"algo {algo} not found")
            if not av.published:
                raise Conflict(f"algo {algo} is not published: only published algo versions "
                               "can join event flows")
            conn = s.scalar(select(m.BrokerConnection).where(
                m.BrokerConnection.name == connection))
            if conn is None:
                raise NotFound(f"broker connection {connection!r} not found: add it with "
                               "POST /v1/admin/connections")
            row = checked(m.EventFlowGrant(algo_version_id=av.id, connection_id=conn.id,
                                           topic=topic, direction=direction))
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                raise Conflict(f"{algo} may already {direction} on {connection}/{topic}") from None
            result = grant_dict(row)
        self.cache.invalidate(owner)
        return result

    def event_flows(self, who: Principal, owner: str) -> list[dict]:
        if not who.admin:
            self._own(who, owner, f"owner {owner}")

        def load():
            with self._session() as s:
                rows = s.scalars(select(m.EventFlowGrant).join(m.AlgoVersion).join(m.Algo)
                                 .where(m.Algo.owner == owner)
                                 .order_by(m.EventFlowGrant.id)).all()
                return [grant_dict(g) for g in rows]

        return self.cache.get_or_load(owner, "event-flows", load)

    # ---- deployments -------------------------------------------------------------------
    #
    # A deployment's state moves only by conditional updates in SQL (`_claim`, `_move`), so
    # of concurrent requests exactly one goes ahead. While it is "starting", the start in
    # the background owns it: a terminate moves it to "stopping" and stops what was
    # recorded, and the start, finding it no longer "starting", stops what it made and
    # records "terminated".

    def _supervisor(self):
        if self.supervisor is None:
            raise Invalid("this registry runs without a deployment supervisor")
        return self.supervisor

    def deploy(self, who: Principal, pipeline: str, name: str, target: str = "local",
               settings: dict | None = None) -> dict:
        """Record the deployment as "starting" and start it in the background."""
        owner, pname, version = parse_ref(pipeline)
        self._own(who, owner, f"pipeline {pipeline}")
        check_name(name, "deployment name")
        if target not in TARGETS:
            raise Invalid(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        self._supervisor()
        wanted = {"target": target, "settings": self.policy.check(who, target, settings or {})}
        with self._session() as s:
            pv = self._find_version(s, owner, pname, version)
            d = s.scalar(select(m.Deployment).where(m.Deployment.owner == owner,
                                                    m.Deployment.name == name))
            if d is None:
                d = checked(m.Deployment(owner=owner, name=name, runtime={}, state="starting",
                                         pipeline_version_id=pv.id, **wanted))
                s.add(d)
                try:
                    s.commit()
                except IntegrityError:
                    raise Conflict(f"deployment {owner}/{name} is being created by another "
                                   "request") from None
                self._record(s, d.id, "starting")
            else:
                self._claim(s, d, ENDED, "starting", pipeline_version_id=pv.id, **wanted)
            self._starts.submit(self._start, d.id, json.loads(pv.document))
            return deployment_dict(d)

    @classmethod
    def _move(cls, s: Session, deployment_id: int, allowed: tuple[str, ...], **values) -> bool:
        """Set `values` on the deployment only if it is in one of the `allowed` states (a
        conditional update, committed); whether it was. A state change is recorded in the
        deployment's history."""
        done = s.execute(
            sql_update(m.Deployment)
            .where(m.Deployment.id == deployment_id, m.Deployment.state.in_(allowed))
            .values(updated_at=m.utcnow(), **values)
            .execution_options(synchronize_session=False))
        s.commit()
        if done.rowcount == 1 and "state" in values:
            cls._record(s, deployment_id, values["state"], values.get("message"))
        return done.rowcount == 1

    @staticmethod
    def _record(s: Session, deployment_id: int, state: str, message: str | None = None
                ) -> None:
        """Add a state change to the deployment's history, on its current pipeline version."""
        version = s.scalar(select(m.Deployment.pipeline_version_id)
                           .where(m.Deployment.id == deployment_id))
        s.add(m.DeploymentEvent(deployment_id=deployment_id, pipeline_version_id=version,
                                state=state, message=message))
        s.commit()

    def _claim(self, s: Session, d: m.Deployment, allowed: tuple[str, ...], state: str,
               **values) -> None:
        """Move `d` to `state` only if it is still in one of the `allowed` states, so of
        concurrent requests changing one deployment exactly one goes ahead."""
        done = self._move(s, d.id, allowed, state=state, message=None, **values)
        s.refresh(d)
        if not done:
            hint = (": use `algorail deployments update`, or terminate it first"
                    if allowed == ENDED else "")
            raise Conflict(f"deployment {d.owner}/{d.name} is {d.state}, and this needs it "
                           f"{' or '.join(allowed)}{hint}")

    def _background_move(self, deployment_id: int, allowed: str, **values) -> bool:
        with self._session() as s:
            return self._move(s, deployment_id, (allowed,), **values)

    def _start(self, deployment_id: int, document: dict, previous: dict | None = None) -> None:
        """The background part of deploy and update: stop the `previous` processes (a local
        update), start, and record "running" or "failed" with the reason."""
        with self._session() as s:
            d = s.get(m.Deployment, deployment_id)
            target, owner, name, settings = d.target, d.owner, d.name, d.settings

        def launched(runtime: dict) -> None:
            self._check_release_is_free(deployment_id, runtime)
            if not self._background_move(deployment_id, "starting", runtime=runtime):
                raise DeploymentCancelled("the deployment was terminated while starting")

        runtime = None
        try:
            if previous:
                self.supervisor.stop(target, previous)
            runtime = self.supervisor.start(target, owner, name, document, settings, launched)
            outcome = {"state": "running", "message": None, "runtime": runtime}
        except AlgorailError as exc:
            outcome = {"state": "failed", "message": str(exc)}
        except Exception as exc:  # a target's bug must not leave the deployment "starting"
            log.exception("deployment %s/%s failed to start", owner, name)
            outcome = {"state": "failed", "message": f"{type(exc).__name__}: {exc}"}
        if self._background_move(deployment_id, "starting", **outcome):
            return
        try:  # terminated while starting: what this start made is stopped here
            if runtime is not None:
                self.supervisor.stop(target, runtime)
            self._background_move(deployment_id, "stopping", state="terminated", message=None)
        except AlgorailError as exc:
            self._background_move(deployment_id, "stopping", state="failed",
                                  message=f"could not stop: {exc}")

    def _check_release_is_free(self, deployment_id: int, runtime: dict) -> None:
        """Refuse a Helm release (namespace and name) that another deployment, maybe another
        owner's, still holds: release names are derived from owner and deployment names
        and can coincide (`alice` + `a-b`, `alice-a` + `b`)."""
        if "release" not in runtime:
            return
        with self._session() as s:
            others = s.scalars(select(m.Deployment).where(
                m.Deployment.target == "kubernetes", m.Deployment.id != deployment_id,
                m.Deployment.state != "terminated")).all()
            for other in others:
                if (other.runtime.get("release"), other.runtime.get("namespace")) == (
                        runtime["release"], runtime["namespace"]):
                    raise DeploymentError(
                        f"Helm release {runtime['release']!r} in namespace "
                        f"{runtime['namespace']!r} belongs to another deployment: deploy "
                        "under another name")

    def _deployment(self, s: Session, who: Principal, owner: str, name: str) -> m.Deployment:
        """An owner's deployment; an admin reaches every owner's (to watch, update or
        terminate it: the cluster-wide view)."""
        self._see(who, owner, f"deployment {owner}/{name}")
        d = s.scalar(select(m.Deployment).where(m.Deployment.owner == owner,
                                                m.Deployment.name == name))
        if d is None:
            raise NotFound(f"deployment {owner}/{name} not found")
        return d

    def _observe(self, s: Session, d: m.Deployment) -> dict | None:
        """Record a running deployment whose processes have gone as failed, and stop any
        it left behind; the target's status of one still running."""
        if d.state == "running" and self.supervisor is not None:
            problem, status = self.supervisor.observe(d.target, d.runtime)
            if not problem:
                return status
            try:
                self.supervisor.stop(d.target, d.runtime)
            except AlgorailError as exc:
                problem += f"\n(and could not stop what is left: {exc})"
            self._move(s, d.id, ("running",), state="failed", message=problem)
            s.refresh(d)
        return None

    def list_deployments(self, who: Principal) -> list[dict]:
        with self._session() as s:
            rows = s.scalars(self._visible(who, m.Deployment)).all()
            return [deployment_dict(d, self._observe(s, d)) for d in rows]

    def deployment(self, who: Principal, owner: str, name: str) -> dict:
        """The deployment, with its history (`events`, oldest first)."""
        with self._session() as s:
            d = self._deployment(s, who, owner, name)
            return {**deployment_dict(d, self._observe(s, d)),
                    "events": [event_dict(e) for e in d.events]}

    def terminate(self, who: Principal, owner: str, name: str) -> dict:
        """Stop everything the deployment started. One still starting answers "stopping";
        its start in the background stops what it made and records "terminated"."""
        supervisor = self._supervisor()
        with self._session() as s:
            d = self._deployment(s, who, owner, name)
            if d.state == "terminated":
                return deployment_dict(d)
            was = d.state
            self._claim(s, d, ("starting", "running", "failed"), "stopping")
            try:
                supervisor.stop(d.target, d.runtime)
            except AlgorailError as exc:
                if was != "starting":
                    self._move(s, d.id, ("stopping",), state="failed",
                               message=f"could not stop: {exc}")
                raise
            if was != "starting":
                self._move(s, d.id, ("stopping",), state="terminated")
            s.refresh(d)
            return deployment_dict(d)

    def update(self, who: Principal, owner: str, name: str, pipeline: str | None = None,
               settings: dict | None = None) -> dict:
        """Move a deployment to another pipeline version or settings, restarting it in the
        background (a local one is stopped first)."""
        self._supervisor()
        with self._session() as s:
            d = self._deployment(s, who, owner, name)
            merged = self.policy.check(who, d.target, {**d.settings, **(settings or {})})
            changes = {"settings": merged}
            if pipeline:
                p_owner, pname, version = parse_ref(pipeline)
                if p_owner != d.owner:  # a deployment runs its own owner's pipelines
                    raise NotFound(f"pipeline {pipeline} not found")
                pv = self._find_version(s, p_owner, pname, version)
                changes["pipeline_version_id"] = pv.id
            self._claim(s, d, ("running", "failed"), "starting", **changes)
            previous = d.runtime if d.target == "local" else None
            self._starts.submit(self._start, d.id, json.loads(d.pipeline_version.document),
                                previous)
            return deployment_dict(d)

    def reconcile(self) -> dict[str, str]:
        """After a restart: adopt deployments still running; stop what those left starting
        or stopping had started, and record them failed or terminated."""
        seen = {}
        with self._session() as s:
            for d in s.scalars(select(m.Deployment).where(
                    m.Deployment.state.in_(ACTIVE))).all():
                if d.state == "running":
                    self._observe(s, d)
                else:
                    ended = "terminated" if d.state == "stopping" else "failed"
                    try:
                        self._supervisor().stop(d.target, d.runtime)
                        message = None if ended == "terminated" else (
                            f"the registry stopped while {d.state}")
                    except AlgorailError as exc:
                        ended, message = "failed", f"could not stop: {exc}"
                    d.state, d.message = ended, message
                    s.commit()
                    self._record(s, d.id, ended, message)
                seen[f"{d.owner}/{d.name}"] = d.state
        return seen
