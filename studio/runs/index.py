"""The workspace's index of run folders that live outside its own runs folder.

`studio train DATA --out somewhere/x` writes a complete run wherever it is asked to, so listing
the workspace's `runs/` folder alone would miss it. Every run folder made outside `runs/` is
remembered here, one JSON line per folder, in `<workspace>/run-index.jsonl`. Lines are only
appended (a short append is atomic, so two processes never mix theirs), and reading tolerates
folders that were moved or deleted since: they are reported as missing, never as errors, and
their lines are kept, because a folder on an unplugged drive comes back when the drive does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from studio import paths
from studio.runs.folder import RunFolder

INDEX_FILE = "run-index.jsonl"


def index_path() -> Path:
    return paths.home() / INDEX_FILE


def is_run_folder(folder: Path) -> bool:
    """A folder the studio wrote a run into (it holds the run's config or status)."""
    return RunFolder(folder).is_run()


def _inside(folder: Path, root: Path) -> bool:
    try:
        folder.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def remember(folder: str | Path) -> None:
    """Note a run folder outside the workspace's runs folder (once; those inside are found anyway)."""
    folder = Path(folder).resolve()
    if _inside(folder, paths.runs_dir()) or folder in _indexed():
        return
    line = json.dumps({"path": str(folder)}) + "\n"
    try:
        handle = os.open(index_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(handle, line.encode())
        finally:
            os.close(handle)
    except OSError:
        pass   # a read-only workspace: the run itself is complete; `studio runs PATH` still finds it


def _indexed() -> list[Path]:
    """Every folder ever noted, oldest first, each once; a damaged line is skipped."""
    try:
        lines = index_path().read_text().splitlines()
    except OSError:
        return []
    seen: dict[Path, None] = {}
    for line in lines:
        try:
            seen.setdefault(Path(json.loads(line)["path"]), None)
        except (ValueError, KeyError, TypeError):
            continue
    return list(seen)


def indexed_folders() -> tuple[list[Path], list[Path]]:
    """(run folders that are still there, folders that moved or were deleted since)."""
    present, missing = [], []
    for folder in _indexed():
        (present if is_run_folder(folder) else missing).append(folder)
    return present, missing


def run_folders_at(locations) -> tuple[list[Path], list[str]]:
    """The run folders a person pointed at: each path is a run folder or a folder of run folders.

    Returns (run folders, one line per path that holds no run, saying so). Found folders are
    remembered, so the Runs page lists them from then on.
    """
    found: dict[Path, None] = {}
    problems = []
    for location in locations:
        path = Path(location).expanduser()
        if is_run_folder(path):
            found.setdefault(path.resolve(), None)
            continue
        inner = sorted(p for p in path.iterdir() if is_run_folder(p)) if path.is_dir() else []
        if inner:
            for folder in inner:
                found.setdefault(folder.resolve(), None)
        elif not path.exists():
            problems.append(f"{location}: no such folder.")
        else:
            problems.append(f"{location}: not a run folder, and no run folder inside it.")
    for folder in found:
        remember(folder)
    return list(found), problems
