"""`algorail graph --format svg|png`: a valid image with every component's name, drawn by
Graphviz (`dot` from the system package)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from algorail.cli import cli

pytestmark = pytest.mark.skipif(shutil.which("dot") is None,
                                reason="Graphviz's dot is not installed (.ci/run installs it)")
COMPONENTS = ["api", "upper", "count", "router", "combine", "summary", "long-reviews"]


def test_svg_is_valid_and_names_every_component(tmp_path):
    out = tmp_path / "reviews.svg"
    result = CliRunner().invoke(cli, ["graph", str(EXAMPLES / "reviews.yaml"), "--format",
                                      "svg", "-o", str(out)])
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert set(COMPONENTS) <= texts


def test_png_is_a_png_and_needs_a_file(tmp_path):
    out = tmp_path / "reviews.png"
    result = CliRunner().invoke(cli, ["graph", str(EXAMPLES / "reviews.yaml"), "--format",
                                      "png", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 0  # drawn left to right
    no_file = CliRunner().invoke(cli, ["graph", str(EXAMPLES / "reviews.yaml"), "--format",
                                       "png"])
    assert no_file.exit_code == 1 and "a PNG needs -o FILE" in no_file.output
