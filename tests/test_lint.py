"""ruff, with the project's settings ([tool.ruff] in pyproject.toml), as part of the suite, so the README's
test command and `.ci/run` lint the code as well as test it."""
import subprocess
import sys

from helpers import REPO


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_is_installed():
    """pyproject.toml names the packages a (non-editable) install copies: a new one left out there works
    from a checkout and breaks only for the people who pip install the studio."""
    import tomllib
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts) for top in ("studio", "components")
             for init in (REPO / top).rglob("__init__.py")}
    assert found == listed, f"missing in pyproject.toml: {sorted(found - listed)}; gone: {sorted(listed - found)}"
