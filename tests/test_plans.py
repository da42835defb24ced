"""Following a folder of plans (`plans.PlanWatcher` on a `DirectorySource`): what counts as
a change, and a file that is not a plan never takes the version it replaced down."""

from __future__ import annotations

import os

import pytest
from conftest import EXAMPLES

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.runtime.plans import DirectorySource, PlanSourceError, PlanWatcher


@pytest.fixture
def plans(tmp_path):
    plan = compile_plan(load_pipeline(EXAMPLES / "hello.yaml"))
    changed = plan.model_copy(update={"version": "1.1.0"})
    return tmp_path, plan, changed


def _kinds(changes) -> list[tuple[str, str]]:
    return [(c.key, "added" if c.old is None else "removed" if c.new is None else "updated")
            for c in changes]


def test_added_updated_rewritten_and_removed(plans):
    folder, plan, changed = plans
    seen = []
    watcher = PlanWatcher(DirectorySource(folder))
    watcher.subscribe(seen.append)
    assert watcher.poll() == []
    (folder / "hello.json").write_text(plan.to_json())
    (folder / ".hidden.json").write_text(plan.to_json())  # a file being written, say
    (folder / "notes.txt").write_text("not a plan")
    assert _kinds(watcher.poll()) == [("hello.json", "added")]
    assert watcher.plans["hello.json"] == plan
    (folder / "hello.json").write_text(plan.to_json(indent=None))  # same plan, other text
    assert watcher.poll() == []
    (folder / "hello.json").write_text(changed.to_json())
    (update,) = watcher.poll()
    assert (update.old.version, update.new.version) == ("1.0.0", "1.1.0")
    os.remove(folder / "hello.json")
    assert _kinds(watcher.poll()) == [("hello.json", "removed")]
    assert len(seen) == 3 and watcher.plans == {}


def test_a_file_that_is_not_a_plan_keeps_the_version_before_it(plans, caplog):
    folder, plan, changed = plans
    watcher = PlanWatcher(DirectorySource(folder))
    (folder / "hello.json").write_text(plan.to_json())
    watcher.poll()
    (folder / "hello.json").write_text('{"owner": "half-written"')
    assert watcher.poll() == [] and watcher.plans["hello.json"] == plan
    assert "hello.json is not a plan written by `algorail plan -o`" in caplog.text
    assert "the version before it stays served" in caplog.text
    assert watcher.poll() == []  # logged once, not every look
    assert caplog.text.count("is not a plan") == 1
    (folder / "hello.json").write_text(changed.to_json())
    assert _kinds(watcher.poll()) == [("hello.json", "updated")]


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PlanSourceError, match="the plans folder .* does not exist"):
        PlanWatcher(DirectorySource(tmp_path / "nowhere")).poll()
