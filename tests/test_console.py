"""The web console in a real browser: Debian's Chromium driven by Playwright, against real
`algorail registry serve` and `algorail dev` processes: the pages, the designer, live runs,
an admin's views of every owner, a key revoked mid-page, a deployment's components, update,
history and messages, a broker that went down, and a 50-component pipeline drawn in time.
Screenshots of each page go to out/console-screenshots/."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES
from test_registry_deploy import RegistryProcess, ops_hello, pipeline_path

from algorail.cli import cli
from algorail.registry.client import RegistryClient
from algorail.runtime.broker import EmbeddedBroker
from algorail.runtime.testing import DevProcess

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "out" / "console-screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (`apt-get install "
                       "chromium`; .ci/run installs it)"),
]

# Every kind of component the graph draws, each pipe carrying a named content type.
SHOP = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "alice", "name": "shop", "version": "1.0.0",
                 "description": "Scores orders from the API and from a partner topic."},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "order", "contentType": "text/csv"}]}],
        "dataSources": [{"name": "partner-orders", "connector": "kafka",
                         "config": {"connection": "partner", "topic": "orders"}}],
        "algos": [
            {"name": "parse", "runtime": "python", "entrypoint": "hello_algos:upper",
             "inputs": [{"name": "csv", "contentType": "text/csv"}],
             "outputs": [{"name": "order"}]},
            {"name": "score", "runtime": "python", "entrypoint": "hello_algos:upper",
             "inputs": [{"name": "order"}, {"name": "partner"}],
             "join": {"type": "any"}, "outputs": [{"name": "score"}]},
        ],
        "dataSinks": [{"name": "scores-db", "connector": "jdbc", "config": {
            "url": "postgresql://app@db:5432/shop", "password": "${secrets:shop/db:password}",
            "table": "scores", "insertMode": "upsert", "pkFields": ["id"]}}],
        "hooks": [{"name": "reply", "type": "response"}],
        "pipes": [
            {"from": "api.order", "to": "parse.csv"},
            {"from": "parse.order", "to": "score.order"},
            {"from": "partner-orders", "to": "score.partner"},
            {"from": "score.score", "to": "scores-db"},
            {"from": "score.score", "to": "reply"},
        ],
    },
}
COMPONENTS = ["api", "partner-orders", "parse", "score", "scores-db", "reply"]


class Registry(RegistryProcess):
    """`algorail registry serve` as its own process, with keys made in its database."""

    def __init__(self, folder: Path):
        self.database = f"sqlite:///{folder / 'registry.db'}"
        super().__init__(self.database, folder / "state", folder / "registry.log")

    def key(self, owner: str, *options: str) -> str:
        made = CliRunner().invoke(cli, ["registry", "keys", "create", "--owner", owner,
                                        "--database-url", self.database, *options])
        assert made.exit_code == 0, made.output
        return made.output.strip()

    def revoke(self, key: str) -> None:
        revoked = CliRunner().invoke(cli, ["registry", "keys", "revoke", key[:12],
                                           "--database-url", self.database])
        assert revoked.exit_code == 0, revoked.output


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("console"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def alice(registry):
    """Alice's key, with a pipeline, an algo and a deployment; Bob has a pipeline of his own."""
    key = registry.key("alice")
    with RegistryClient(registry.url, key) as client:
        client.push(SHOP)
        client.push({**copy.deepcopy(SHOP), "metadata": {**SHOP["metadata"], "version": "1.1.0"}})
        client.publish_algo("alice", "score", "1.0.0", "python",
                            {"entrypoint": "shop:score", "image": "ghcr.io/alice/score:1.0.0"})
        client.publish_algo("alice", "score", "1.1.0", "python", {"entrypoint": "shop:score"},
                            published=False)
        client.deploy("alice/shop:1.0.0", "shop", target="kubernetes")
        assert client.wait("alice", "shop", timeout=60)["state"] == "failed"  # no cluster to reach
    bob = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    bob["metadata"] = {**bob["metadata"], "owner": "bob", "name": "bobs-secret-pipeline"}
    with RegistryClient(registry.url, registry.key("bob")) as client:
        client.push(bob)
    return key


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh tab at 1280x800 that fails the test on any console error or page exception
    (a test that expects some, such as a refused key's 401s, checks and clears them)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(15_000)  # generous: CI shares its cores
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    yield tab
    context.close()
    assert errors == [], f"the browser logged errors: {errors}"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page, url: str, key: str) -> None:
    page.goto(f"{url}/ui/")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")


def test_the_console_tours_pipelines_graph_algos_and_deployments(registry, alice, page):
    page.goto(f"{registry.url}/ui/")
    shot(page, "01-login")
    login(page, registry.url, alice)
    page.get_by_role("link", name="shop", exact=True).wait_for()
    assert page.get_by_test_id("owner").inner_text() == "alice"
    assert alice[12:] not in page.content()  # only the key's prefix is ever shown
    assert "bobs-secret-pipeline" not in page.content()
    shot(page, "02-pipelines")

    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_role("link", name="1.0.0", exact=True).click()
    graph = page.get_by_test_id("graph").locator("svg")
    graph.wait_for()
    svg = graph.evaluate("svg => svg.outerHTML")
    for name in COMPONENTS:
        assert f'data-component="{name}"' in svg and f">{name}<" in svg, name
    assert svg.count('class="edge"') == len(SHOP["spec"]["pipes"])
    assert ">text/csv<" in svg and ">application/json<" in svg
    shot(page, "03-pipeline-graph")

    page.get_by_role("tab", name="Graph").focus()
    page.keyboard.press("ArrowRight")  # the tabs work from the keyboard
    shown = page.get_by_test_id("yaml").inner_text()
    assert yaml.safe_load(shown) == SHOP | {"metadata": SHOP["metadata"]}
    shot(page, "04-pipeline-yaml")

    page.get_by_role("link", name="Algos", exact=True).click()
    page.get_by_role("link", name="score", exact=True).click()
    page.get_by_text("ghcr.io/alice/score:1.0.0").wait_for()
    assert page.get_by_text("draft", exact=True).count() == 1
    shot(page, "05-algo-versions")

    page.get_by_role("link", name="Deployments", exact=True).click()
    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_test_id("message").wait_for()
    assert "no Kubernetes credentials" in page.get_by_test_id("message").inner_text()
    shot(page, "06-deployment")

    page.get_by_role("button", name="Terminate…").click()
    page.get_by_role("button", name="Cancel").click()  # a cancelled dialog changes nothing
    with RegistryClient(registry.url, alice) as client:
        assert client.deployment("alice", "shop")["state"] == "failed"
    page.get_by_role("button", name="Terminate…").click()
    shot(page, "07-terminate-confirm")
    page.get_by_role("dialog").get_by_role("button", name="Terminate").click()
    page.locator(".badge-terminated").first.wait_for()
    with RegistryClient(registry.url, alice) as client:
        assert client.deployment("alice", "shop")["state"] == "terminated"
    assert page.errors == []


def test_a_wrong_key_and_a_revoked_key_show_why(registry, alice, page):
    login(page, registry.url, "ar_not-a-key")
    refused = page.get_by_test_id("login-error")
    refused.wait_for()
    assert "unknown or has been revoked" in refused.inner_text()
    shot(page, "08-wrong-key")

    key = registry.key("carol")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")
    page.get_by_text("No pipelines yet").wait_for()  # the empty state
    shot(page, "09-empty-pipelines")
    registry.revoke(key)
    page.get_by_role("link", name="Algos", exact=True).click()
    page.get_by_test_id("login-error").wait_for()
    assert "revoked" in page.get_by_test_id("login-error").inner_text()
    # the browser logs the refused requests' 401s; nothing else
    assert all("401" in e for e in page.errors), page.errors
    page.errors.clear()


def test_an_unreachable_registry_is_an_error_state(tmp_path, page):
    own = Registry(tmp_path)
    try:
        login(page, own.url, own.key("dave"))
        page.get_by_text("No pipelines yet").wait_for()
    finally:
        own.stop()
    page.get_by_role("link", name="Deployments", exact=True).click()
    state = page.get_by_test_id("error-state")
    state.wait_for()
    assert "Registry unreachable" in state.inner_text() and own.url in state.inner_text()
    shot(page, "10-unreachable")
    assert all("ERR_CONNECTION_REFUSED" in e for e in page.errors), page.errors
    page.errors.clear()


def test_the_console_files_are_served_with_their_security_headers(registry):
    index = httpx.get(f"{registry.url}/ui/")
    assert index.status_code == 200 and 'src="app.js"' in index.text
    assert "default-src 'self'" in index.headers["content-security-policy"]
    script = httpx.get(f"{registry.url}/ui/app.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert httpx.get(f"{registry.url}/ui", follow_redirects=False).status_code in (307, 308)
    assert httpx.get(f"{registry.url}/ui/nothing.js").status_code == 404



def test_a_running_deployment_shows_its_runs_live_and_in_detail(tmp_path, page):
    """The curl works as pasted; a test request from the form shows up live, completes,
    and its detail lists every hop; filters narrow the list; terminate stops it."""
    own = Registry(tmp_path)  # local deployments from examples/ are allowed, for admin keys
    key = own.key("alice", "--admin")  # local deployments need an admin key
    try:
        with RegistryClient(own.url, key) as client:
            client.push(yaml.safe_load((EXAMPLES / "hello.yaml").read_text()))
        login(page, own.url, key)
        page.get_by_role("link", name="hello", exact=True).click()
        page.get_by_role("link", name="1.0.0", exact=True).click()
        page.get_by_role("button", name="Deploy…").click()
        page.get_by_label("Work folder (on the registry host)").fill(str(EXAMPLES))
        shot(page, "10b-deploy")
        page.get_by_role("dialog").get_by_role("button", name="Deploy").click()
        page.locator(".badge-running").first.wait_for(timeout=120_000)  # the page refreshes
        with RegistryClient(own.url, key) as client:
            running = client.deployment("alice", "hello")
        command = page.get_by_test_id("curl").inner_text()
        shot(page, "11-running-deployment")
        answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert '"TEXT"' in answer.stdout, (command, answer.stdout, answer.stderr)

        page.get_by_role("link", name="Runs", exact=True).last.click()
        page.get_by_test_id("live").filter(has_text="live").wait_for()
        page.locator(".badge-complete").first.wait_for(timeout=30_000)  # the curl's run, backlog
        page.get_by_label("text").fill("hello from the form")
        preview = page.get_by_test_id("request-preview").inner_text()
        assert preview == '{"text":"hello from the form"}'
        page.get_by_role("button", name="Send request").click()
        run_id = page.get_by_test_id("request-answer").get_by_role("link").inner_text()
        row = page.get_by_test_id("runs").locator("tr", has=page.locator(f'a[title="{run_id}"]'))
        row.locator(".badge-complete").wait_for(timeout=30_000)  # appeared live, then completed
        assert page.get_by_test_id("run-count").inner_text() == "2 of 2 runs"
        shot(page, "12-runs-live")

        page.get_by_label("Filter by status").select_option("failed")
        page.get_by_text("No run matches the filters").wait_for()
        page.get_by_label("Filter by status").select_option("")
        page.get_by_label("Filter by component").select_option("upper")
        assert page.get_by_test_id("run-count").inner_text() == "2 of 2 runs"
        page.get_by_label("Filter by component").select_option("")

        page.get_by_role("button", name="Send request").focus()
        row.get_by_role("link").click()
        page.get_by_test_id("run-status").locator(".badge-complete").wait_for()
        hops = page.get_by_role("table", name="Hops").locator("tbody tr")
        assert hops.count() == 3  # endpoint, algo output, hook
        assert "api.in" in hops.nth(0).inner_text() and "upper.result" in hops.nth(1).inner_text()
        assert "HELLO FROM THE FORM" in page.get_by_test_id("run-result").inner_text()
        shot(page, "13-run-detail")

        page.get_by_role("link", name="hello", exact=True).click()
        page.get_by_role("link", name="Monitoring", exact=True).click()
        algo = page.locator('.monitor-card[data-component="upper"]')
        algo.wait_for(timeout=20_000)  # once two samples are taken, 5 s apart
        for text in ("one", "two", "three"):  # calls in the interval of the next sample
            httpx.post(f"{running['runtime']['url']}/alice/hello/in", json={"text": text})
        p50 = algo.locator(".chart").nth(1).locator(".legend").first
        sync_api.expect(p50).to_have_text(re.compile(r"p50 [0-9.]+ ms"), timeout=20_000)
        shot(page, "20-monitoring")
        page.get_by_role("link", name="hello", exact=True).click()
        page.get_by_role("button", name="Terminate…").click()
        page.get_by_role("dialog").get_by_role("button", name="Terminate").click()
        page.locator(".badge-terminated").first.wait_for(timeout=30_000)
        assert page.errors == []
    finally:
        page.goto("about:blank")  # the page's own reads end before the servers stop
        with RegistryClient(own.url, key) as client:  # whatever happened above, stop dev
            if client.deployment("alice", "hello")["state"] != "terminated":
                client.terminate("alice", "hello")
                client.wait("alice", "hello", timeout=30)
        own.stop()


def drag_pipe(page, source: str, target: str) -> None:
    """Press on output port `source`, move onto input port `target`, release."""
    start = page.locator(f'circle[data-ref="{source}"]').bounding_box()
    end = page.locator(f'circle[data-ref="{target}"]').bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=8)
    page.mouse.up()


def test_a_pipeline_is_designed_by_drag_and_connect_and_saved(registry, alice, page):
    login(page, registry.url, alice)
    page.get_by_role("link", name="Designer", exact=True).click()
    canvas = page.get_by_test_id("canvas")
    canvas.get_by_text("An empty pipeline").wait_for()
    page.locator('[data-palette="endpoint:HTTP endpoint"]').drag_to(canvas)
    page.locator('circle[data-ref="api.in"]').wait_for()
    page.locator('[data-palette="algo:score"]').drag_to(canvas)  # from the algo repository
    page.locator('circle[data-ref="score.in"]').wait_for()
    page.locator('[data-palette="hook:response"]').focus()
    page.keyboard.press("Enter")  # the palette works from the keyboard too
    page.locator('circle[data-ref="response"]').wait_for()

    # the endpoint takes CSV: the validator refuses a pipe into the algo's JSON input
    canvas.locator('g[data-component="api"]').click()
    page.get_by_label("Paths (name:contentType, …)").fill("in:text/csv")
    page.get_by_label("Paths (name:contentType, …)").press("Enter")
    page.locator('circle[data-ref="api.in"] title', has_text="text/csv").wait_for(state="attached")
    drag_pipe(page, "api.in", "score.in")
    refusal = page.get_by_test_id("refusal")
    refusal.wait_for()
    said = refusal.inner_text()
    assert "api.in produces 'text/csv' but score.in accepts 'application/json'" in said
    shot(page, "14-designer-refused-pipe")
    assert "pipes: []" in page.get_by_test_id("yaml-editor").input_value()  # nothing was added

    canvas.locator('g[data-component="api"]').click()
    page.get_by_label("Paths (name:contentType, …)").fill("in")
    page.get_by_label("Paths (name:contentType, …)").press("Enter")
    json_port = page.locator('circle[data-ref="api.in"] title', has_text="application/json")
    json_port.wait_for(state="attached")
    drag_pipe(page, "api.in", "score.in")
    canvas.locator("g.edge").first.wait_for()
    drag_pipe(page, "score.out", "response")
    sync_api.expect(canvas.locator("g.edge")).to_have_count(2)
    # a second pipe into one input is refused too, with the validator's words
    page.locator('[data-palette="endpoint:HTTP endpoint"]').drag_to(canvas)
    page.locator('circle[data-ref="api-2.in"]').wait_for()
    drag_pipe(page, "api-2.in", "score.in")
    page.get_by_test_id("refusal").filter(has_text="already has a pipe from api.in").wait_for()
    canvas.locator('g[data-component="api-2"]').click()
    page.get_by_role("button", name="Remove component").click()
    page.get_by_test_id("valid").wait_for()

    page.get_by_label("Pipeline name").fill("designed")
    page.get_by_label("Pipeline name").press("Tab")
    page.get_by_test_id("valid").wait_for()
    shot(page, "15-designer-valid")

    # the YAML view is the same document: an edit there redraws the canvas and is checked
    page.get_by_role("tab", name="YAML").click()
    editor = page.get_by_test_id("yaml-editor")
    editor.fill(editor.input_value().replace("name: response", "name: reply")
                .replace("to: response", "to: reply"))
    canvas.locator('g[data-component="reply"]').wait_for(state="attached")
    good = editor.input_value()
    csv = "    - name: in\n      contentType: text/csv\n"
    editor.fill(good.replace("    - name: in\n", csv, 1))
    problem = page.get_by_test_id("problems").get_by_text("produces 'text/csv'")
    problem.wait_for()
    assert canvas.locator('g[data-component="score"].node-problem').count() == 1
    shot(page, "16-designer-yaml-problem")
    editor.fill(good)
    page.get_by_test_id("valid").wait_for()
    page.get_by_role("button", name="Save as new version").click()
    page.get_by_test_id("save-answer").get_by_role("link").wait_for()
    with RegistryClient(registry.url, alice) as client:
        stored = client.pipeline_version("alice", "designed", "1.0.0")["document"]["spec"]
    assert stored["pipes"] == [{"from": "api.in", "to": "score.in"},
                               {"from": "score.out", "to": "reply"}]
    assert stored["algos"][0]["ref"] == "alice/score:1.0.0"
    assert page.errors == []


SELDON = """apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: chain
  annotations: {algorail.io/model-url: "http://models:8000/v2/models/{name}/infer"}
spec:
  steps:
    - name: first
    - name: second
      inputs: [first]
  output:
    steps: [second]
"""


def test_a_seldon_manifest_is_imported_into_the_designer(registry, alice, page):
    login(page, registry.url, alice)
    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_role("link", name="1.1.0", exact=True).click()
    page.get_by_role("link", name="Edit as new version").click()
    assert page.get_by_label("Version").input_value() == "1.1.1"  # a clone, as a new version
    page.locator('g[data-component="score"]').wait_for()
    page.get_by_role("button", name="Import Seldon manifest…").click()
    page.get_by_label("Seldon manifest").fill(SELDON)
    page.get_by_role("dialog").get_by_role("button", name="Import").click()
    page.locator('g[data-component="second"]').wait_for()
    assert page.get_by_label("Pipeline name").input_value() == "chain"
    shot(page, "17-designer-seldon-import")
    assert page.errors == []


def test_two_versions_are_compared_as_graphs_and_yaml(registry, alice, page):
    changed = copy.deepcopy(SHOP)
    changed["metadata"]["version"] = "2.0.0"
    spec = changed["spec"]
    spec["hooks"] = []
    spec["pipes"] = [p for p in spec["pipes"] if p["to"] != "reply"]
    spec["algos"][1]["outputs"] = [{"name": "score"}, {"name": "audit"}]
    spec["dataSinks"].append({"name": "audit-log", "connector": "jdbc", "config": {
        **spec["dataSinks"][0]["config"], "table": "audit"}})
    spec["pipes"].append({"from": "score.audit", "to": "audit-log"})
    with RegistryClient(registry.url, alice) as client:
        client.push(changed)
    login(page, registry.url, alice)
    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_label("Compare", exact=True).select_option("1.1.0")
    page.get_by_label("with", exact=True).select_option("2.0.0")
    page.get_by_role("button", name="Compare").click()
    summary = page.get_by_test_id("diff-summary")
    summary.wait_for()
    said = summary.inner_text()
    for line in ("1 component added audit-log", "1 component removed reply",
                 "1 component changed score", "1 pipe added score.audit -> audit-log",
                 "1 pipe removed score.score -> reply"):
        assert line in said, said
    assert page.locator("g.node.diff-added").count() == 1
    assert page.locator("g.node.diff-removed").count() == 1
    assert page.locator("g.edge.diff-added").count() == 1
    shot(page, "18-diff-graph")
    page.get_by_role("tab", name="YAML").click()
    diff = page.get_by_test_id("yaml-diff")
    assert diff.locator(".diff-line-add", has_text="name: audit-log").count() == 1
    assert diff.locator(".diff-line-del", has_text="type: response").count() == 1
    shot(page, "19-diff-yaml")
    assert page.errors == []


def test_algorail_dev_serves_a_read_only_console_of_its_pipeline(tmp_path, page):
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), work_dir=tmp_path / "work", cwd=EXAMPLES)
    try:
        dev.wait_ready()
        page.goto(f"{dev.url}/ui/")
        graph = page.get_by_test_id("graph")
        graph.locator('g[data-component="upper"][data-state="running"]').wait_for()
        assert graph.locator("g.edge").count() == 2  # api.in -> upper.text -> result
        assert page.get_by_role("button", name="Sign out").count() == 0  # nothing to sign in to
        shot(page, "21-dev-pipeline")
        page.get_by_role("link", name="Runs", exact=True).click()
        page.get_by_test_id("live").filter(has_text="live").wait_for(timeout=30_000)
        answer = httpx.post(f"{dev.url}/alice/hello/in", json={"text": "from dev"}, timeout=30)
        run_id = answer.json()["runId"]
        row = page.get_by_test_id("runs").locator("tr", has=page.locator(f'a[title="{run_id}"]'))
        row.locator(".badge-complete").wait_for(timeout=30_000)
        shot(page, "22-dev-runs")
        row.get_by_role("link").click()
        assert "FROM DEV" in page.get_by_test_id("run-result").inner_text()
        assert page.get_by_role("table", name="Hops").locator("tbody tr").count() == 3
        assert page.errors == []
    finally:
        dev.stop()


HELLO = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
RENDER_BUDGET_S = 2.0
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def hello(version: str, description: str) -> dict:
    doc = copy.deepcopy(HELLO)
    doc["metadata"] = {**doc["metadata"], "version": version, "description": description}
    return doc


@pytest.fixture(scope="module")
def keys(registry):
    """Alice and Bob each with a pipeline, an algo and a (failed) deployment; an admin."""
    made = {"alice": registry.key("alice"), "bob": registry.key("bob"),
            "admin": registry.key("ops", "--admin")}
    for owner in ("alice", "bob"):
        doc = copy.deepcopy(SHOP)
        doc["metadata"] = {**doc["metadata"], "owner": owner, "name": f"{owner}-shop"}
        with RegistryClient(registry.url, made[owner]) as client:
            client.push(doc)
            client.publish_algo(owner, f"{owner}-score", "1.0.0", "python",
                                {"entrypoint": "shop:score"})
            client.deploy(f"{owner}/{owner}-shop:1.0.0", f"{owner}-live", target="kubernetes")
            assert client.wait(owner, f"{owner}-live", timeout=60)["state"] == "failed"
    return made


def status(url: str, key: str, path: str) -> int:
    return httpx.get(f"{url}/v1{path}", headers={"authorization": f"Bearer {key}"}).status_code


def test_an_admin_sees_every_owner_and_an_owner_only_their_own(registry, keys, page):
    url = registry.url
    # the API enforces it, whatever the page shows
    for path in ("/pipelines/bob/bob-shop/versions", "/algos/bob/bob-score/versions",
                 "/deployments/bob/bob-live", "/pipelines/bob/bob-shop/versions/1.0.0"):
        assert status(url, keys["alice"], path) == 404, path
        assert status(url, keys["admin"], path) == 200, path
    with RegistryClient(url, keys["alice"]) as alice:
        assert {p["owner"] for p in alice.request("GET", "/v1/pipelines")} == {"alice"}
        assert {d["owner"] for d in alice.deployments()} == {"alice"}
    with RegistryClient(url, keys["admin"]) as admin:
        for listing in ("/v1/pipelines", "/v1/algos", "/v1/deployments"):
            assert {x["owner"] for x in admin.request("GET", listing)} >= {"alice", "bob"}

    login(page, url, keys["admin"])
    table = page.get_by_role("table", name="Pipelines")
    table.get_by_role("link", name="bob-shop").wait_for()
    assert table.get_by_role("link", name="alice-shop").count() == 1
    page.get_by_label("Owner").select_option("bob")
    sync_api.expect(table.get_by_role("link", name="alice-shop")).to_have_count(0)
    shot(page, "30-admin-pipelines-filtered")
    page.get_by_role("link", name="Deployments", exact=True).click()
    deployments = page.get_by_role("table", name="Deployments")
    deployments.get_by_role("link", name="bob-live").wait_for()
    assert deployments.get_by_role("link", name="alice-live").count() == 0  # the filter stays
    page.get_by_label("Owner").select_option("")
    deployments.get_by_role("link", name="alice-live").wait_for()
    assert deployments.locator("td", has_text="bob").count() >= 1  # the owner column
    shot(page, "31-admin-deployments")
    deployments.get_by_role("link", name="bob-live").click()
    page.get_by_test_id("history").locator(".badge-failed").wait_for()
    page.get_by_role("link", name="bob/bob-shop:1.0.0").click()  # another owner's version
    page.get_by_test_id("read-only").wait_for()
    assert page.get_by_role("button", name="Deploy…").count() == 0
    page.get_by_role("link", name="Algos", exact=True).click()
    page.get_by_role("table", name="Algos").get_by_role("link", name="bob-score").wait_for()
    assert page.errors == []

    page.get_by_role("button", name="Sign out").click()
    login(page, url, keys["alice"])
    page.get_by_role("link", name="alice-shop").wait_for()
    assert "bob-shop" not in page.content() and page.get_by_label("Owner").count() == 0
    page.goto(f"{url}/ui/#/deployments/bob/bob-live")  # by its address: not found
    page.get_by_test_id("error-state").filter(has_text="404").wait_for()
    assert all("404" in e for e in page.errors), page.errors
    page.errors.clear()


def test_a_key_revoked_while_the_console_is_open_says_so_on_the_next_call(registry, keys, page):
    key = registry.key("erin")
    login(page, registry.url, key)
    page.get_by_role("link", name="Designer", exact=True).click()
    sync_api.expect(page.get_by_test_id("problems")).not_to_be_empty()  # its first check is done
    registry.revoke(key)
    page.get_by_label("Pipeline name").fill("after-revoke")
    page.get_by_label("Pipeline name").press("Tab")  # a change: the designer validates it
    refused = page.get_by_test_id("key-refused")
    refused.wait_for()
    assert "revoked or is invalid" in refused.inner_text()
    assert page.get_by_role("heading", name="Sign in again").count() == 1
    assert page.get_by_label("API key").evaluate("e => e === document.activeElement")
    assert page.evaluate("sessionStorage.length") == 0  # the refused key is forgotten
    shot(page, "32-key-revoked")
    assert all("401" in e for e in page.errors), page.errors
    page.errors.clear()


def test_a_deployment_shows_its_components_updates_keeps_history_and_messages(tmp_path, page):
    """Replicas and lag from the registry (the `algorail status` reading), an update to
    another pipeline version from the console, the history of every state change, the
    last messages of a pipe, and a broker going down shown as such."""
    own = Registry(tmp_path)
    key = own.key("alice", "--admin")  # local deployments need an admin key
    broker = EmbeddedBroker().start()
    try:
        with RegistryClient(own.url, key) as client:
            client.push(hello("1.0.0", "first"))
            client.push(hello("1.1.0", "second"))
            client.deploy("alice/hello:1.0.0", "hello", "local",
                          {"workdir": str(EXAMPLES), "bootstrapServers": broker.bootstrap_servers})
            running = client.wait("alice", "hello", timeout=120)
            assert running["state"] == "running", running["message"]
        answer = httpx.post(f"{running['runtime']['url']}/alice/hello/in?sync=true",
                            json={"text": "watch me"}, headers={"traceparent": TRACEPARENT},
                            timeout=60)
        assert answer.status_code == 200, answer.text

        login(page, own.url, key)
        page.goto(f"{own.url}/ui/#/deployments/alice/hello")
        components = page.get_by_role("table", name="Component status")
        row = components.locator("tr", has_text="upper")
        row.wait_for(timeout=30_000)
        api = httpx.get(f"{own.url}/v1/deployments/alice/hello/components",
                        headers={"authorization": f"Bearer {key}"}, timeout=30).json()
        upper = next(c for c in api["components"] if c["name"] == "upper")
        assert upper["kind"] == "algo" and upper["replicas"].endswith("/1")
        assert upper["lag"] == 0  # the one message was consumed and committed
        cells = row.locator("td").all_inner_texts()
        assert cells[:4] == ["upper", "algo", upper["state"], upper["replicas"]]
        assert cells[4] == "0"
        shot(page, "33-deployment-components")

        page.get_by_role("button", name="Update…").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Version of alice/hello").select_option("1.1.0")
        shot(page, "34-deployment-update")
        dialog.get_by_role("button", name="Update").click()
        page.locator(".facts").get_by_role("link", name="alice/hello:1.1.0").wait_for(
            timeout=120_000)
        page.locator(".facts .badge-running").wait_for(timeout=120_000)
        history = page.get_by_test_id("history").locator("li")
        said = [history.nth(i).inner_text() for i in range(history.count())]
        states = [line.split()[0] for line in said]
        assert states == ["running", "starting", "running", "starting"], said  # newest first
        assert "alice/hello:1.1.0" in said[0] and "alice/hello:1.0.0" in said[-1]
        shot(page, "35-deployment-history")

        page.get_by_role("link", name="Messages", exact=True).click()
        table = page.get_by_test_id("messages")
        sync_api.expect(table.locator("tbody tr", has_text="watch me")).to_have_count(3)  # 3 pipes
        page.get_by_label("Pipe").select_option("api.in")
        sync_api.expect(table.locator("tbody tr")).to_have_count(1)
        text = table.locator("tbody tr").inner_text()
        assert TRACE_ID in text and "api.in" in text and "application/json" in text
        shot(page, "36-deployment-messages")
        auth = {"authorization": f"Bearer {key}"}
        for query, said in (("pipe=nowhere", "no pipe 'nowhere'"), ("last=many", "whole number")):
            refused = httpx.get(f"{own.url}/v1/deployments/alice/hello/messages?{query}",
                                headers=auth, timeout=30)
            assert refused.status_code == 422 and said in refused.json()["error"], refused.text

        broker.stop()  # the broker goes down under a running deployment
        page.get_by_role("button", name="Refresh").click()
        problem = page.get_by_test_id("messages-problem")
        problem.wait_for(timeout=60_000)
        said = problem.inner_text()
        assert "The broker cannot be read" in said and broker.bootstrap_servers in said, said
        shot(page, "37-broker-down")
        page.get_by_role("link", name="hello", exact=True).click()
        problem = page.get_by_test_id("components-problem")
        problem.wait_for(timeout=60_000)
        assert "The broker cannot be read" in problem.inner_text()
        shot(page, "37b-broker-down-components")
        page.errors.clear()  # the refused reads are logged as 409s
    finally:
        page.goto("about:blank")  # the page's own reads end before the servers stop
        with RegistryClient(own.url, key) as client:
            if client.deployment("alice", "hello")["state"] not in ("terminated", "failed"):
                client.terminate("alice", "hello")
        broker.stop()
        own.stop()


def test_the_designer_edits_joins_triggers_batch_retries_and_keeps_a_hand_layout(
        registry, keys, page):
    login(page, registry.url, keys["alice"])
    page.goto(f"{registry.url}/ui/#/designer/alice/alice-shop/1.0.0")
    canvas = page.get_by_test_id("canvas")
    canvas.locator('g[data-component="score"]').click()
    page.get_by_label("Join kind").select_option("outer")
    page.get_by_label("Window (ms)").first.fill("750")
    page.get_by_label("Window (ms)").first.press("Enter")
    page.get_by_label("Triggers (component.port, …)").fill("parse.order")
    page.get_by_label("Triggers (component.port, …)").press("Enter")
    page.get_by_label("Triggers join").select_option("any")
    page.get_by_label("Size").fill("0")  # below its minimum: refused by the form
    page.get_by_label("Size").press("Enter")
    page.get_by_test_id("refusal").filter(has_text="Size").wait_for()
    page.get_by_label("Size").fill("8")
    page.get_by_label("Size").press("Enter")
    page.get_by_label("Attempts").fill("5")
    page.get_by_label("Attempts").press("Enter")
    page.get_by_label("Backoff (ms)").fill("50")
    page.get_by_label("Backoff (ms)").press("Enter")
    # checked live by the registry's validator: a batch cannot follow an outer join
    problem = page.get_by_test_id("problems").get_by_text("cannot follow a outer join")
    problem.wait_for()
    assert canvas.locator('g[data-component="score"].node-problem').count() == 1
    shot(page, "38-designer-settings-problem")
    page.get_by_label("Join kind").select_option("inner")
    page.get_by_test_id("valid").wait_for()
    written = yaml.safe_load(page.get_by_test_id("yaml-editor").input_value())
    score = next(a for a in written["spec"]["algos"] if a["name"] == "score")
    assert score["join"] == {"type": "inner", "windowMs": 750}
    assert score["triggers"] == [{"from": "parse.order"}] and score["triggersJoin"] == "any"
    assert score["batch"] == {"size": 8} and score["retry"] == {"attempts": 5, "backoffMs": 50}
    shot(page, "39-designer-settings")

    # moved by hand: dragged, then nudged with the keyboard
    box = canvas.locator('g[data-component="reply"] rect.node-box')
    before = (float(box.get_attribute("x")), float(box.get_attribute("y")))
    box.scroll_into_view_if_needed()
    at = box.bounding_box()
    page.mouse.move(at["x"] + 60, at["y"] + 12)
    page.mouse.down()
    page.mouse.move(at["x"] + 60 - 140, at["y"] + 12 + 90, steps=6)
    page.mouse.up()
    sync_api.expect(box).not_to_have_attribute("x", str(int(before[0])))
    dragged = (float(box.get_attribute("x")), float(box.get_attribute("y")))
    assert dragged[0] < before[0] and dragged[1] > before[1], (before, dragged)
    page.keyboard.press("ArrowDown")  # the moved component keeps the focus: 20 further down
    sync_api.expect(box).to_have_attribute("y", str(int(dragged[1] + 20)))
    moved = (float(box.get_attribute("x")), float(box.get_attribute("y")))
    assert moved == (dragged[0], dragged[1] + 20)
    page.get_by_label("Version").fill("1.5.0")
    page.get_by_label("Version").press("Tab")
    page.get_by_test_id("valid").wait_for()
    shot(page, "40-designer-hand-layout")
    page.get_by_role("button", name="Save as new version").click()
    page.get_by_test_id("save-answer").get_by_role("link").click()

    graph = page.get_by_test_id("graph")
    kept = graph.locator('g[data-component="reply"] rect.node-box')
    kept.wait_for()
    assert (float(kept.get_attribute("x")), float(kept.get_attribute("y"))) == moved
    with RegistryClient(registry.url, keys["alice"]) as client:
        stored = client.pipeline_version("alice", "alice-shop", "1.5.0")["document"]
    layout = json.loads(stored["metadata"]["annotations"]["algorail.io/layout"])
    assert layout["reply"] == list(moved)
    page.get_by_role("link", name="Edit as new version").click()
    reopened = page.get_by_test_id("canvas").locator('g[data-component="reply"] rect.node-box')
    reopened.wait_for()
    assert (float(reopened.get_attribute("x")), float(reopened.get_attribute("y"))) == moved
    assert page.errors == []


def big_pipeline(owner: str, algos: int) -> dict:
    """An endpoint, a chain of `algos` algos and a response hook at its end."""
    spec = {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}], "algos": [], "hooks": [],
            "pipes": []}
    previous = "api.in"
    for i in range(algos):
        name = f"step-{i:02d}"
        spec["algos"].append({"name": name, "runtime": "python", "entrypoint": "m:f",
                              "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]})
        spec["pipes"].append({"from": previous, "to": f"{name}.in"})
        previous = f"{name}.out"
    spec["hooks"].append({"name": "done", "type": "response"})
    spec["pipes"].append({"from": previous, "to": "done"})
    return {"apiVersion": "algorail.io/v1", "kind": "Pipeline",
            "metadata": {"owner": owner, "name": "big", "version": "1.0.0"}, "spec": spec}


def test_a_50_component_pipeline_is_drawn_in_under_two_seconds(registry, keys, page):
    doc = big_pipeline("alice", 48)
    assert sum(len(v) for k, v in doc["spec"].items() if k != "pipes") == 50
    with RegistryClient(registry.url, keys["alice"]) as client:
        client.push(doc)
    login(page, registry.url, keys["alice"])
    page.get_by_role("link", name="alice-shop").wait_for()
    for address, testid in (("#/pipelines/alice/big/1.0.0", "graph"),
                            ("#/designer/alice/big/1.0.0", "canvas")):
        started = time.monotonic()
        page.evaluate(f"location.hash = {address!r}")
        page.get_by_test_id(testid).locator('g[data-component="step-47"]').wait_for()
        took = time.monotonic() - started
        print(f"{address}: 50 components drawn in {took:.2f} s")
        assert took < RENDER_BUDGET_S, f"{address} took {took:.2f} s"
        assert page.get_by_test_id(testid).locator("g.node").count() == 50
        last = page.get_by_test_id(testid).locator('g[data-component="step-47"] rect.node-box')
        last.scroll_into_view_if_needed()
        assert last.bounding_box()["width"] >= 90  # half size at least, not shrunk away
    page.get_by_test_id("valid").wait_for()
    shot(page, "41-designer-50-components")
    assert page.errors == []


def test_dialogs_and_sign_in_work_from_the_keyboard(registry, keys, page):
    page.goto(f"{registry.url}/ui/")
    assert page.get_by_label("API key").evaluate("e => e === document.activeElement")
    page.keyboard.type(keys["alice"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Enter")
    page.get_by_role("link", name="alice-shop").wait_for()
    page.goto(f"{registry.url}/ui/#/pipelines/alice/alice-shop/1.0.0")
    page.get_by_role("button", name="Deploy…").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_label("Deployment name").evaluate("e => e === document.activeElement")
    page.keyboard.press("Escape")
    sync_api.expect(dialog).to_have_count(0)
    page.get_by_role("tab", name="YAML").click()
    shown = page.get_by_test_id("yaml").inner_text()  # a secret is only ever its reference
    assert re.search(r"password: \"?\$\{secrets:shop/db:password\}", shown), shown
    assert page.errors == []


def test_algorail_dev_shows_the_last_messages_of_a_pipe(tmp_path, page):
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), work_dir=tmp_path / "work", cwd=EXAMPLES)
    try:
        dev.wait_ready()
        for text in ("first words", "second words"):
            answer = httpx.post(f"{dev.url}/alice/hello/in?sync=true", json={"text": text},
                                timeout=30)
            assert answer.status_code == 200, answer.text
        page.goto(f"{dev.url}/ui/#/messages")
        table = page.get_by_test_id("messages")
        rows = table.locator("tbody tr")
        sync_api.expect(rows).to_have_count(6)  # two runs on three pipes, newest first
        second_request = rows.nth(2).inner_text()  # after the 2nd run's answer and output
        assert "api.in" in second_request and "second words" in second_request, second_request
        page.get_by_label("Pipe").select_option("upper.result")
        sync_api.expect(rows).to_have_count(2)
        newest = rows.nth(0).inner_text()
        assert "upper.result" in newest and "SECOND WORDS" in newest, newest
        assert "FIRST WORDS" in rows.nth(1).inner_text()
        page.get_by_label("Last messages per partition").fill("1")
        page.get_by_role("button", name="Refresh").click()
        sync_api.expect(rows).to_have_count(1)
        shot(page, "42-dev-messages")
        assert page.errors == []
    finally:
        dev.stop()


def test_a_kubernetes_deployment_shows_the_state_its_operator_reports(cluster, kube_registry,
                                                                     page):
    """The Pipeline resource's status, as the operator writes it, is what the deployment's
    page shows: ready/desired replicas and last error per component."""
    ops = kube_registry["ops"]
    ops.push(ops_hello())
    ops.deploy("ops/hello:1.0.0", "hello", "kubernetes", {"namespace": "team-a"})
    assert ops.wait("ops", "hello")["state"] == "running"
    failing = 'pods "ops-hello-upper" is forbidden: exceeded quota'
    with httpx.Client(base_url=cluster.url, timeout=10) as kube:
        written = kube.patch(f"{pipeline_path('team-a', 'hello')}/status", headers={
            "Content-Type": "application/merge-patch+json"}, json={"status": {
                "components": {"upper": {"kind": "algo", "desiredReplicas": 2,
                                         "readyReplicas": 1, "lastError": failing}},
                "endpoints": ["/ops/hello/in"],
                "conditions": [
                    {"type": "Ready", "status": "False", "message": "waiting for upper"},
                    {"type": "Degraded", "status": "True", "message": f"upper: {failing}"}]}})
        assert written.status_code < 300, written.text
    login(page, ops.url, ops.http.headers["authorization"].removeprefix("Bearer "))
    page.goto(f"{ops.url}/ui/#/deployments/ops/hello")
    components = page.get_by_test_id("cluster-components")
    row = components.locator("tr", has_text="upper")
    assert row.locator("td").nth(2).inner_text() == "1/2"
    assert "exceeded quota" in row.inner_text()
    assert "degraded — upper: pods" in page.get_by_test_id("cluster-status").inner_text()
    assert "Pipeline hello" in page.get_by_text("Pipeline hello").inner_text()
    assert page.get_by_test_id("cluster-endpoints").inner_text() == "/ops/hello/in"
    shot(page, "45-kubernetes-deployment")
