"""Short-lived files the studio hands out for download (export zips, data reports, dataset zips).

Each download gets its own folder under one scratch root, and making a new one first
removes folders older than `MAX_AGE_SECONDS`: a studio left running for weeks keeps
only the last day's downloads instead of every one it ever made. (Gradio's own copies
of served files are cleaned by `delete_cache` in `components.app`.)
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MAX_AGE_SECONDS = 24 * 3600


def root() -> Path:
    folder = Path(tempfile.gettempdir()) / "transfer-studio-scratch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clean(max_age: float = MAX_AGE_SECONDS) -> int:
    """Remove scratch folders last changed more than `max_age` seconds ago; returns how many."""
    cutoff, removed = time.time() - max_age, 0
    for folder in root().iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
                removed += 1
        except OSError:  # another session removed it first, or it is in use: next time
            continue
    return removed


def new_folder(prefix: str) -> Path:
    """A fresh folder for one download (older ones are cleaned first)."""
    clean()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root()))
