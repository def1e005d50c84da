"""The command line of every ``python -m`` entry point: ``KEY=VALUE`` words, typed keys.

``make <target> KEY=VALUE ...`` hands its variables to a Python tool. Each tool declares its
keys here (integers with bounds, 0/1 flags, choices, comma-separated lists, strings, paths),
parses its words with :func:`parse` and runs under :func:`main`, so every tool answers a bad
command line the same way: one ``<tool>: error: <message>`` line on stderr naming the key and
what a valid value looks like, exit status 2. ``HELP=1`` (or ``help``) prints the keys with
their defaults instead. Nothing here imports the rest of the project beyond
:mod:`ita.config`, so every layer can use it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["UsageError", "Key", "int_key", "flag_key", "choice_key", "list_key", "text_key",
           "path_key", "array_keys", "SEED", "WAVES", "KEY_NAME", "split_words", "resolve",
           "parse", "usage", "main"]

#: What a key name looks like (make variables in capitals).
KEY_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")  # \Z, not $: "N\n" is no key
#: Words that ask for the key listing instead of a run.
HELP_WORDS = ("help", "-h", "--help", "HELP=1")

Options = dict[str, object]


class UsageError(ValueError):
    """A bad command line; :func:`main` prints it as ``<tool>: error: <message>``, exit 2.

    A ValueError, so callers that already treat refused values as ValueError keep working.
    """


@dataclass(frozen=True)
class Key:
    """One ``KEY=VALUE`` option: ``parse`` turns the text into a value or raises ValueError.

    ``expect`` says what a valid value looks like, for error messages and the usage text.
    A ``required`` key has no default; leaving it out is a usage error.
    """

    name: str
    default: object
    parse: Callable[[str], object]
    expect: str
    help: str = ""
    required: bool = False

    def show_default(self) -> str:
        """The default as it would be typed on the command line."""
        if self.required:
            return f"<{self.expect}>"
        if isinstance(self.default, bool):
            return str(int(self.default))
        if isinstance(self.default, tuple):
            return ",".join(map(str, self.default))
        return "" if self.default is None else str(self.default)


def int_key(name: str, default: int | None, *, minimum: int | None = None,
            maximum: int | None = None, help: str = "", required: bool = False) -> Key:
    """An integer key, optionally bounded (``int`` syntax: ``MAX_CYCLES=1_000`` works)."""
    lo = "" if minimum is None else f" >= {minimum}"
    hi = "" if maximum is None else f" <= {maximum}"
    expect = f"an integer{lo}{' and' if lo and hi else ''}{hi}"

    def parse_int(text: str) -> int:
        value = int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(text)
        return value

    return Key(name, default, parse_int, expect, help, required)


def flag_key(name: str, default: bool = False, *, help: str = "") -> Key:
    """A 0/1 key, parsed to bool."""

    def parse_flag(text: str) -> bool:
        if text not in ("0", "1"):
            raise ValueError(text)
        return text == "1"

    return Key(name, bool(default), parse_flag, "0 or 1", help)


def _one_of(choices: Sequence[str]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


def choice_key(name: str, default: str | None, choices: Iterable[str], *, help: str = "",
               required: bool = False) -> Key:
    """A key whose value is one of ``choices`` (kept as text)."""
    allowed = tuple(choices)

    def parse_choice(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text

    return Key(name, default, parse_choice, _one_of(allowed), help, required)


def list_key(name: str, default: Sequence[str], choices: Iterable[str], *,
             help: str = "") -> Key:
    """A comma-separated, non-empty subset of ``choices``, parsed to a tuple in their order."""
    allowed = tuple(choices)

    def parse_list(text: str) -> tuple[str, ...]:
        names = [n for n in text.split(",") if n]
        if not names or any(n not in allowed for n in names):
            raise ValueError(text)
        return tuple(n for n in allowed if n in names)

    return Key(name, tuple(default), parse_list, f"a comma-separated list of {_one_of(allowed)}",
               help)


def text_key(name: str, default: str | None = "", *, expect: str = "a name", help: str = "",
             required: bool = False, empty: bool = False) -> Key:
    """A free-text key; empty text is refused unless ``empty``."""

    def parse_text(text: str) -> str:
        if not text and not empty:
            raise ValueError(text)
        return text

    return Key(name, default, parse_text, expect, help, required)


def path_key(name: str, default: Path | str | None, *, help: str = "") -> Key:
    """A file or directory path (not checked for existence), parsed to :class:`Path`."""

    def parse_path(text: str) -> Path:
        if not text:
            raise ValueError(text)
        return Path(text)

    return Key(name, None if default is None else Path(default), parse_path, "a path", help)


def array_keys(config: ITAConfig | None = DEFAULT_CONFIG, *, what: str = "") -> tuple[Key, Key]:
    """``ARRAY_N=`` and ``ARRAY_M=``: the engine's dot-product units and dot length.

    Named apart from a matrix size ``N=``. Defaults from ``config``; ``None`` leaves them
    unset (the tool takes them from its own configuration, named in ``what``).
    """
    unset = f" (default: {what})" if what else ""
    return (int_key("ARRAY_N", config.N if config else None, minimum=1,
                    help=f"dot-product units of the engine (elaboration parameter){unset}"),
            int_key("ARRAY_M", config.M if config else None, minimum=1,
                    help=f"dot length and tile edge of the engine{unset}"))


SEED = int_key("SEED", 1, minimum=0, help="random seed")
WAVES = flag_key("WAVES", help="write an FST waveform")


def split_words(words: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` words into {key: text}; malformed words and repeated keys are errors."""
    given: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not KEY_NAME.match(key):
            raise UsageError(f"expected KEY=VALUE, got {word!r}")
        if key in given:
            raise UsageError(f"key {key} given twice")
        given[key] = value
    return given


def resolve(given: Mapping[str, str], keys: Sequence[Key], *, where: str = "") -> Options:
    """Typed options over ``keys`` (defaults filled in) from {key: text}.

    ``where`` ends the messages (``" for test gemm"``).
    """
    by_name = {k.name: k for k in keys}
    options: Options = {k.name: k.default for k in keys if not k.required}
    for name, text in given.items():
        key = by_name.get(name)
        if key is None:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"unknown key {name}{where} (known: {known})")
        try:
            options[name] = key.parse(text)
        except ValueError:
            raise UsageError(f"bad value {text!r} for key {name}{where} "
                             f"(expected {key.expect})") from None
    missing = [k for k in keys if k.required and k.name not in options]
    if missing:
        raise UsageError("missing " + " ".join(f"{k.name}=<{k.expect}>" for k in missing)
                         + where)
    return options


def parse(words: Sequence[str], keys: Sequence[Key], *, where: str = "") -> Options:
    """Parse ``KEY=VALUE`` words against ``keys``; UsageError on anything else."""
    return resolve(split_words(words), keys, where=where)


def usage(synopsis: str, keys: Sequence[Key], *, note: str = "") -> str:
    """``usage: <synopsis>`` and one line per key: ``KEY=<default>  (<expect>)  <help>``."""
    lines = [f"usage: {synopsis}", *([note] if note else [])]
    shown = [f"{k.name}={k.show_default()}" for k in keys]
    width = max(map(len, shown), default=0)
    for text, key in zip(shown, keys, strict=True):
        helptext = f"  {key.help}" if key.help else ""
        lines.append(f"  {text:<{width}}  ({key.expect}){helptext}")
    return "\n".join(lines)


def main(tool: str, body: Callable[[list[str]], int], argv: Sequence[str] | None = None, *,
         usage_text: str | Callable[[list[str]], str] = "",
         failures: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``body(words)`` as tool ``tool``; return its exit status.

    A :class:`UsageError` prints ``<tool>: error: <message>`` (one line) on stderr and returns
    2; so do ``failures`` (e.g. a build error), whose further lines (compiler output) follow
    as they came. ``HELP=1`` or ``help`` prints ``usage_text`` (text, or a function of the
    other words) on stdout and returns 0.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    if any(w in HELP_WORDS for w in words):
        rest = [w for w in words if w not in HELP_WORDS]
        print(usage_text(rest) if callable(usage_text) else usage_text)
        return 0
    try:
        return body(words)
    except UsageError as exc:
        print(f"{tool}: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except failures as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        print(f"{tool}: error: {lines[0]}", file=sys.stderr)
        if len(lines) > 1:
            print("\n".join(lines[1:]), file=sys.stderr)
        return 2


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
