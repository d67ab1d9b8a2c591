"""Every training setting declared once, with its group, default, allowed values and help text.

`TrainConfig`'s fields are declared with `setting(...)`. The CLI's `train` flags (`add_flags`), the
page's Advanced panel (components/settings_panel.py) and the command line that repeats a run
(`command_line`) are all read from those declarations, so a default or a help line lives in one place.

The record stays flat (one field per setting) on purpose: a run folder's config.json, the Python API's
keyword arguments and old run folders all keep working; the groups are a view (`grouped()`), used for
`studio train --help` and the page's layout.
"""
from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

GROUPS = {
    "data": "Data: what to train on and what to leave out",
    "model": "Model: the backbone and how much of it trains",
    "optimisation": "Optimisation: how long and how the weights change",
    "run": "Run: where and how reproducibly it runs",
}
ASKED_KEY = "asked"   # config.json: the settings as they were asked, before the studio decided the rest


@dataclass(frozen=True)
class Setting:
    """One setting: what the CLI, the page and a saved config need to know about it."""
    name: str
    group: str
    help: str                       # one sentence: the CLI's help and the page's info line
    default: Any
    flag: str = ""                  # the CLI flag; "" for settings that are not flags (see `user_facing`)
    parse: Callable[[str], Any] | None = None   # text -> value, ValueError with words (studio.values)
    choices: tuple = ()             # a closed list of allowed values
    words: dict = field(default_factory=dict)   # value -> how the page names it
    metavar: str | None = None
    label: str = ""                 # the page's name for it
    page_help: str = ""             # the page's info line, where `help` speaks in flags ("" = help)
    auto_value: Any = None          # what a None default turns into (the page shows it)
    suggested: tuple = ()           # values the page offers in a list (beside Auto)
    span: tuple = ()                # (lowest, highest, step) the page's slider covers
    off_flag: str = ""              # for a list setting: the flag that empties it (--keep-all)
    repeat: bool = True             # carried into a re-run (--config); False for who and where it ran

    @property
    def user_facing(self) -> bool:
        return bool(self.flag)


def setting(default=MISSING, *, group: str, help: str, factory=MISSING, **details) -> Any:
    """A dataclass field carrying its Setting (bound to the field's name by `settings`)."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    metadata = {"setting": {"group": group, "help": help, **details}}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def settings(config_class) -> list[Setting]:
    """The class's settings in declaration order (fields declared without `setting` are left out)."""
    found = []
    for f in fields(config_class):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        found.append(Setting(name=f.name, default=None if default is MISSING else default, **spec))
    return found


def by_name(config_class) -> dict[str, Setting]:
    return {s.name: s for s in settings(config_class)}


def grouped(config_class) -> dict[str, list[Setting]]:
    """{group: its settings}, in GROUPS order."""
    groups = {name: [] for name in GROUPS}
    for s in settings(config_class):
        groups[s.group].append(s)
    return groups


# ---------------------------------------------------------------- the CLI

def flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse shows an ArgumentTypeError's words as they are (a ValueError's would be replaced)."""
    def checked(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    checked.__name__ = getattr(parse, "__name__", "value")
    return checked


def _default_words(s: Setting) -> str:
    if s.default is None:
        return "" if "default" in s.help else " (default: the studio decides)"
    if isinstance(s.default, bool) or s.default in ("", [], {}):
        return ""
    return "" if "default" in s.help else f" (default {s.default})"


def add_flags(parser: argparse.ArgumentParser, config_class) -> None:
    """One flag per user-facing setting, in an argument group per settings group.

    Flags default to argparse.SUPPRESS: the parsed namespace holds only what was typed, so a saved config
    (--config) can be overridden flag by flag and the dataclass stays the one home of every default."""
    for group, members in grouped(config_class).items():
        shown = [s for s in members if s.user_facing]
        if not shown:
            continue
        section = parser.add_argument_group(GROUPS[group])
        for s in shown:
            common = {"dest": s.name, "default": argparse.SUPPRESS}
            metavar = s.metavar or s.flag.lstrip("-").upper().replace("-", "_")
            words = (s.help + _default_words(s)).replace("%", "%%")   # argparse formats help with %
            if isinstance(s.default, bool):
                section.add_argument(s.flag, action="store_false" if s.default else "store_true", help=words,
                                     **common)
            elif isinstance(s.default, list):
                section.add_argument(s.flag, action="append", choices=s.choices or None, metavar=s.metavar,
                                     help=words, **common)
                if s.off_flag:
                    section.add_argument(s.off_flag, action="store_const", const=[], dest=s.name,
                                         default=argparse.SUPPRESS, help=f"leave nothing out ({s.flag} none)")
            else:
                section.add_argument(s.flag, type=flag_type(s.parse) if s.parse else None,
                                     choices=list(s.choices) or None, metavar=None if s.choices else metavar,
                                     help=words, **common)


def typed_values(args: argparse.Namespace, config_class) -> dict:
    """The settings typed on the command line, as {field: value} (see add_flags)."""
    given = vars(args)
    return {s.name: given[s.name] for s in settings(config_class) if s.user_facing and s.name in given}


def command_line(config, data: str | None = None) -> str:
    """The `studio train` command that asks for the same run: the data and every setting that differs
    from its default (what the studio decided is left to it again, so the same reasons give the same
    choices). Settings the command line cannot carry (files left out by hand) are named after a #."""
    parts = ["studio", "train", shlex.quote(str(data if data is not None else config.data))]
    for s in settings(type(config)):
        value = getattr(config, s.name)
        if not s.user_facing or value == s.default:
            continue
        if isinstance(s.default, bool):
            parts.append(s.flag)
        elif isinstance(s.default, list):
            parts += [s.off_flag] if not value and s.off_flag else [p for v in value for p in (s.flag, str(v))]
        else:
            parts += [s.flag, shlex.quote(str(value))]
    line = " ".join(parts)
    left_out = len(getattr(config, "exclude_files", None) or {})
    if left_out:
        line += f"  # not carried: {left_out} file{'s' if left_out != 1 else ''} you left out by hand"
    return line


# ---------------------------------------------------------------- saved configs

class ConfigFileError(ValueError):
    """A --config file that cannot be used; the message says why and what to give instead."""


def read_saved(path: str | Path, config_class) -> dict:
    """The settings of a saved run (its folder or its config.json) or of a JSON file of settings.

    A run's own config.json keeps what was asked (`asked`) beside what the studio then decided: the
    asked settings are taken, so Auto decides again from the data. Names that are not settings are
    refused with the list of known ones, so a typo does not silently fall back to a default."""
    path = Path(path)
    from studio.runs.folder import RunFolder
    file = RunFolder(path).config if path.is_dir() else path
    try:
        saved = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigFileError(f"{file} does not exist: give a run folder or its config.json.") from None
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"{file} is not a readable JSON file of settings ({exc}).") from None
    if not isinstance(saved, dict):
        raise ConfigFileError(f"{file} holds no settings: it should be a JSON object, e.g. "
                              '{"data": "photos/", "epochs": 5}.')
    known = {f.name for f in fields(config_class)}
    not_carried = {s.name for s in settings(config_class) if not s.repeat}
    if isinstance(saved.get(ASKED_KEY), dict):
        return {k: v for k, v in saved[ASKED_KEY].items() if k in known and k not in not_carried}
    if "choices" in saved:   # an older run folder: what was asked was not kept apart from what was decided
        return {k: v for k, v in saved.items() if k in known and k != "choices" and k not in not_carried}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ConfigFileError(f"{file}: {', '.join(map(repr, unknown))} "
                              f"{'is not a setting' if len(unknown) == 1 else 'are not settings'}; "
                              f"the settings are {', '.join(sorted(known))}.")
    return {k: v for k, v in saved.items() if k not in not_carried}
