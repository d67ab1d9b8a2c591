"""ruff, with the project's settings ([tool.ruff] in pyproject.toml), as part of the suite, so the README's
test command and `.ci/run` lint the code as well as test it."""
import subprocess
import sys

from helpers import REPO


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
