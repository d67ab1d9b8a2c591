"""How long a person lets Auto work: Quick, Balanced, Best, or a time they type ("90s", "10m", "1h").

Torch-free, so `studio train --budget` is checked while the command line is read.

- Quick: about a minute, everything included (reading the photos too): the plan the search likes best
  after the shortest look, then as many epochs as fit.
- Balanced (the default): a fixed amount of work sized from the data, not from a clock, so the same
  seed on the same data gives the same model: every plan tried briefly, the better half tried again,
  the winner trained for the recipe's epochs.
- Best, or a duration: wall time for the whole run; the search and the winner's epochs are sized to it
  from measured step times. Two runs can differ a little, as the clock does.
"""
from __future__ import annotations

import re

QUICK_SECONDS = 60
BEST_MINUTES = 10         # `--budget best` and the page's Best, unless a person picks other minutes
MIN_SECONDS = 20          # less leaves no time to read a dataset and train a head
MAX_SECONDS = 7 * 24 * 3600
NAMED = ("quick", "balanced", "best")
DEFAULT = "balanced"

_UNITS = {"s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smh])")
ALLOWED = ("quick, balanced, best, or a time with its unit such as 90s, 10m, 1h or 1h30m "
           f"(at least {MIN_SECONDS}s)")


def seconds_of(text: str) -> float | None:
    """'10m' -> 600.0; None when the text is not a duration with units."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        return None
    return float(sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(cleaned)))


def budget_setting(value) -> str:
    """A budget as the engine keeps it: 'quick', 'balanced', 'best', or a duration like '10m'."""
    text = str(value).strip().lower()
    if text in NAMED:
        return text
    seconds = seconds_of(text)
    if seconds is None or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"{value!r} is not a time budget: use {ALLOWED}.")
    return text.replace(" ", "")


def wall_seconds(budget: str) -> float | None:
    """Seconds of wall time the whole run may take; None for Balanced (a fixed amount of work)."""
    if budget == "balanced":
        return None
    if budget == "quick":
        return float(QUICK_SECONDS)
    if budget == "best":
        return float(BEST_MINUTES * 60)
    return seconds_of(budget)


def describe(budget: str) -> str:
    """The budget in a few words, for the choices and the page."""
    if budget == "balanced":
        return "Balanced: a fixed amount of work sized from your data"
    if budget == "quick":
        return f"Quick: about {QUICK_SECONDS} seconds in all"
    return f"a time budget of {duration_words(wall_seconds(budget))} in all"


def duration_words(seconds: float) -> str:
    """90 -> '1 min 30 s', 600 -> '10 min', 45 -> '45 s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{secs} s"] * bool(secs)
    return " ".join(parts) or "0 s"


def page_budget(mode: str, best_minutes) -> str:
    """The page's Quick / Balanced / Best and its minutes as a budget setting."""
    if mode == "best":
        minutes = float(best_minutes or BEST_MINUTES)
        return "best" if minutes == BEST_MINUTES else f"{minutes:g}m"
    return mode or DEFAULT
