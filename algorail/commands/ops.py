"""`algorail inspect`, `tail`, `replay`, `status` and `graph`: look inside a running pipeline.

They read the pipeline from `--pipeline FILE` or `--plan plan.json` and talk to its Kafka
(`--bootstrap-servers`: dev mode prints its broker; a cluster's Kafka otherwise), or take
both from a registry deployment (`--deployment NAME`) or a running `algorail dev`
(`--dev URL`). Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import click

from algorail.cli import bindings_option


def target_options(func):
    """The options that say which pipeline and which Kafka; the command gets `target`."""
    options = [
        click.option("--pipeline", "pipeline_file", type=click.Path(exists=True, dir_okay=False),
                     help="The pipeline file (compiled the way `algorail dev` does)."),
        click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False),
                     envvar="ALGORAIL_PLAN", help="A plan JSON written by `algorail plan -o`."),
        click.option("--deployment", help="Deployment name (default: the pipeline's name); "
                                          "alone, the registry's deployment of that name."),
        click.option("--dev", "dev_url", metavar="URL", envvar="ALGORAIL_DEV_URL",
                     help="The URL `algorail dev` printed: its pipeline, broker and gateway."),
        click.option("--bootstrap-servers", envvar="ALGORAIL_BOOTSTRAP_SERVERS",
                     help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]."),
        click.option("--registry", "registry_url", envvar="ALGORAIL_REGISTRY_URL",
                     default="http://127.0.0.1:8700", show_default=True,
                     help="Registry URL, for --deployment alone."),
        click.option("--api-key", envvar="ALGORAIL_API_KEY", help="Registry API key."),
        bindings_option,
    ]

    @wraps(func)
    def wrapper(pipeline_file, plan_file, deployment, dev_url, bootstrap_servers, registry_url,
                api_key, bindings, **kwargs):
        target = _target(pipeline_file, plan_file, deployment, dev_url, bootstrap_servers,
                         registry_url, api_key, bindings)
        return func(target=target, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@dataclass
class Target:
    plan: Any
    bootstrap_servers: str
    gateway_url: str | None = None  # known for registry deployments and dev mode


def _target(pipeline_file, plan_file, deployment, dev_url, bootstrap_servers, registry_url,
            api_key, bindings) -> Target:
    from algorail.errors import AlgorailError

    given = [name for name, value in (("--pipeline", pipeline_file),
                                      ("--plan (or ALGORAIL_PLAN)", plan_file),
                                      ("--dev (or ALGORAIL_DEV_URL)", dev_url)) if value]
    if len(given) > 1:
        raise AlgorailError(f"give the pipeline one way, not {' and '.join(given)}")
    if dev_url:
        from algorail.ops.deployments import dev_deployment

        if deployment:
            raise AlgorailError("--dev URL serves one deployment: leave out --deployment")
        found = dev_deployment(dev_url)  # its broker, whatever ALGORAIL_BOOTSTRAP_SERVERS says
        return Target(found.plan, found.bootstrap_servers, found.gateway_url)
    if pipeline_file or plan_file:
        if not bootstrap_servers:
            raise AlgorailError("say where its Kafka is: --bootstrap-servers HOST:PORT (env "
                                "ALGORAIL_BOOTSTRAP_SERVERS; `algorail dev` prints its broker)")
        from algorail.compiler import load_plan
        from algorail.spec import load_bindings

        plan = load_plan(pipeline_file or plan_file, deployment, load_bindings(bindings))
        return Target(plan, bootstrap_servers)
    if not deployment:
        raise AlgorailError("say which pipeline: --pipeline FILE, --plan plan.json, "
                            "--deployment NAME (from the registry) or --dev URL (a running "
                            "`algorail dev`)")
    from algorail.ops.deployments import registry_deployment

    found = registry_deployment(deployment, registry_url, api_key)
    servers = bootstrap_servers or found.bootstrap_servers
    if not servers:
        raise AlgorailError(f"deployment {deployment!r} runs on dev mode's embedded broker, "
                            "whose address the registry does not record: pass "
                            f"--bootstrap-servers (its log {found.log} prints `broker: ...`)")
    return Target(found.plan, servers, found.gateway_url)


def results_options(func):
    func = click.option("--results-url", envvar="ALGORAIL_RESULTS_URL",
                        help="The results store (redis://...) for hook outcomes.")(func)
    return click.option("--gateway", "gateway_url",
                        help="The gateway's base URL (dev mode's too): hook outcomes and "
                             "errors from GET .../runs/{runId}.")(func)


def _window(since: str | None, max_records: int, last: int | None = None,
            from_beginning: bool = False):
    from algorail.ops.records import Window, since_ms

    if from_beginning:
        return Window(max_records=max_records)
    start = since_ms(since)
    return Window(since_ms=start, last=last if start is None else None, max_records=max_records)


@click.command()
@click.argument("run_id")
@target_options
@results_options
@click.option("--since", default="1h", show_default=True,
              help="How far back to scan when the run's time is unknown (30s, 10m, 2h, 1d).")
@click.option("--max-records", type=int, default=100_000, show_default=True,
              help="Scan at most this many records per partition.")
@click.option("--payload", is_flag=True, help="Show whole payloads, not previews.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(run_id, target, gateway_url, results_url, since, max_records, payload, as_json):
    """Every message of run RUN_ID on the pipeline's topics, in order, and its critical path."""
    from rich.console import Console
    from rich.progress import Progress

    from algorail.ops.inspect import fetch_view, inspect_run
    from algorail.ops.records import Window

    plan, bootstrap_servers = target.plan, target.bootstrap_servers
    view = fetch_view(run_id, plan, gateway_url or target.gateway_url, results_url)
    window = _window(since, max_records)
    if view and view.get("errors"):
        window = Window(max_records=max_records)  # the errors say where to look
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scanning topics", total=None)
        report = inspect_run(plan, bootstrap_servers, run_id, view=view, window=window,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total or None))
    if as_json:
        click.echo(json.dumps(report.to_dict(payload), indent=2))
        return
    _print_report(report, payload)


def _console():
    """Wide enough for the tables when the output is not a terminal (a file, a pipe)."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _print_report(report, payload: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    status = (report.view or {}).get("status", "unknown (no results store given)")
    console.print(f"[bold]run {report.run_id}[/]  status: {status}  trace: "
                  f"{report.trace_id or '-'}  ({report.scanned} records scanned)")
    table = Table("#", "component.port", escape("topic[partition]@offset"), "time", "+start",
                  "+prev", "size", "type", "payload")
    for n, hop in enumerate(report.hops, 1):
        m = hop.message
        shown = escape(json.dumps(m.payload()) if payload else m.preview(60))
        if m.skip:
            shown = "[yellow]skip marker[/]"
        if m.error:
            shown = f"[red]{'dead letter: ' if m.dead_letter else 'error: '}{escape(m.error)}[/]"
        table.add_row(str(n), m.pipe, f"{m.topic}[{m.partition}]@{m.offset}",
                      _clock(m.timestamp), f"{hop.since_start_ms} ms",
                      f"{hop.since_previous_ms} ms", f"{m.size} B", m.content_type or "-",
                      shown)
    console.print(table)
    deliveries = (report.view or {}).get("deliveries", {})
    for hook, delivery in deliveries.items():
        attempts = delivery.get("attempts", 0)
        tried = f" after {attempts} attempt(s)" if attempts else ""
        extra = f" ({escape(delivery['error'])})" if delivery.get("error") else ""
        console.print(f"hook {hook}: {delivery['state']}{tried}{extra}")
    if report.critical_path:
        took = report.step_ms()
        slowest = took.index(max(took))
        steps = [f"{hop.message.pipe} (+{ms} ms)"
                 for hop, ms in zip(report.critical_path, took, strict=True)]
        steps[slowest] = f"[bold red]{steps[slowest]}[/]"
        console.print("critical path: " + " → ".join(steps))


def _clock(ms: int) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


@click.command()
@click.argument("pipes", nargs=-1, required=True)
@target_options
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("--since", help="Start at messages this recent (30s, 10m, 2h, 1d).")
@click.option("-n", "--lines", "last", type=int, default=10, show_default=True,
              help="Otherwise start this many messages before the end of each partition.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new messages until Ctrl-C.")
@click.option("--run", "run_id", help="Only the messages of this run.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def tail(pipes, target, from_beginning, since, last, follow, run_id, as_json):
    """Print the messages on PIPES (component.port, endpoint path or topic), one per line.

    Reads with no consumer group, so the pipeline's offsets never move."""
    from algorail.ops import tail as tailing
    from algorail.ops.records import Window

    plan, bootstrap_servers = target.plan, target.bootstrap_servers
    topics = tailing.resolve_pipes(plan, list(pipes))
    window = _window(since, Window.max_records, last, from_beginning)
    stop = threading.Event()
    started = (lambda: click.echo(f"following {', '.join(topics)} (Ctrl-C to stop)",
                                  err=True)) if follow else None
    try:
        for message in tailing.tail(plan, bootstrap_servers, topics, window=window,
                                    follow=follow, run_id=run_id, stop=stop, started=started):
            line = json.dumps(tailing.as_json(message)) if as_json else \
                tailing.format_line(message)
            click.echo(line)
    except KeyboardInterrupt:
        stop.set()


@click.command()
@target_options
@results_options
@click.option("--dead-letters", "component", metavar="COMPONENT",
              help="Re-send the dead letters of this algo or data sink to its inputs.")
@click.option("--run", "run_id", help="Only this run (with --as-new: the run to send again).")
@click.option("--as-new", is_flag=True, help="Send the run's endpoint message under a new run id.")
@click.option("--since", help="Only dead letters this recent (30s, 10m, 2h, 1d).")
@click.option("--force", is_flag=True, help="Send even runs that already got through.")
@click.option("-y", "--yes", is_flag=True, help="Send without asking.")
def replay(target, gateway_url, results_url, component, run_id, as_new, since, force, yes):
    """Send dead letters back to their component, or a run again under a new run id."""
    from algorail.errors import AlgorailError
    from algorail.ops import replay as replaying
    from algorail.ops.inspect import fetch_view

    plan, bootstrap_servers = target.plan, target.bootstrap_servers
    gateway_url = gateway_url or target.gateway_url
    window = _window(since, 100_000)
    if as_new:
        if not run_id or component:
            raise AlgorailError("--as-new needs --run RUN_ID (and no --dead-letters)")
        resends = replaying.plan_as_new(plan, bootstrap_servers, run_id, window=window)
    elif component:
        view = None
        if gateway_url or results_url:
            def view(run):
                return fetch_view(run, plan, gateway_url, results_url)
        resends = replaying.plan_dead_letters(plan, bootstrap_servers, component,
                                              run_id=run_id, window=window, force=force,
                                              view=view)
    else:
        raise AlgorailError("say what to replay: --dead-letters COMPONENT, or --run RUN_ID "
                            "--as-new")
    if not resends:
        click.echo("nothing to replay")
        return
    for r in resends:
        what = f"run {r.run_id} -> {r.topic} (attempt {r.attempt}, {len(r.value)} B)"
        click.echo(f"skip {what}: {r.skip_reason}" if r.skip_reason else f"send {what}")
    todo = [r for r in resends if r.skip_reason is None]
    if not todo:
        click.echo("nothing to send (--force sends them anyway)")
        return
    if not yes and not click.confirm(f"send {len(todo)} message(s)?", default=False):
        raise click.exceptions.Exit(1)
    sent = replaying.send(bootstrap_servers, resends)
    click.echo(f"sent {sent} message(s)")


@click.command()
@target_options
@click.option("--interval", type=float, default=1.0, show_default=True,
              help="Seconds between the two samples rates are measured over.")
@click.option("--watch", is_flag=True, help="Refresh the table until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(target, interval, watch, as_json):
    """A table of every component: state, replicas, rates, lag, recent errors.

    Of a running `algorail dev`: `algorail status --dev http://127.0.0.1:8080`."""
    from rich.live import Live

    from algorail.ops.status import pipeline_status

    plan, bootstrap_servers = target.plan, target.bootstrap_servers
    if as_json:
        click.echo(json.dumps(pipeline_status(plan, bootstrap_servers, interval).to_dict(),
                              indent=2))
        return
    if not watch:
        _console().print(_status_table(plan, pipeline_status(plan, bootstrap_servers,
                                                             interval)))
        return
    try:
        with Live(console=_console(), auto_refresh=False) as live:
            while True:
                live.update(_status_table(plan, pipeline_status(plan, bootstrap_servers,
                                                                interval)), refresh=True)
    except KeyboardInterrupt:
        pass


def _status_table(plan, current):
    from rich.table import Table

    colours = {"running": "green", "up to date": "green", "catching up": "yellow",
               "stalled": "red", "down": "red"}
    table = Table("component", "kind", "state", "replicas", "in/s", "out/s", "lag",
                  "errors 5m", "dead letters 5m", "last error",
                  title=f"{plan.owner}/{plan.deployment}")
    for c in current.components:
        colour = colours.get(c.state, "white")
        table.add_row(c.name, c.kind, f"[{colour}]{c.state}[/]", c.replicas,
                      _number(c.in_per_s), _number(c.out_per_s), _number(c.lag),
                      str(c.errors), str(c.dead_letters), (c.last_error or "")[:60])
    return table


def _number(value) -> str:
    return "-" if value is None else f"{value:g}"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]),
              default="mermaid", show_default=True,
              help="svg and png are drawn by Graphviz (`dot` on PATH).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to this file (needed for png).")
@click.option("--status", "live", is_flag=True,
              help="Colour components by live state and label pipes with their rates "
                   "(dot, svg, png; needs --bootstrap-servers).")
@click.option("--bootstrap-servers", envvar="ALGORAIL_BOOTSTRAP_SERVERS",
              help="Kafka bootstrap servers, for --status.")
@click.option("--deployment", help="Deployment name (default: the pipeline's name).")
@bindings_option
def graph(file, fmt, output, live, bootstrap_servers, deployment, bindings):
    """Draw FILE as a Mermaid flowchart, Graphviz dot, or an SVG/PNG image."""
    from algorail.cli import load
    from algorail.diagram import FORMATS, render_image, to_dot
    from algorail.errors import AlgorailError

    pipeline = load(file, bindings)
    if fmt == "png" and not output:
        raise AlgorailError("a PNG needs -o FILE")
    if live and fmt == "mermaid":
        raise AlgorailError("--status draws with Graphviz: use --format dot, svg or png")
    if not live:
        text = FORMATS.get(fmt, to_dot)(pipeline)
    else:
        if not bootstrap_servers:
            raise AlgorailError("--status needs --bootstrap-servers (the pipeline's Kafka)")
        text = to_dot(pipeline, _live_status(pipeline, deployment, bootstrap_servers))
    data = render_image(text, fmt) if fmt in ("svg", "png") else text.encode("utf-8")
    if output:
        Path(output).write_bytes(data)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(data.decode("utf-8"), nl=False)


def _live_status(pipeline, deployment, bootstrap_servers):
    from algorail.compiler import compile_plan
    from algorail.diagram import LiveStatus
    from algorail.ops.status import pipeline_status

    plan = compile_plan(pipeline, deployment=deployment)
    current = pipeline_status(plan, bootstrap_servers)
    pipes = {t.name: t.pipe for t in plan.topics if t.component and t.port}
    return LiveStatus(states={c.name: c.state for c in current.components},
                      rates={pipes[t]: r for t, r in current.topic_rates.items() if t in pipes})
