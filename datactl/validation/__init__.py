"""Dataset validation for CI: rules over a version's files, read through a ``VersionSource``.

    import datactl
    report = datactl.validate("v3", remote="origin")   # rules from datactl.toml [validate]
    if not report.ok: ...

See docs/validate.md for the rules and docs/ci.md for CI setups.
"""

from datactl.validation.api import ValidationFailed, load_rules, open_source, run_commit_rules, validate
from datactl.validation.engine import RuleResult, ValidationReport, run_rules
from datactl.validation.rules import RULES, Finding, Options, Rule, RuleConfigError, register_rule

__all__ = [
    "Finding",
    "Options",
    "RULES",
    "Rule",
    "RuleConfigError",
    "RuleResult",
    "ValidationFailed",
    "ValidationReport",
    "load_rules",
    "open_source",
    "register_rule",
    "run_commit_rules",
    "run_rules",
    "validate",
]
