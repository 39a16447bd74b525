"""Typed settings: each declared once, with the flag, help, checks and strict loading derived.

A command's settings are a dataclass whose fields are made with :func:`setting`; the
field is the one place a setting's name, type, default, help text and bounds are written.
From it :class:`Settings` derives the command-line flag (``--batch-size`` for
``batch_size``), its help line with the default, the validation (an error message that
names the flag) and strict loading of a saved ``config.json`` (unknown keys and wrong types
are errors, as in nanoGPT's configurator). A subclass that only changes a default says so
with :func:`inherit`, so the help and bounds stay written once::

    @dataclass
    class LoopSettings(Settings):
        epochs: float = setting(1.0, help="epochs over the training split", above=0)

    @dataclass
    class RetrainSettings(LoopSettings):
        epochs: float = inherit(5.0)

A setting that another command declares too, under its own flag (``nas search
--rerank-steps`` is ``nas rerank --steps``), is taken from there with :func:`setting_of`.
A list setting (``List[int]``, ``List[str]``) takes one or more values after its flag; an
``Optional`` one is None (its default) until the flag is given.

A setting whose value may name a file (``path=``) is independent of the working directory:
:meth:`Settings.resolved` makes its file absolute, and a saved ``config.json`` stores a file
inside the run directory relative to it (so the directory can be moved) and any other file
absolute (so the run can be used from anywhere).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import typing
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .errors import UsageError

__all__ = ["setting", "inherit", "setting_of", "Settings", "flag_of", "a_path"]

#: Splits a setting's value into ``(prefix, file)`` when it names a file, else None.
Locate = Callable[[str], Optional[Tuple[str, str]]]


def a_path(value: str) -> Optional[Tuple[str, str]]:
    """The :data:`Locate` of a setting that is a file path or empty."""
    return ("", value) if value else None

_INHERIT = "nas_inherit"
_META = "nas_setting"


def setting(default: Any = dataclasses.MISSING, *, help: str, cli: bool = True,
            choices: Optional[Sequence[Any]] = None, at_least: Optional[float] = None,
            above: Optional[float] = None, at_most: Optional[float] = None,
            below: Optional[float] = None, pattern: Optional[str] = None,
            expected: Optional[str] = None,
            parse: Optional[Callable[[str], Any]] = None, metavar: Optional[str] = None,
            flag: Optional[str] = None, rerun: bool = False,
            path: Optional[Locate] = None, exclusive: Optional[str] = None) -> Any:
    """A dataclass field declaring one setting.

    Args:
        default: the default value (lists are copied per instance).
        help: one line for ``--help``; the default is appended.
        cli: whether the command line has a flag for it.
        choices: the allowed values.
        at_least, above, at_most, below: numeric bounds (inclusive, exclusive).
        pattern: a regular expression a string must match in full.
        expected: what ``pattern`` accepts, in words, for the error message.
        parse: turns the flag's text into the value (e.g. ``"300M"`` into FLOPs); its
            errors are :class:`~nas.errors.UsageError` and it is not applied to saved values.
        metavar: the flag's value placeholder in ``--help``.
        flag: the flag, when it is not the name with dashes (``--latency-budget`` for a
            value stored as ``latency_budget_ms``).
        rerun: may differ when a run is continued (e.g. a total number of trials); every
            other setting defines the run.
        path: the value may name a file: this splits it into ``(prefix, file)`` (None
            when it names none, e.g. a dataset's name); see the module docstring.
        exclusive: settings naming the same group may not be given together (``--json``
            or ``--trial N``): argparse refuses them on the command line, :meth:`validate`
            elsewhere (two away from their defaults).
    """
    meta = {_META: dict(help=help, cli=cli, choices=tuple(choices) if choices else None,
                        at_least=at_least, above=above, at_most=at_most, below=below,
                        pattern=pattern, expected=expected, parse=parse, metavar=metavar, flag=flag,
                        rerun=rerun, path=path, exclusive=exclusive)}
    if isinstance(default, list):
        value = list(default)
        return dataclasses.field(default_factory=lambda: list(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def inherit(default: Any) -> Any:
    """The base class's setting of the same name, with another default."""
    return dataclasses.field(default=default, metadata={_INHERIT: True})


def setting_of(cls: type, name: str, **changes: Any) -> Any:
    """Setting ``name`` of the settings class ``cls`` declared again in another class, under
    this field's name and flag: its default, help and bounds stay written once.
    ``changes`` are :func:`setting`'s arguments that differ here (``rerun=True``,
    ``default=...``, ``flag=...``)."""
    base = cls.__dataclass_fields__[name]
    meta = {**base.metadata[_META], "flag": None, "default": _default(base), **changes}
    return setting(meta.pop("default"), **meta)


def flag_of(name: str, meta: Optional[Mapping[str, Any]] = None) -> str:
    """``batch_size`` -> ``--batch-size`` (or the flag the setting declares)."""
    if meta and meta.get("flag"):
        return meta["flag"]
    return "--" + name.replace("_", "-")


def _describe(kind) -> str:
    if _optional(kind) is not None:
        return _describe(_optional(kind)) + " or null"
    if _is_list(kind):
        return {int: "a list of whole numbers", str: "a list of texts"}[_item(kind)]
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[kind]


def _is_list(kind) -> bool:
    return typing.get_origin(kind) is list


def _optional(kind):
    """The type an ``Optional`` setting has when it is set (``Optional[int]``: ``int``)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        return next(a for a in args if a is not type(None))
    return None


def _item(kind):
    """The type of a list setting's items (``List[str]``: ``str``)."""
    return typing.get_args(kind)[0]


class Settings:
    """Base class of settings dataclasses; see the module docstring."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Fill inherit() fields with the base class's metadata before @dataclass runs.
        for name, value in list(vars(cls).items()):
            if isinstance(value, dataclasses.Field) and value.metadata.get(_INHERIT):
                base = next((b.__dataclass_fields__[name] for b in cls.__mro__[1:]
                             if name in getattr(b, "__dataclass_fields__", {})), None)
                if base is None:
                    raise TypeError(f"{cls.__name__}.{name}: inherit() needs a base setting")
                setattr(cls, name, dataclasses.field(default=value.default,
                                                     metadata=base.metadata))

    # ------------------------------------------------------------------ introspection
    @classmethod
    def settings(cls) -> Dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls) if _META in f.metadata}

    @classmethod
    def _types(cls) -> Dict[str, Any]:
        hints = typing.get_type_hints(cls)
        out = {}
        for name in cls.settings():
            hint = hints[name]
            if typing.get_origin(hint) is list:  # List[int] or List[str], as declared
                hint = typing.List[(typing.get_args(hint) or (int,))[0]]
            out[name] = hint
        return out

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of setting ``name`` (for messages)."""
        return flag_of(name, cls.settings()[name].metadata[_META])

    @classmethod
    def rerun_settings(cls) -> frozenset:
        """Settings that may change when a run is continued."""
        return frozenset(n for n, f in cls.settings().items() if f.metadata[_META]["rerun"])

    # ------------------------------------------------------------------ checking
    def validate(self):
        """Check every setting against its declaration, then :meth:`check`. Returns self."""
        types = self._types()
        groups: Dict[str, list] = {}
        for name, f in self.settings().items():
            _check_value(name, getattr(self, name), types[name], f.metadata[_META])
            if f.metadata[_META]["exclusive"] and getattr(self, name) != _default(f):
                groups.setdefault(f.metadata[_META]["exclusive"], []).append(self.flag(name))
        clash = next((flags for flags in groups.values() if len(flags) > 1), None)
        if clash:
            raise UsageError(f"{' and '.join(clash)} cannot be given together")
        self.check()
        return self

    def check(self) -> None:
        """Rules that span settings; raise :class:`~nas.errors.UsageError` naming flags."""

    def to_dict(self, base=None) -> Dict[str, Any]:
        """The settings as plain data; with ``base`` (the run directory the file is saved
        in), files inside ``base`` are written relative to it (see :meth:`resolved`)."""
        out = {name: (list(v) if isinstance(v, list) else v)
               for name, v in ((n, getattr(self, n)) for n in self.settings())}
        if base is not None:
            home = os.path.abspath(base)
            for name, (prefix, file) in self._files().items():
                file = os.path.abspath(file)
                if os.path.commonpath([home, file]) == home and file != home:
                    out[name] = prefix + os.path.relpath(file, home)
        return out

    def _files(self) -> Dict[str, Tuple[str, str]]:
        out = {}
        for name, f in self.settings().items():
            locate = f.metadata[_META]["path"]
            found = locate(getattr(self, name)) if locate is not None else None
            if found is not None:
                out[name] = found
        return out

    def resolved(self, base=None):
        """A copy whose files are absolute: relative ones are taken relative to ``base``
        (None: the working directory, for values the user just typed)."""
        changes = {}
        for name, (prefix, file) in self._files().items():
            file = os.path.expanduser(file)
            if base is not None and not os.path.isabs(file):
                file = os.path.join(base, file)
            changes[name] = prefix + os.path.abspath(file)
        return dataclasses.replace(self, **changes)

    def differences(self, other: "Settings") -> Dict[str, Any]:
        """Settings that define the run and differ from ``other``'s: ``{name: other's}``."""
        keep = self.rerun_settings()
        return {n: getattr(other, n) for n in self.settings()
                if n not in keep and getattr(self, n) != getattr(other, n)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "settings", base=None):
        """Strictly from saved values: unknown keys and wrong types are errors; missing
        keys take their defaults (settings added in later versions). With ``base`` (the
        directory the values were saved in) files come back absolute, relative ones
        taken relative to ``base``."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{source}: expected a JSON object of settings")
        declared = cls.settings()
        unknown = sorted(set(data) - set(declared))
        if unknown:
            raise UsageError(f"{source}: unknown settings {unknown}")
        types = cls._types()
        for name, value in data.items():
            if not _is_type(value, types[name]):
                raise UsageError(f"{source}: setting {name} must be {_describe(types[name])}, "
                                 f"got {value!r}")
        try:
            loaded = cls(**{k: (float(v) if types[k] is float else v)
                            for k, v in data.items()}).validate()
        except UsageError as e:
            raise UsageError(f"{source}: {e}") from None
        return loaded.resolved(base) if base is not None else loaded

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: Iterable[str] = (),
                      defaults: Optional["Settings"] = None) -> None:
        """One flag per setting (``default=None``, so :meth:`given` sees what was typed)."""
        types = cls._types()
        shown = defaults if defaults is not None else None
        groups: Dict[str, Any] = {}  # exclusive group name -> argparse's group
        for name, f in cls.settings().items():
            meta = f.metadata[_META]
            if not meta["cli"] or name in skip:
                continue
            default = getattr(shown, name) if shown is not None else _default(f)
            text = meta["help"]
            if default is dataclasses.MISSING:
                kwargs: Dict[str, Any] = {"required": True}
            else:
                kwargs = {"default": None}
                text += f" (default: {_show(default)})"
            kind = _optional(types[name]) or types[name]
            if kind is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif _is_list(kind):
                kwargs.update(nargs="+", type=str)
            else:
                kwargs["type"] = str
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
            elif meta["choices"] and kind is str:
                kwargs["metavar"] = "{" + ",".join(meta["choices"]) + "}"
            where = parser
            if meta["exclusive"]:
                if meta["exclusive"] not in groups:
                    groups[meta["exclusive"]] = parser.add_mutually_exclusive_group()
                where = groups[meta["exclusive"]]
            where.add_argument(flag_of(name, meta), dest=name, help=text.replace("%", "%%"),
                               **kwargs)

    @classmethod
    def given(cls, args: argparse.Namespace) -> Dict[str, Any]:
        """The settings typed on the command line, converted to their types."""
        types = cls._types()
        out = {}
        for name, f in cls.settings().items():
            raw = getattr(args, name, None)
            if raw is None or not f.metadata[_META]["cli"]:
                continue
            out[name] = _from_text(name, raw, types[name], f.metadata[_META])
        return out


def _default(f: dataclasses.Field) -> Any:
    """A field's default (MISSING when it has none)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _show(value) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def _is_type(value, kind) -> bool:
    if _optional(kind) is not None:
        return value is None or _is_type(value, _optional(kind))
    if _is_list(kind):
        return isinstance(value, list) and all(_is_type(v, _item(kind)) for v in value)
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _from_text(name: str, raw, kind, meta) -> Any:
    flag = flag_of(name, meta)
    kind = _optional(kind) or kind
    if kind is bool:
        return bool(raw)
    if meta["parse"] is not None:
        return meta["parse"](raw)
    if _is_list(kind):
        return [_from_text(name, r, _item(kind), meta) for r in raw]
    try:
        if kind is int:
            if not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise ValueError
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise UsageError(f"{flag} must be {_describe(kind)}, got {raw!r}") from None
    return raw


def _check_value(name: str, value, kind, meta) -> None:
    flag = flag_of(name, meta)
    if not _is_type(value, kind):
        raise UsageError(f"{flag} must be {_describe(kind)}, got {value!r}")
    if value is None:  # an Optional setting not given
        return
    values = value if _is_list(kind) else [value]
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{flag} must be a finite number, got {v}")
        if meta["choices"] and v not in meta["choices"]:
            names = [str(c) for c in meta["choices"]]
            words = (" or ".join(names) if len(names) == 2
                     else "one of " + ", ".join(names))
            raise UsageError(f"{flag} must be {words}, got {v!r}")
        low = (meta["at_least"], "[", ">=") if meta["at_least"] is not None else (
            (meta["above"], "(", ">") if meta["above"] is not None else None)
        high = (meta["at_most"], "]", "<=") if meta["at_most"] is not None else (
            (meta["below"], ")", "<") if meta["below"] is not None else None)
        ok = ((low is None or (v >= low[0] if low[1] == "[" else v > low[0]))
              and (high is None or (v <= high[0] if high[1] == "]" else v < high[0])))
        if not ok:
            if low and high:
                words = f"in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
            else:
                words = f"{low[2]} {low[0]:g}" if low else f"{high[2]} {high[0]:g}"
            raise UsageError(f"{flag} must be {words}, got {v!r}")
        if meta["pattern"] and not re.fullmatch(meta["pattern"], v):
            raise UsageError(f"{flag} must be {meta['expected'] or 'a valid value'}, got {v!r}")
