"""The web console in a real browser: Debian's Chromium driven by Playwright, against a real
`algorail registry serve` process. Screenshots of each page go to out/console-screenshots/."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES
from test_registry_deploy import RegistryProcess

from algorail.cli import cli
from algorail.registry.client import RegistryClient

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
        assert client.wait("alice", "shop", timeout=60)["state"] == "failed"  # no helm CLI
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
    """A fresh tab at 1280x800 that fails the test on any console error or page exception."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    yield tab
    context.close()


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
    assert "helm" in page.get_by_test_id("message").inner_text()
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


def test_the_console_files_are_served_with_their_security_headers(registry):
    index = httpx.get(f"{registry.url}/ui/")
    assert index.status_code == 200 and 'src="app.js"' in index.text
    assert "default-src 'self'" in index.headers["content-security-policy"]
    script = httpx.get(f"{registry.url}/ui/app.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert httpx.get(f"{registry.url}/ui", follow_redirects=False).status_code in (307, 308)
    assert httpx.get(f"{registry.url}/ui/nothing.js").status_code == 404



def test_the_curl_of_a_running_deployment_works_as_pasted(tmp_path, page):
    own = Registry(tmp_path)  # local deployments from examples/ are allowed, for admin keys
    key = own.key("alice", "--admin")  # local deployments need an admin key
    try:
        with RegistryClient(own.url, key) as client:
            client.push(yaml.safe_load((EXAMPLES / "hello.yaml").read_text()))
            client.deploy("alice/hello:1.0.0", "hello", settings={"workdir": str(EXAMPLES)})
            running = client.wait("alice", "hello", timeout=120)
            assert running["state"] == "running", running["message"]
        login(page, own.url, key)
        page.get_by_role("link", name="Deployments", exact=True).click()
        page.get_by_role("link", name="hello", exact=True).click()
        command = page.get_by_test_id("curl").inner_text()
        shot(page, "11-running-deployment")
        answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert '"TEXT"' in answer.stdout, (command, answer.stdout, answer.stderr)
        page.get_by_role("button", name="Terminate…").click()
        page.get_by_role("dialog").get_by_role("button", name="Terminate").click()
        page.locator(".badge-terminated").first.wait_for(timeout=30_000)
        assert page.errors == []
    finally:
        with RegistryClient(own.url, key) as client:  # whatever happened above, stop dev
            if client.deployment("alice", "hello")["state"] != "terminated":
                client.terminate("alice", "hello")
                client.wait("alice", "hello", timeout=30)
        own.stop()
