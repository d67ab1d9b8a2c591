"""Reading datasets: layouts, zips, junk and broken files, the split."""
import os
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from studio.data.samples import stratified_split
from studio.data.sources import DatasetError, check_trainable, open_dataset
from studio.data.zips import extract_zip


def _images(folder: Path, count: int, color=(200, 10, 10), ext=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (64, 48), color).save(folder / f"img {i}{ext}")


def test_class_folders_get_a_stratified_validation_split(tmp_path):
    _images(tmp_path / "cats", 10)
    _images(tmp_path / "dogs", 5, ext=".PNG")
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ["cats", "dogs"] and dataset.split_source == "auto"
    counts = dataset.counts()
    assert counts.loc["cats", "val"] == 2 and counts.loc["dogs", "val"] == 1
    again = open_dataset(tmp_path)
    assert again.samples.equals(dataset.samples)


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_split_folders_are_recognised(tmp_path, val_name):
    for cls in ("a", "b"):
        _images(tmp_path / "train" / cls, 4)
        _images(tmp_path / val_name / cls, 2)
    dataset = open_dataset(tmp_path)
    assert dataset.split_source.startswith("folders")
    assert len(dataset.split("val")) == 4 and len(dataset.split("train")) == 8


def test_a_test_folder_is_never_made_into_validation(tmp_path):
    """Validation picks the best epoch and stops training: a test split used for it would no longer be honest.
    Without val/, validation is a stratified part of train and test/ stays the test."""
    for cls in ("a", "b"):
        _images(tmp_path / "train" / cls, 10)
        _images(tmp_path / "test" / cls, 3)
    dataset = open_dataset(tmp_path)
    assert "test kept apart" in dataset.split_source
    test = dataset.samples[dataset.samples.split == "test"]
    assert len(test) == 6 and all("/test/" in p.replace("\\", "/") for p in test.path)
    assert len(dataset.split("val")) == 4 and len(dataset.split("train")) == 16
    assert not set(dataset.split("val").path) & set(test.path)


def test_junk_never_becomes_a_class_and_bad_files_are_listed(tmp_path):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b", 3)
    _images(tmp_path / ".ipynb_checkpoints", 2)
    _images(tmp_path / "__MACOSX" / "a", 1)
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "b" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ["a", "b"]
    reasons = {Path(s["path"]).name: s["reason"] for s in dataset.skipped}
    assert "not an image" in reasons["notes.txt"]
    assert "empty" in reasons["empty.jpg"]
    assert "not a readable image" in reasons["broken.jpg"]
    assert "hidden" in reasons[".DS_Store"] or "system" in reasons[".DS_Store"]
    assert ".ipynb_checkpoints" in reasons and "__MACOSX" in reasons
    assert len(dataset.samples) == 6


def test_zip_with_wrapping_folder(tmp_path):
    source = tmp_path / "src"
    _images(source / "my data" / "red", 3)
    _images(source / "my data" / "blue", 3, color=(0, 0, 255))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in source.rglob("*.jpg"):
            zf.write(file, file.relative_to(source))
        zf.writestr("__MACOSX/my data/._x.jpg", b"junk")
    dataset = open_dataset(archive)
    assert dataset.classes == ["blue", "red"] and len(dataset.samples) == 6


def test_zip_members_cannot_escape_their_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
        zf.writestr("/abs/escaped2.txt", "x")
        link = zipfile.ZipInfo("a/link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("a/ok.txt", "fine")
    target = tmp_path / "deep" / "out"
    extract_zip(archive, target)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/out/.complete", "deep/out/a/ok.txt", "evil.zip"]
    assert not os.path.lexists(target / "a" / "link")


def test_not_a_zip_and_missing_folder_are_clear_errors(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("nope")
    with pytest.raises(DatasetError, match="not a readable .zip"):
        open_dataset(fake)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing")


def test_one_class_cannot_train(tmp_path):
    _images(tmp_path / "only", 5)
    with pytest.raises(DatasetError, match="at least two classes"):
        check_trainable(open_dataset(tmp_path))
    with pytest.raises(DatasetError, match="no class folders"):
        check_trainable(open_dataset(tmp_path / "only"))


def test_stratified_split_is_proportional_and_seeded():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 1
    split = stratified_split(labels, 0.2, seed=3)
    val = Counter(label for label, s in zip(labels, split) if s == "val")
    assert val == {"a": 10, "b": 2}
    assert split == stratified_split(labels, 0.2, seed=3)
    assert split != stratified_split(labels, 0.2, seed=4)


def test_real_example_dataset_reads_as_the_user_expects():
    from studio.paths import EXAMPLE_DATASET
    dataset = open_dataset(EXAMPLE_DATASET)
    counts = dataset.counts()
    assert counts.loc["ants", "train"] == 124 and counts.loc["bees", "val"] == 83
    names = set(Path(p).name for p in dataset.samples.path)
    assert "formica.jpeg" in names and "imageNotFound.gif" in names


def test_csv_labels_next_to_the_images_with_missing_and_unnamed_files(tmp_path):
    folder = tmp_path / "pics"
    _images(folder / "images", 6)
    (folder / "labels.csv").write_text(
        "Filename,Class,split\n"
        + "".join(f"images/img {i}.jpg,{'red' if i < 3 else 'blue'},{'val' if i in (0, 3) else 'train'}\n"
                  for i in range(5))
        + "images/gone.jpg,red,train\n")
    dataset = open_dataset(folder)
    assert dataset.classes == ["blue", "red"] and dataset.split_source == "csv"
    assert len(dataset.split("val")) == 2 and len(dataset.split("train")) == 3
    reasons = {Path(s["path"]).name: s["reason"] for s in dataset.skipped}
    assert "missing" in reasons["gone.jpg"] and "not named in the CSV" in reasons["img 5.jpg"]
    from studio.data.checks import diagnose
    report = diagnose(dataset)
    assert [Path(p).name for p in report.by_kind("csv_missing_files").paths] == ["gone.jpg"]
    assert [Path(p).name for p in report.by_kind("csv_unlabelled_files").paths] == ["img 5.jpg"]
    assert report.by_kind("not_images") is None


def test_csv_inside_a_zip_without_split_column(tmp_path):
    src = tmp_path / "src" / "wrap"
    _images(src, 8)
    (src / "labels.csv").write_text("file,label\n" + "".join(
        f"img {i}.jpg,{'x' if i % 2 else 'y'}\n" for i in range(8)))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in src.iterdir():
            zf.write(file, "wrap/" + file.name)
    dataset = open_dataset(archive)
    assert dataset.classes == ["x", "y"] and dataset.split_source == "auto" and len(dataset.samples) == 8


def test_csv_without_the_needed_columns_says_so(tmp_path):
    _images(tmp_path, 2)
    (tmp_path / "meta.csv").write_text("name,colour\na,b\n")
    with pytest.raises(DatasetError, match="'filename' and a 'label' column"):
        open_dataset(tmp_path)


def test_class_from_filename_prefix(tmp_path):
    from studio.data.sources import prefix_preview
    tmp_path.mkdir(exist_ok=True)
    for name in ("cat_1.jpg", "cat_2.jpg", "cat_3.jpg", "dog_1.png", "dog_2.png", "dog_3.png", "nolabel.jpg"):
        Image.new("RGB", (40, 40), (len(name) * 9, 0, 0)).save(tmp_path / name)
    preview = prefix_preview(tmp_path, "_")
    examples = dict(preview["examples"])
    assert examples["cat_1.jpg"] == "cat" and "not found" in examples["nolabel.jpg"]
    assert preview["classes"] == {"cat": 3, "dog": 3} and preview["unmatched"] == 1
    assert prefix_preview(tmp_path, "-")["unmatched"] == 7
    dataset = open_dataset(tmp_path, prefix_separator="_")
    assert dataset.classes == ["cat", "dog"] and len(dataset.samples) == 6
    assert any("nolabel.jpg" in s["path"] for s in dataset.skipped)


def test_a_hugging_face_imagefolder_metadata_csv_is_a_labels_csv(tmp_path):
    """Hugging Face `imagefolder` names the file column file_name; paths may reach into split folders."""
    _images(tmp_path / "train", 6)
    _images(tmp_path / "test", 2)
    rows = [f"train/img {i}.jpg,{'cat' if i % 2 else 'dog'}" for i in range(6)]
    rows += [f"test/img {i}.jpg,{'cat' if i % 2 else 'dog'}" for i in range(2)]
    (tmp_path / "metadata.csv").write_text("file_name,label\n" + "\n".join(rows) + "\n")
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ["cat", "dog"] and len(dataset.samples) == 8 and not dataset.skipped
    assert dataset.split_source == "auto"
