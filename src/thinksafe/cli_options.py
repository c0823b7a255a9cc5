"""Command-line flags generated from the stage config dataclasses, so that a default is written once.

Every stage config (``GenerateJob``, ``EvalJob``, ``AlignConfig``, ``DeliberationConfig``,
``RunConfig`` and the nested ``GenerationConfig``, ``ProbeConfig``, ``ReplaySettings``) declares each
field with its default and a help text. :func:`flags_for` turns those fields into typer options whose
own default is ``None`` ("not given"); :func:`with_flags` adds them to a command's signature and hands
the command the flags the user gave as a nested ``overrides`` mapping, which the command passes to the
same constructor a YAML file fills. The help text shows the field's default, read from the dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import typer

from thinksafe.errors import ConfigError


@dataclass(frozen=True)
class Flag:
    """One generated option: where its value goes (``path`` into the config) and how it is spelt."""

    path: tuple[str, ...]
    option: str
    annotation: Any
    help: str
    kind: str  # "value", "list", "bool" or "mapping" (KEY=VALUE pairs)
    metavar: str | None = None

    @property
    def param(self) -> str:
        return "__".join(self.path)


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, Any]:
    """``["model=/x", "threshold=0.4"]`` -> ``{"model": "/x", "threshold": 0.4}`` (JSON values where they parse)."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}.")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


_METAVAR = {int: "N", float: "X", str: "TEXT"}


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def flags_for(
    cls: type,
    *,
    nested: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    defaults: Any = None,
    prefix: tuple[str, ...] = (),
) -> list[Flag]:
    """The options of ``cls``'s fields. ``nested`` maps a dataclass-typed field to its flag prefix ("" for
    none: ``generation.seed`` -> ``--seed``); ``exclude`` and ``rename`` take dotted paths
    (``"generation.samples"``, ``{"eval_sets": "--eval-set"}``); ``defaults`` is an instance whose values
    the help shows (default: each field's own default)."""
    nested = dict(nested or {})
    rename = dict(rename or {})
    exclude = set(exclude)
    hints = typing.get_type_hints(cls)
    flags: list[Flag] = []
    for f in dataclasses.fields(cls):
        dotted = ".".join((*prefix, f.name))
        if dotted in exclude or not f.init:
            continue
        tp = _unwrap_optional(hints[f.name])
        default = getattr(defaults, f.name) if defaults is not None else _default_of(f)
        if dataclasses.is_dataclass(tp):
            if f.name in nested:
                sub = flags_for(tp, exclude={e.split(".", 1)[1] for e in exclude if e.startswith(f.name + ".")},
                                rename={k.split(".", 1)[1]: v for k, v in rename.items() if k.startswith(f.name + ".")},
                                defaults=default, prefix=())
                lead = nested[f.name]
                for s in sub:
                    option = s.option if not lead or s.option in rename.values() else f"--{lead}-{s.option[2:]}"
                    flags.append(dataclasses.replace(s, path=(*prefix, f.name, *s.path), option=option))
            continue
        text = str(f.metadata.get("help", ""))
        # parentheses, not brackets: rich would read "[default: ...]" as markup and drop it
        help_text = f"{text} (default: {_shown(default)})" if default is not dataclasses.MISSING else text
        option = rename.get(dotted) or "--" + f.name.replace("_", "-")
        origin = typing.get_origin(tp)
        if tp is bool:
            flag = Flag((*prefix, f.name), option if "/" in option else f"{option}/--no-{option[2:]}", Optional[bool],
                        help_text, "bool")
        elif tp in (int, float, str):
            flag = Flag((*prefix, f.name), option, Optional[tp], help_text, "value", _METAVAR[tp])
        elif origin in (list, tuple):
            item = typing.get_args(tp)[0]
            flag = Flag((*prefix, f.name), option, Optional[list[item]], help_text + " (repeatable)", "list",
                        _METAVAR.get(item, "VALUE"))
        elif origin is dict or tp is dict:
            flag = Flag((*prefix, f.name), option, Optional[list[str]], help_text + " (repeatable)", "mapping",
                        "KEY=VALUE")
        else:
            continue
        flags.append(flag)
    return flags


def overrides_from(flags: Iterable[Flag], values: Mapping[str, Any]) -> dict[str, Any]:
    """The nested mapping of the flags a user gave (a flag left at ``None`` or empty is not given)."""
    out: dict[str, Any] = {}
    for flag in flags:
        value = values.get(flag.param)
        if value is None or (flag.kind in ("list", "mapping") and not value):
            continue
        if flag.kind == "mapping":
            value = parse_pairs(value, flag.option.split("/")[0])
        elif flag.kind == "list":
            value = list(value)
        node = out
        for key in flag.path[:-1]:
            node = node.setdefault(key, {})
        node[flag.path[-1]] = value
    return out


def with_flags(*groups: list[Flag]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the generated options to a typer command. The command takes ``overrides`` (a mapping: the
    flags given, nested like the config) beside its own parameters."""
    flags = [f for g in groups for f in g]
    seen: dict[str, Flag] = {}
    for f in flags:
        spelt = f.option.split("/")[0]
        if spelt in seen:
            raise AssertionError(f"flag {spelt} generated twice: {seen[spelt].path} and {f.path}")
        seen[spelt] = f

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "overrides"]
        names = {p.name for p in own}

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            given = {k: kwargs.pop(k) for k in list(kwargs) if k not in names}
            return func(**kwargs, overrides=overrides_from(flags, given))

        extra = [inspect.Parameter(f.param, inspect.Parameter.KEYWORD_ONLY, annotation=f.annotation,
                                   default=typer.Option(None, f.option, help=f.help, show_default=False, metavar=f.metavar))
                 for f in flags]
        command.__signature__ = sig.replace(parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
                                            + extra)
        command.__annotations__ = {p.name: p.annotation for p in own} | {f.param: f.annotation for f in flags}
        del command.__wrapped__  # typer must read the new signature, not the wrapped one
        return command

    return decorate
