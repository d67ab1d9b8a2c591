"""A setting's value given as text (a CLI flag), checked and converted, with what is allowed in words.

Each checker returns the value or raises ValueError whose message names what was given and what is
allowed; the CLI shows that message as it is. They are checked while the command line is read, before
any data is opened or a backbone loaded.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

DEVICES = ("auto", "cpu", "cuda")
MIN_BATCH = 2          # one photo per step breaks BatchNorm statistics (training.finetune.MIN_BATCH_SIZE)
MIN_TRAIN_SIZE = 32    # px: a smaller crop leaves a 32x-downsampling backbone nothing to see


def whole_number(minimum: int = 0, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number in the bounds, which the error names."""
    allowed = (f"a whole number from {minimum} to {maximum}" if maximum is not None
               else f"a whole number, {minimum} or more")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise ValueError(f"{text!r} is not {allowed}")
        return value
    return parse


def number(allowed: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """A finite number that passes `ok`; `allowed` says which in words."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not ok(value):
            raise ValueError(f"{text!r} is not {allowed}")
        return value
    return parse


def freeze_value(text: str) -> str:
    """The engine's own rule (recipe.freeze_setting), so the CLI and the engine never disagree."""
    from studio.recipe import freeze_setting
    try:
        return freeze_setting(text)
    except ValueError as exc:
        raise ValueError(str(exc).rstrip(".")) from None


def device_name(text: str) -> str:
    """auto, cpu or cuda, and cuda only where there is a CUDA GPU (checked now, not after the data)."""
    from studio.hardware import pick_device
    value = text.strip().lower()
    if value not in DEVICES:
        raise ValueError(f"{text!r} is not a device: choose from {', '.join(DEVICES)}")
    pick_device(value)   # its ValueError says there is no CUDA GPU here
    return value


def backbone_name(text: str) -> str:
    """A catalog entry or any model timm knows (empty: the first one available offline)."""
    name = text.strip()
    if not name:
        return ""
    from studio.backbones import CATALOG, MISSING, availability, lookup
    if lookup(name) is None and availability(name)[0] == MISSING:
        raise ValueError(f"{name!r} is not a model timm knows: choose one of {', '.join(b.name for b in CATALOG)} "
                         "(`studio backbones` says which are ready) or another timm model name")
    return name


def budget(text: str) -> str:
    """quick, balanced, best or a duration with its unit (the engine's own rule, studio.budgets)."""
    from studio.budgets import budget_setting
    try:
        return budget_setting(text)
    except ValueError as exc:
        raise ValueError(str(exc).rstrip(".")) from None


def train_size(text: str) -> str | int:
    """auto or a crop size in pixels."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MIN_TRAIN_SIZE:
        raise ValueError(f"{text!r} is not a crop size: use auto or a whole number of pixels, "
                         f"{MIN_TRAIN_SIZE} or more (e.g. 160)")
    return value


def separator(text: str) -> str:
    """An empty prefix separator would silently read the folder as class folders instead."""
    if not text:
        raise ValueError("the separator is empty: give the characters between the class and the "
                         "rest of the file name, e.g. _ for cat_001.jpg")
    return text


def out_folder(text: str) -> str:
    """A folder (made if missing); an existing file there would fail only once the work is done."""
    if Path(text).exists() and not Path(text).is_dir():
        raise ValueError(f"{text} is a file: give a folder to write into (it is made if missing)")
    return text


def existing_path(text: str) -> str:
    """A folder or file that is there now: a typo fails at once, not after the training photos are read."""
    if not Path(text).exists():
        raise ValueError(f"{text}: no such file or folder")
    return text
