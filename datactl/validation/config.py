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

Plugins named in a file are code from the workspace (or wherever the file
came from): they are imported only when the user said to trust them, with
``--trust-plugins`` or ``DATACTL_TRUST_PLUGINS=1`` in the environment (never
a setting in a file the plugin could ship with). Rules of installed packages
(the ``datactl.rules`` entry points) and plugins a program passes in need no
trust.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from datactl.core.errors import UsageError
from datactl.core.settings import load_toml, settings_path
from datactl.remote.locate import settings_root
from datactl.validation import builtin, tablestats  # noqa: F401  (register the built-in rules)
from datactl.validation.rules import RULES, Options, Rule, RuleConfigError, register_rule

ENTRY_POINT_GROUP = "datactl.rules"
TRUST_ENV = "DATACTL_TRUST_PLUGINS"
SETTINGS = ("rules", "plugins", "workers", "on_commit")


@dataclass
class RulesConfig:
    rules: list[dict[str, Any]] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    workers: int = 8
    on_commit: bool = False
    base_dir: str = "."
    origin: str = "(given)"
    plugins_need_trust: bool = False  # read from a file: its plugins are imported only when trusted


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
        doc = load_toml(path)
    except FileNotFoundError:
        raise UsageError(f"rules file {path} does not exist") from None
    table = doc.get("validate", doc) if isinstance(doc.get("validate"), dict) else doc
    if "dataset" in table or "remotes" in table:  # a whole datactl.toml without [validate]
        table = {}
    config = parse_config(table, path, os.path.dirname(os.path.abspath(path)))
    config.plugins_need_trust = True
    return config


def read_workspace_rules(root: str) -> RulesConfig:
    """The ``[validate]`` table of ``root/datactl.toml`` (empty when there is none)."""
    path = settings_path(root)
    if not os.path.exists(path):
        return RulesConfig(base_dir=root, origin=path)
    doc = load_toml(path)
    config = parse_config(doc.get("validate", {}), path, root)
    config.plugins_need_trust = True
    return config


def plugins_trusted(trust_plugins: bool = False) -> bool:
    """Whether plugin code named in a settings or rules file may be imported: ``--trust-plugins``, or
    ``DATACTL_TRUST_PLUGINS=1`` set by the user outside any versioned file."""
    return trust_plugins or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


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


def build_rules(config: RulesConfig, trust_plugins: bool = False) -> list[Rule]:
    """Rule objects for every ``[[validate.rules]]`` entry; any mistake is a RuleConfigError.

    Plugins of a config read from a file are imported only when trusted
    (``trust_plugins``, or DATACTL_TRUST_PLUGINS=1); otherwise nothing is
    imported and the config is refused.
    """
    load_entry_point_rules()
    if config.plugins and config.plugins_need_trust and not plugins_trusted(trust_plugins):
        raise RuleConfigError(
            f"{config.origin}: [validate] plugins names code ({', '.join(config.plugins)}) that datactl runs only when you trust it",
            f"if you trust the code of this workspace, pass --trust-plugins or set {TRUST_ENV}=1; "
            "rules of installed packages (entry points) need no trust",
        )
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


def load_rules(root: str | None = None, rules_file: str | None = None, trust_plugins: bool = False) -> tuple[list[Rule], RulesConfig]:
    """Rules from ``rules_file``, or from ``[validate]`` in the workspace's (or current folder's) datactl.toml."""
    if rules_file is not None:
        config = read_rules_file(rules_file)
    else:
        where = settings_root(root)
        if where is None:
            raise UsageError("no rules: no datactl.toml here and no rules file given", "pass --rules FILE")
        config = read_workspace_rules(where)
    return build_rules(config, trust_plugins), config


def prepare_rules(
    rules: list[Rule] | list[dict] | dict | None, rules_file: str | None = None, root: str | None = None, trust_plugins: bool = False
) -> tuple[list[Rule], RulesConfig | None]:
    """Rules as a caller gives them: Rule objects, rule tables, a whole ``[validate]`` table, or None (from settings).

    Plugins the caller names in ``rules`` are its own code and are imported;
    those named in a file need ``trust_plugins`` (see ``build_rules``).
    """
    base_dir = os.path.abspath(root or os.getcwd())
    if rules is None:
        return load_rules(root, rules_file, trust_plugins)
    if isinstance(rules, dict):
        config = parse_config(rules, "(given)", base_dir)
        return build_rules(config), config
    if all(isinstance(r, Rule) for r in rules):
        return list(rules), None  # type: ignore[arg-type]
    config = RulesConfig(rules=list(rules), base_dir=base_dir)  # type: ignore[arg-type]
    return build_rules(config), config
