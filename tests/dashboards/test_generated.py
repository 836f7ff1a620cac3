"""The committed provisioning tree is exactly what ``python -m dashboards.build`` writes."""

from __future__ import annotations

import subprocess
import sys

from dashboards import build
from tests.dashboards.collect import ROOT


def test_regenerating_gives_no_diff(tmp_path):
    # As a developer runs it (a child process, offline: the SDK is a local package).
    r = subprocess.run([sys.executable, "-m", "dashboards.build", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(fresh) == set(build.render())
    committed_paths = {p.relative_to(ROOT).as_posix() for sub in ("json", "provisioning")
                       for p in (ROOT / sub).rglob("*") if p.is_file()}
    assert committed_paths == set(fresh), "files in dashboards/ that the generator does not write, or the reverse"
    for rel, text in fresh.items():
        assert (ROOT / rel).read_text() == text, f"{rel} differs from the generator's output: run python -m dashboards.build"


def test_render_is_deterministic():
    assert build.render() == build.render()
