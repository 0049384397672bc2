"""The rule interface and registry.

A rule is a small class with one job. The engine first hands each rule the
run's context (``start``: the version it may compare with, a cache folder),
then streams a version's file list through every rule's ``visit`` (metadata
only: path, size, digest), and for rules that read contents, calls
``check_file`` with an open, verified stream of each file the rule ``wants``
(in worker threads). ``finish`` gives the verdicts that need the whole
listing (counts, balances, overlaps); ``close`` always runs last. ``note``
records what a reader should know that is not a failure.

Third-party rules subclass ``Rule``, set ``type``, and are found through the
``datactl.rules`` entry-point group or ``[validate] plugins = ["module:Class"]``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, Iterable

import pathspec

from datactl.core.errors import UsageError
from datactl.core.units import parse_fraction, parse_size
from datactl.store.source import SourceEntry
from datactl.validation.context import RunContext

MISSING = object()


class RuleConfigError(UsageError):
    """A rule's settings cannot work (exit code 2)."""


class MissingExtra(RuleConfigError):
    """A rule needs an optional dependency that is not installed (exit code 2); nothing to do with its settings."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the version, ideally naming the file."""

    message: str
    path: str | None = None

    def to_dict(self) -> dict:
        return {"message": self.message, "path": self.path}


class Options:
    """A rule's settings table; unknown keys are an error, so a typo never silently disables a check."""

    def __init__(self, rule_name: str, table: dict[str, Any]) -> None:
        self.rule_name = rule_name
        self._table = dict(table)
        self._used: set[str] = {"type", "name", "severity", "description"}

    def error(self, message: str, hint: str | None = None) -> RuleConfigError:
        return RuleConfigError(f"rule {self.rule_name!r}: {message}", hint)

    def has(self, key: str) -> bool:
        return key in self._table

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self._used.add(key)
        if key in self._table:
            return self._table[key]
        if default is MISSING:
            raise self.error(f"needs {key} = ...")
        return default

    def int(self, key: str, default: Any = MISSING, minimum: int | None = 0) -> int | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"{key} must be a whole number, not {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(f"{key} must be at least {minimum}")
        return v

    def float(self, key: str, default: Any = MISSING) -> float | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"{key} must be a number, not {v!r}")
        return float(v)

    def fraction(self, key: str, default: Any = MISSING) -> float | None:
        v = self.raw(key, default)
        if v is None:
            return None
        try:
            return parse_fraction(v)
        except (TypeError, ValueError):
            raise self.error(f"{key} must be a fraction between 0 and 1 (or a percentage like \"5%\")") from None

    def size(self, key: str, default: Any = MISSING) -> int | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise self.error(f"{key} must be a size like 10MB or a number of bytes")
        try:
            return parse_size(v)
        except UsageError as exc:
            raise self.error(exc.message, exc.hint) from None

    def bool(self, key: str, default: Any = MISSING) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise self.error(f"{key} must be true or false")
        return v

    def str(self, key: str, default: Any = MISSING, choices: Iterable[str] | None = None) -> str | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.error(f"{key} must be a string")
        if choices is not None and v not in choices:
            raise self.error(f"{key} must be one of {', '.join(choices)}, not {v!r}")
        return v

    def str_list(self, key: str, default: Any = MISSING) -> list[str] | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.error(f"{key} must be a string or a list of strings")
        return list(v)

    def table(self, key: str, default: Any = MISSING) -> dict[str, Any] | None:
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(f"{key} must be a table, like {key} = {{ name = \"value\" }}")
        return dict(v)

    def unknown(self) -> list[str]:
        return sorted(set(self._table) - self._used)

    def check_unused(self) -> None:
        unknown = self.unknown()
        if unknown:
            raise self.error(f"unknown setting(s) {', '.join(unknown)}", "see docs/validate.md for each rule's settings")


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


class PathMatcher:
    """Globs in .gitignore syntax (``*.csv`` anywhere, ``/labels.csv`` at the root, ``train/**``, ``!`` to exclude)."""

    def __init__(self, patterns: list[str] | None) -> None:
        self.patterns = patterns
        self._spec = pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None

    def __call__(self, path: str) -> bool:
        return True if self._spec is None else self._spec.match_file(path)


def path_matches(pattern: str, path: str) -> bool:
    """A plain path names that file or everything below that folder; a pattern with * ? [ is a glob."""
    if _has_magic(pattern):
        return pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(path)
    p = pattern.strip("/")
    return p == "" or path == p or path.startswith(p + "/")


class Rule:
    """Base class of every rule. Subclasses set ``type`` and override what they need."""

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reads_content: ClassVar[bool] = False
    # Globs a rule applies to when the config gives none (None: every file).
    default_glob: ClassVar[list[str] | None] = None

    def __init__(self, name: str, options: Options) -> None:
        self.name = name
        self.options = options
        self.severity = options.str("severity", "error", choices=("error", "warning"))
        self.glob = options.str_list("glob", self.default_glob)
        self._match = PathMatcher(self.glob)
        self.lock = threading.Lock()
        self.notes: list[str] = []
        try:
            self.configure(options)
        except MissingExtra:
            raise  # settings not read yet are not unknown: only the install is wrong
        except RuleConfigError as exc:
            unknown = options.unknown()
            if unknown:  # most likely a typo of the setting that seems missing
                raise RuleConfigError(f"{exc.message} (unknown setting(s) here: {', '.join(unknown)})", exc.hint) from None
            raise
        options.check_unused()

    # -- for subclasses --------------------------------------------------------

    def configure(self, options: Options) -> None:
        """Read this rule's settings (``options.int("max")`` and so on)."""

    def start(self, context: RunContext) -> None:
        """Called once before the listing, with what the run offers beyond the version's files."""

    def selects(self, entry: SourceEntry) -> bool:
        """Whether this rule looks at ``entry`` at all (default: its globs)."""
        return self._match(entry.path)

    def visit(self, entry: SourceEntry) -> Iterable[Finding] | None:
        """Called for each selected file in path order, with metadata only; may return findings."""
        return None

    def wants_content(self, entry: SourceEntry) -> bool:
        """Whether ``check_file`` must read this selected file."""
        return self.reads_content

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> Iterable[Finding] | None:
        """Read what is needed from ``stream`` (seekable, verified); runs in worker threads, so guard shared state with ``self.lock``."""
        return None

    def finish(self) -> Iterable[Finding] | None:
        """Verdicts that need the whole listing."""
        return None

    def close(self) -> None:
        """Called once at the end of a run, even one cut short: release what ``start`` or the checks opened."""

    def note(self, text: str) -> None:
        """Record something the report should say that is not a finding (safe from worker threads)."""
        with self.lock:
            self.notes.append(text)

    def describe(self) -> str:
        return self.description or self.type


RULES: dict[str, type[Rule]] = {}


def register_rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator (or plain call) making a rule type available to configs."""
    if not isinstance(cls, type) or not issubclass(cls, Rule) or not cls.type:
        raise TypeError(f"{cls!r} is not a Rule subclass with a type name")
    RULES[cls.type] = cls
    return cls


def require_module(module: str, extra: str, rule: Options, package: str | None = None) -> Any:
    """Import an optional dependency a rule needs; when missing, an error naming the pip command.

    ``package`` is the name pip knows it by, when that is not the module's (Pillow for PIL).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        err = rule.error(f"needs {package or module.split('.')[0]}, which is not installed", f"pip install 'datactl[{extra}]'")
        raise MissingExtra(err.message, err.hint) from None


def bounds_findings(what: str, value: int | float, lo: int | float | None, hi: int | float | None, fmt=str) -> list[Finding]:
    if lo is not None and value < lo:
        return [Finding(f"{what} is {fmt(value)}, below the minimum {fmt(lo)}")]
    if hi is not None and value > hi:
        return [Finding(f"{what} is {fmt(value)}, above the maximum {fmt(hi)}")]
    return []
