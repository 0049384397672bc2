"""Dataset validation for CI: rules over a version's files, read through a ``VersionSource``.

The entry point for a version in a workspace or on a remote is
``datactl.validate`` (``datactl.api.checks``)::

    import datactl
    report = datactl.validate("v3", remote="origin")   # rules from datactl.toml [validate]
    if not report.ok: ...

See docs/validate.md for the rules and docs/ci.md for CI setups.
"""

from datactl.core.errors import ValidationFailed
from datactl.validation.config import RulesConfig, load_rules, prepare_rules
from datactl.validation.context import RunContext
from datactl.validation.engine import RuleResult, ValidationReport, run_rules
from datactl.validation.hook import run_commit_rules
from datactl.validation.rules import RULES, Finding, Options, Rule, RuleConfigError, register_rule

__all__ = [
    "Finding",
    "Options",
    "RULES",
    "Rule",
    "RuleConfigError",
    "RuleResult",
    "RunContext",
    "ValidationFailed",
    "ValidationReport",
    "RulesConfig",
    "load_rules",
    "prepare_rules",
    "register_rule",
    "run_commit_rules",
    "run_rules",
]
