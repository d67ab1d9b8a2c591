"""Decode any reasonable image file into RGB pixels, once.

Why one place: every path into the studio (training, the dataset check, Try it,
`studio predict`, the exported `predict.py` logic) must turn the same file into
the same pixels, whatever its mode (palette, grayscale, alpha, CMYK, 16-bit) or
EXIF orientation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                    ".avif", ".heic", ".heif",             # phone photos (HEIC through pillow-heif)
                    ".ppm", ".pgm", ".pbm", ".pnm"}        # GTSRB and many research sets
HEIF_EXTENSIONS = {".heic", ".heif"}
BACKGROUND = (255, 255, 255)  # transparent pixels become white, not black


def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF (iPhone photos) when pillow-heif is installed (it is, wherever a wheel exists)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


HEIF_READABLE = _register_heif()


class ImageDecodeError(ValueError):
    """A file that is not a readable image (with the reason in words)."""


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def image_files(items) -> list[Path]:
    """Files and folders (searched to any depth, images only, sorted) to the image files, in the order given."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p)))
        else:
            files.append(path)
    return files


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB the way a person would expect it to look."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, BACKGROUND)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image


def open_rgb(source, draft: int | None = None) -> Image.Image:
    """Open a path, file object or PIL image as an RGB image.

    `draft` lets JPEG decoding skip detail that a resize to `draft` px would
    throw away anyway (several times faster on large photos).
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    try:
        with Image.open(source) as image:
            if draft and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
            image.seek(0)  # first frame of a GIF or multi-page TIFF
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("image is too large to open safely (possible decompression bomb)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if not HEIF_READABLE and Path(str(getattr(source, "name", source))).suffix.lower() in HEIF_EXTENSIONS:
            raise ImageDecodeError("a HEIC/HEIF photo, and this machine cannot read those: install pillow-heif "
                                   "(pip install pillow-heif), or save the photo as JPEG") from exc
        raise ImageDecodeError(f"not a readable image ({exc.__class__.__name__}: {exc})") from exc


def resize_short_side_center_square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is `size`, then take the centred `size` x `size` square.

    With `size = input / crop_pct` this is the first half of timm's evaluation
    preprocessing; the second half (centre crop to the input size) is done on
    tensors, so the same cached square serves evaluation and augmentation.
    """
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def square_of(image: Image.Image, size: int) -> np.ndarray:
    """A decoded RGB image to the `size` x `size` x 3 uint8 square a run caches (see above)."""
    return np.array(resize_short_side_center_square(image, size), dtype=np.uint8)


def decode_square(source, size: int) -> np.ndarray:
    """File to a `size` x `size` x 3 uint8 array (see resize_short_side_center_square)."""
    return square_of(open_rgb(source, draft=size), size)
