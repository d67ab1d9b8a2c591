"""CI must not skip a test silently: with STUDIO_NO_SKIPS=1 (set by .ci/run) a skip is a failure."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _pytest(tmp_path: Path, no_skips: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('the tool is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "STUDIO_NO_SKIPS": no_skips}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_skipping.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_skip_fails_when_skips_are_not_allowed(tmp_path):
    result = _pytest(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout and "the tool is not installed" in result.stdout


def test_a_skip_stays_a_skip_on_a_developer_machine(tmp_path):
    result = _pytest(tmp_path, "")
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout + result.stderr


def test_ci_forbids_skips():
    assert "STUDIO_NO_SKIPS=1" in (TESTS.parent / ".ci" / "run").read_text()
