"""Rebuild assets/example/hymenoptera from ../shared/datasets/hymenoptera_data.

Why: the studio must demo on a fresh machine with no upload and no network, so a
downscaled copy of the real ants/bees set ships in the repository. Flaws are kept
on purpose (the GIF placeholder, the .jpeg extension): the studio must cope with them.
"""
import shutil
import sys
from pathlib import Path

from PIL import Image

LONGEST_SIDE = 320


def main(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() not in (".jpg", ".jpeg"):
            shutil.copyfile(path, out)  # keep odd files (the GIF) byte for byte
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
            im.save(out, "JPEG", quality=82, optimize=True)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent / "shared/datasets/hymenoptera_data"
    main(source, here / "assets/example/hymenoptera")
