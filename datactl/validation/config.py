"""Reading rules from ``datactl.toml`` (``[validate]``) or a rules file, and loading plugin rules.

::

    [validate]
    on_commit = true                 # `datactl commit` runs the rules first
    workers = 8                      # files read in parallel
    plugins = ["ci_rules:NoSpaces"]  # extra rule classes (module:Class)

    [[validate.rules]]
    type = "count"
    glob = "train/**"
    min = 1000

A rules file holds the same ``[validate]`` table, or its keys at the top level.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from datactl.core.errors import UsageError
from datactl.core.settings import settings_path
from datactl.remote.locate import settings_root
from datactl.validation import builtin  # noqa: F401  (registers the built-in rules)
from datactl.validation.rules import RULES, Options, Rule, RuleConfigError, register_rule

ENTRY_POINT_GROUP = "datactl.rules"
SETTINGS = ("rules", "plugins", "workers", "on_commit")


@dataclass
class RulesConfig:
    rules: list[dict[str, Any]] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    workers: int = 8
    on_commit: bool = False
    base_dir: str = "."
    origin: str = "(given)"


def parse_config(table: dict[str, Any], origin: str, base_dir: str) -> RulesConfig:
    """A ``[validate]`` table as a RulesConfig; wrong shapes are configuration errors."""
    if not isinstance(table, dict):
        raise RuleConfigError(f"{origin}: [validate] must be a table")
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise RuleConfigError(f"{origin}: unknown [validate] setting(s) {', '.join(unknown)}", f"the settings are {', '.join(SETTINGS)}")
    rules = table.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RuleConfigError(f"{origin}: rules must be an array of tables ([[validate.rules]])")
    plugins = table.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise RuleConfigError(f"{origin}: plugins must be a list of \"module:Class\" strings")
    workers = table.get("workers", 8)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RuleConfigError(f"{origin}: workers must be a positive whole number")
    on_commit = table.get("on_commit", False)
    if not isinstance(on_commit, bool):
        raise RuleConfigError(f"{origin}: on_commit must be true or false")
    return RulesConfig(list(rules), list(plugins), workers, on_commit, base_dir, origin)


def read_rules_file(path: str) -> RulesConfig:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"rules file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleConfigError(f"{path} is not valid TOML: {exc}") from None
    table = doc.get("validate", doc) if isinstance(doc.get("validate"), dict) else doc
    if "dataset" in table or "remotes" in table:  # a whole datactl.toml without [validate]
        table = {}
    return parse_config(table, path, os.path.dirname(os.path.abspath(path)))


def read_workspace_rules(root: str) -> RulesConfig:
    """The ``[validate]`` table of ``root/datactl.toml`` (empty when there is none)."""
    path = settings_path(root)
    if not os.path.exists(path):
        return RulesConfig(base_dir=root, origin=path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise RuleConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(doc.get("validate", {}), path, root)


_entry_points_loaded = False


def load_entry_point_rules() -> None:
    """Register rule classes published by installed packages (group ``datactl.rules``)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise RuleConfigError(f"rule plugin {ep.name} ({ep.value}) cannot be loaded: {exc}") from None
        if isinstance(cls, type) and issubclass(cls, Rule):
            if not cls.type:
                cls.type = ep.name
            register_rule(cls)


def load_plugin(spec: str, base_dir: str) -> type[Rule]:
    """Import ``module:Class`` (the config's folder is importable) and register the class."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RuleConfigError(f"plugin {spec!r} must be written module:Class")
    added = base_dir not in sys.path
    if added:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except Exception as exc:
        raise RuleConfigError(f"plugin {spec} cannot be loaded: {type(exc).__name__}: {exc}", f"is {module_name} importable from {base_dir}?") from None
    finally:
        if added:
            sys.path.remove(base_dir)
    if not isinstance(cls, type) or not issubclass(cls, Rule) or not cls.type:
        raise RuleConfigError(f"plugin {spec} is not a datactl Rule subclass with a type name")
    return register_rule(cls)


def build_rules(config: RulesConfig) -> list[Rule]:
    """Rule objects for every ``[[validate.rules]]`` entry; any mistake is a RuleConfigError."""
    load_entry_point_rules()
    for spec in config.plugins:
        load_plugin(spec, config.base_dir)
    rules: list[Rule] = []
    names: set[str] = set()
    for i, table in enumerate(config.rules, 1):
        rtype = table.get("type")
        if not isinstance(rtype, str) or rtype not in RULES:
            known = ", ".join(sorted(RULES))
            raise RuleConfigError(f"{config.origin}: rule #{i} has type {rtype!r}; known types: {known}", "a plugin rule needs [validate] plugins = [\"module:Class\"] or an installed entry point")
        name = table.get("name")
        if name is None:
            glob = table.get("glob")
            name = rtype + (f" {glob}" if isinstance(glob, str) else f" {', '.join(glob)}" if isinstance(glob, list) else "")
        if not isinstance(name, str):
            raise RuleConfigError(f"{config.origin}: rule #{i}: name must be a string")
        base, n = name, 2
        while name in names:
            name, n = f"{base} #{n}", n + 1
        names.add(name)
        rules.append(RULES[rtype](name, Options(name, table)))
    return rules


def load_rules(root: str | None = None, rules_file: str | None = None) -> tuple[list[Rule], RulesConfig]:
    """Rules from ``rules_file``, or from ``[validate]`` in the workspace's (or current folder's) datactl.toml."""
    if rules_file is not None:
        config = read_rules_file(rules_file)
    else:
        where = settings_root(root)
        if where is None:
            raise UsageError("no rules: no datactl.toml here and no rules file given", "pass --rules FILE")
        config = read_workspace_rules(where)
    return build_rules(config), config


def prepare_rules(
    rules: list[Rule] | list[dict] | dict | None, rules_file: str | None = None, root: str | None = None
) -> tuple[list[Rule], RulesConfig | None]:
    """Rules as a caller gives them: Rule objects, rule tables, a whole ``[validate]`` table, or None (from settings)."""
    base_dir = os.path.abspath(root or os.getcwd())
    if rules is None:
        return load_rules(root, rules_file)
    if isinstance(rules, dict):
        config = parse_config(rules, "(given)", base_dir)
        return build_rules(config), config
    if all(isinstance(r, Rule) for r in rules):
        return list(rules), None  # type: ignore[arg-type]
    config = RulesConfig(rules=list(rules), base_dir=base_dir)  # type: ignore[arg-type]
    return build_rules(config), config
