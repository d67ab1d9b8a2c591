"""Unpack an uploaded zip safely, once, into the workspace (see `extract_zip`), and read back what was
not unpacked and why (`read_manifest`)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from studio import paths
from studio.data.samples import NOT_UNPACKED, DatasetError

MAX_ZIP_MEMBERS = int(os.environ.get("STUDIO_MAX_ZIP_MEMBERS", 200_000))
MAX_ZIP_BYTES = int(os.environ.get("STUDIO_MAX_ZIP_BYTES", 20 * 1024**3))
MANIFEST = ".complete"   # written last into an extraction folder: the zip's name, what was not unpacked
_SAFETY = f"{NOT_UNPACKED}, refused for safety"


def read_manifest(folder: Path) -> dict | None:
    """What `extract_zip` wrote about an extraction folder (None if it is not a finished one)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "archive" in manifest else None


def _refusal(member: zipfile.ZipInfo, parts: list[str]) -> str | None:
    """Why a zip member is not written at all (None if it may be): unsafe names and types, unreadable data."""
    name = member.filename.replace("\\", "/")
    mode = stat.S_IFMT(member.external_attr >> 16)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return (f"{_SAFETY}: an absolute path would point outside the upload's folder. Zip the folder "
                "again so the names are relative (like cats/photo.jpg).")
    if ".." in parts:
        return (f"{_SAFETY}: the name contains '..', which would point outside the upload's folder. Zip the "
                "folder again from inside it (names like cats/photo.jpg).")
    if mode == stat.S_IFLNK:
        return (f"{_SAFETY}: a symbolic link, not a file (links are never followed). Put the file itself in "
                "the zip (for example, zip without --symlinks).")
    kinds = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe",
             stat.S_IFSOCK: "a socket"}
    if mode in kinds:
        return f"{_SAFETY}: {kinds[mode]}, not a file. Leave it out of the zip."
    if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"{_SAFETY}: not a plain file (file type {oct(mode)}). Leave it out of the zip."
    if member.is_dir() or mode == stat.S_IFDIR:
        return None
    if not parts:
        return f"{NOT_UNPACKED}: the entry has no file name. Make the zip again from the original files."
    if member.flag_bits & 0x1 or member.compress_type == 99:
        return (f"{NOT_UNPACKED}: the file is encrypted (password-protected) and the studio cannot read it. "
                "Zip it again without a password.")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        method = zipfile.compressor_names.get(member.compress_type, f"method {member.compress_type}")
        return (f"{NOT_UNPACKED}: compressed with {method}, which the studio cannot read. Zip it again with "
                "ordinary (deflate) compression.")
    return None


def extract_zip(archive: Path, destination: Path | None = None) -> Path:
    """Extract a zip safely into the workspace and return the folder.

    Members that would land outside the folder (`..`, absolute paths), links and
    device files are never written; nor are encrypted, damaged or duplicate ones.
    Each of them is named, with the reason, in the folder's manifest (`read_manifest`),
    so the report can list them. Limits on member count and total size are checked
    before anything is extracted. The same archive is extracted once.
    """
    archive = Path(archive)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    destination = Path(destination or paths.uploads_dir() / f"{archive.stem[:40]}-{digest.hexdigest()[:12]}")
    if read_manifest(destination) is not None:
        return destination
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{archive.name} is not a readable .zip file ({exc}).") from exc
    with zf:
        _check_limits(zf.infolist())
        root = destination.resolve()
        partial = destination.with_name(destination.name + ".partial")   # whole or not at all
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        refused, renamed = _unpack_members(zf, partial)
        manifest = {"archive": archive.name, "refused": refused, "renamed": renamed}
        (partial / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(partial, root)
    return destination


def _check_limits(members: list[zipfile.ZipInfo]) -> None:
    """Refuse, before writing anything, a zip with too many entries or one that unpacks too big."""
    if len(members) > MAX_ZIP_MEMBERS:
        raise DatasetError(f"The zip holds {len(members):,} entries; the limit is {MAX_ZIP_MEMBERS:,}.")
    total = sum(m.file_size for m in members)
    if total > MAX_ZIP_BYTES:
        raise DatasetError(f"The zip would unpack to {total / 1e9:.1f} GB; the limit is "
                           f"{MAX_ZIP_BYTES / 1e9:.1f} GB (set STUDIO_MAX_ZIP_BYTES to change it).")


def _unpack_members(zf: zipfile.ZipFile, partial: Path) -> tuple[list[dict], dict[str, str]]:
    """Write every safe member under `partial`; returns (refused members with their reasons,
    {name as written: name in the zip} for members whose names had to change)."""
    inside = str(partial.resolve()) + os.sep
    refused: list[dict] = []
    renamed: dict[str, str] = {}
    written: dict[str, str] = {}     # path in the folder -> the member written there
    for member in zf.infolist():
        name = member.filename
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        reason = _refusal(member, parts)
        if reason is None and not parts:
            continue                   # "./": the upload's own top folder
        relative = "/".join(parts)
        dir_only = member.is_dir() or stat.S_IFMT(member.external_attr >> 16) == stat.S_IFDIR
        target = (partial / Path(*parts)).resolve() if parts else partial
        if reason is None and not str(target).startswith(inside):
            reason = f"{_SAFETY}: it would be written outside the upload's folder. Rename it in the zip."
        if reason is None and relative == MANIFEST:
            reason = f"{NOT_UNPACKED}: a hidden file with the name the studio keeps its notes under; ignored"
        if reason is None and relative in written and not dir_only:
            reason = (f"{NOT_UNPACKED}: an earlier file in the zip, '{written[relative]}', has the same name, "
                      "and only the first is used. Rename one of them.")
        if reason is None:
            reason = _write_member(zf, member, target, partial.resolve(), dir_only)
        if reason is not None:
            refused.append({"path": name, "reason": reason})
            continue
        if not dir_only:
            written[relative] = name
        shown = relative + ("/" if dir_only else "")
        if name != shown:
            renamed[shown] = name
    return refused, renamed


def _write_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, top: Path,
                  dir_only: bool) -> str | None:
    """Unpack one member to `target` (a new file; never one already there). The reason if it can't be."""
    for folder in target.parents:
        if folder == top or top not in folder.parents:
            break
        if folder.exists() and not folder.is_dir():
            return (f"{NOT_UNPACKED}: its folder '{folder.relative_to(top).as_posix()}' has the same name as a "
                    "file in the zip. Rename the file or the folder.")
    if target.is_dir() and not dir_only:
        return f"{NOT_UNPACKED}: a folder in the zip has the same name as this file. Rename one of them."
    if target.exists() and dir_only and not target.is_dir():
        return f"{NOT_UNPACKED}: a file in the zip has the same name as this folder. Rename one of them."
    if target.exists() and not dir_only:   # same name but for capitals, on a disk that ignores them
        return (f"{NOT_UNPACKED}: another file in the zip has the same name apart from capital letters, which "
                "this disk does not tell apart. Rename one of them.")
    created = False
    try:
        if dir_only:
            target.mkdir(parents=True, exist_ok=True)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(target, "xb") as dst:
            created = True
            shutil.copyfileobj(src, dst, 1 << 20)
        return None
    except RuntimeError:   # zipfile's words for "encrypted, password required"
        reason = (f"{NOT_UNPACKED}: the file is encrypted (password-protected) and the studio cannot read it. "
                  "Zip it again without a password.")
    except NotImplementedError as exc:
        reason = f"{NOT_UNPACKED}: stored in a way the studio cannot read ({exc}). Zip it again normally."
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        reason = f"{NOT_UNPACKED}: its data in the zip is damaged ({exc}). Make the zip again from the original files."
    except OSError as exc:
        reason = (f"{NOT_UNPACKED}: the disk refused it ({exc.strerror or exc}); the name may be too long or hold "
                  "a character this disk does not allow. Rename it.")
    if created:
        target.unlink(missing_ok=True)
    return reason

