"""Every pixel mode becomes the RGB a person would expect."""
import numpy as np
import pytest
from PIL import Image

from studio.data.imaging import ImageDecodeError, decode_square, open_rgb


def test_rgba_transparency_becomes_white_not_black(tmp_path):
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 20, 40))
    image.save(tmp_path / "a.png")
    rgb = np.asarray(open_rgb(tmp_path / "a.png"))
    assert tuple(rgb[20, 30]) == (255, 255, 255) and tuple(rgb[20, 5]) == (255, 0, 0)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((5, 5), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "p.gif", transparency=0)
    rgb = np.asarray(open_rgb(tmp_path / "p.gif"))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[5, 5]) == (0, 255, 0)


def test_sixteen_bit_grayscale_is_scaled(tmp_path):
    array = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    Image.fromarray(array).save(tmp_path / "g16.png")
    rgb = np.asarray(open_rgb(tmp_path / "g16.png"))
    assert rgb.shape == (64, 64, 3) and rgb.max() == 255 and rgb.min() == 0


def test_cmyk_and_grayscale_alpha(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert open_rgb(tmp_path / "c.jpg").mode == "RGB"
    Image.new("LA", (8, 8), (100, 255)).save(tmp_path / "la.png")
    assert tuple(np.asarray(open_rgb(tmp_path / "la.png"))[0, 0]) == (100, 100, 100)


def test_exif_orientation_applied(tmp_path):
    image = Image.new("RGB", (60, 30), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert open_rgb(tmp_path / "rot.jpg").size == (30, 60)


def test_decode_square_shape_and_garbage(tmp_path):
    Image.new("RGB", (300, 200), (10, 20, 30)).save(tmp_path / "x.jpg")
    assert decode_square(tmp_path / "x.jpg", 64).shape == (64, 64, 3)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageDecodeError):
        decode_square(tmp_path / "bad.jpg", 64)


def test_phone_and_research_formats_are_read_as_the_same_pixels(tmp_path):
    """HEIC (iPhone; pillow-heif), AVIF, and PPM/PGM (GTSRB and other research sets): a dataset of them opens
    like any other and each decodes to the picture saved (lossy formats within a few levels)."""
    from studio.data.imaging import HEIF_READABLE, is_image_name
    from studio.data.sources import open_dataset

    assert HEIF_READABLE, "pillow-heif is a dependency wherever a wheel exists (pyproject.toml)"
    colours = {"red": (200, 30, 40), "green": (30, 180, 60)}
    for label, colour in colours.items():
        picture = Image.new("RGB", (64, 48), colour)
        folder = tmp_path / label
        folder.mkdir()
        for ext in ("heic", "avif", "ppm"):
            picture.save(folder / f"photo.{ext}")
        picture.convert("L").save(folder / "photo.pgm")
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ["green", "red"] and not dataset.skipped
    assert sorted({p.rsplit(".", 1)[1] for p in dataset.samples.path}) == ["avif", "heic", "pgm", "ppm"]
    for path, label in zip(dataset.samples.path, dataset.samples.label):
        pixels = np.asarray(open_rgb(path), dtype=float)
        expected = colours[label] if not path.endswith(".pgm") else (Image.new("RGB", (1, 1), colours[label])
                                                                    .convert("L").getpixel((0, 0)),) * 3
        assert pixels.shape == (48, 64, 3) and np.abs(pixels.mean(axis=(0, 1)) - expected).max() < 8, path
    assert all(is_image_name(f"x.{ext.upper()}") for ext in ("heic", "heif", "avif", "ppm", "pgm"))
