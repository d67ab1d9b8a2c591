"""Where the studio keeps its files.

Everything the studio writes lives under one workspace folder (`STUDIO_HOME`,
default `~/.transfer_studio`), so a user can find, back up or delete it, and
tests can point it at a temporary folder.
"""
import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
EXAMPLE_DATASET = ASSETS_DIR / "example" / "hymenoptera"


def home() -> Path:
    """The workspace folder, created on first use."""
    root = Path(os.environ.get("STUDIO_HOME", Path.home() / ".transfer_studio")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return _sub("runs")


def weights_dir() -> Path:
    return _sub("weights")


def uploads_dir() -> Path:
    return _sub("uploads")


def datasets_dir() -> Path:
    """Datasets made or extended in the browser: ordinary class folders, one folder per dataset."""
    return _sub("datasets")
