"""Each template, end to end: generate, `algorail install` it, see it in `algorail plugins`,
run the generated project's own tests, and use the three plugins in one pipeline.

Everything is installed into a throwaway virtualenv that sees the packages of the
environment running the tests (algorail and its dependencies visible, nothing leaking
into that environment); every command runs with that venv's interpreter.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from algorail.testing import dev_mode_available

pytestmark = pytest.mark.slow  # builds a venv and installs three projects into it

PROJECTS = {"algo": "algorail-sentiment", "connector": "algorail-jsonl-sink",
            "hook": "algorail-audit-log"}

COMBINED = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: qa, name: reviews-plugins, version: 1.0.0}
spec:
  endpoints:
    - name: api
      paths: [{name: review}]
  algos:
    - name: score
      runtime: python
      entrypoint: algorail_sentiment.algo:predict
  hooks:
    - name: audit
      type: audit-log
      config: {path: AUDIT}
  dataSinks:
    - name: archive
      connector: jsonl-sink
      config: {file: ARCHIVE}
  pipes:
    - {from: api.review, to: score.in}
    - {from: score.out, to: audit}
    - {from: score.out, to: archive.in}
"""


class Venv:
    def __init__(self, root: Path):
        self.root = root
        self.python = root / "bin" / "python"

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 240,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.python), *args], capture_output=True, text=True,
                                cwd=cwd, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
        return result

    def algorail(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "algorail.cli", *args, **kw)

    def plugins(self) -> dict[str, dict]:
        return {p["name"]: p for p in json.loads(self.algorail("plugins", "--json").stdout)}


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    """A venv of its own whose sys.path ends with this environment's site-packages (a
    .pth file runs `site.addsitedir` on each, so their own .pth files, such as an editable
    algorail's, apply too). `--system-site-packages` would show the base interpreter's
    packages instead, which may lack algorail's dependencies."""
    root = tmp_path_factory.mktemp("plugin-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=60)
    venv = Venv(root)
    own = json.loads(venv.run("-c", "import json, site; "
                                     "print(json.dumps(site.getsitepackages()))").stdout)[0]
    lines = [f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages()]
    Path(own, "algorail-test-parent-env.pth").write_text("".join(lines))
    return venv


@pytest.fixture(scope="module")
def projects(venv, tmp_path_factory) -> dict[str, Path]:
    """The three generated projects, installed with `algorail install` into the venv."""
    work = tmp_path_factory.mktemp("generated")
    for kind in PROJECTS:
        venv.algorail("new", kind, "--no-input", "-o", str(work))
    paths = {kind: work / name for kind, name in PROJECTS.items()}
    venv.algorail("install", "--pip-arg=--no-deps", "--pip-arg=-q",
                  *(str(p) for p in paths.values()))
    return paths


@pytest.fixture
def combined(tmp_path) -> tuple[Path, Path, Path]:
    """The pipeline using all three plugins, and the files its hook and sink write."""
    audit, archive = tmp_path / "audit.jsonl", tmp_path / "archive.jsonl"
    pipeline = tmp_path / "reviews.yaml"
    pipeline.write_text(COMBINED.replace("AUDIT", str(audit)).replace("ARCHIVE", str(archive)))
    return pipeline, audit, archive


def test_installed_plugins_are_listed_in_their_environment_only(venv, projects):
    plugins = venv.plugins()
    assert plugins["algorail-sentiment"]["provides"] == {"algos": ["sentiment"]}
    assert plugins["algorail-audit-log"]["provides"] == {"hook types": ["audit-log"]}
    assert plugins["algorail-jsonl-sink"]["provides"] == {"connectors": ["jsonl-sink"]}
    assert {plugins[name]["status"] for name in PROJECTS.values()} == {"ok"}
    shared = subprocess.run([sys.executable, "-m", "algorail.cli", "plugins", "--json"],
                            capture_output=True, text=True, check=True)
    assert not {p["name"] for p in json.loads(shared.stdout)} & set(PROJECTS.values())


@pytest.mark.parametrize("kind", sorted(PROJECTS))
def test_generated_project_tests_pass(venv, projects, kind):
    result = venv.run("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", cwd=projects[kind],
                      check=False)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in summary and "error" not in summary
    if dev_mode_available():
        assert "skipped" not in summary, f"the dev-mode test was skipped:\n{result.stdout}"


def test_the_three_plugins_in_one_pipeline(venv, projects, combined):
    pipeline, audit, archive = combined
    assert "ok (qa/reviews-plugins:1.0.0)" in venv.algorail("validate", str(pipeline)).stdout
    plan = json.loads(venv.algorail("plan", str(pipeline), "--json").stdout)
    assert [(h["name"], h["type"]) for h in plan["hooks"]] == [("audit", "audit-log")]
    assert [(c["name"], c["connector"]) for c in plan["connectors"]] == [("archive", "jsonl-sink")]
    script = textwrap.dedent(f"""
        import json
        from algorail.testing import kafka_connect_config, run_algo
        print(json.dumps({{
            "connect": kafka_connect_config("jsonl-sink", {{"file": "{archive}"}}),
            "scored": run_algo("sentiment", {{"text": "great service"}}),
        }}))
    """)
    out = json.loads(venv.run("-c", script).stdout)
    assert out["connect"]["connector.class"].endswith("FileStreamSinkConnector")
    assert out["connect"]["file"] == str(archive)
    assert out["scored"] == {"text": "great service", "score": 1, "label": "positive"}


@pytest.mark.skipif(not dev_mode_available(), reason="algorail dev is not available yet")
def test_the_three_plugins_run_together_in_dev_mode(venv, projects, combined):
    pipeline, audit, archive = combined
    script = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        from algorail.testing import DevPipeline
        with DevPipeline({str(pipeline)!r}) as dev:
            response = dev.post("review", {{"text": "terrible food"}})
            archive = Path({str(archive)!r})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (archive.exists() and archive.read_text()):
                time.sleep(0.2)
            print(json.dumps({{"status": response.status_code, "body": response.text}}))
    """)
    out = json.loads(venv.run("-c", script, timeout=180).stdout.strip().splitlines()[-1])
    assert out["status"] == 200, out
    expected = {"text": "terrible food", "score": -1, "label": "negative"}
    assert [json.loads(line)["payload"] for line in audit.read_text().splitlines()] == [expected]
    assert [json.loads(line) for line in archive.read_text().splitlines()] == [expected]


def test_uninstall_removes_a_plugin(venv, projects):
    venv.algorail("uninstall", "-y", "algorail-audit-log")
    plugins = venv.plugins()
    assert "algorail-audit-log" not in plugins
    assert "algorail-sentiment" in plugins
