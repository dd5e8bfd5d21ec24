"""What the asset tests share: the shipped stack's directory, the rules file and YAML loading."""

from __future__ import annotations

from typing import Any

import yaml

from support import ASSETS
from tools import rules as _rules

__all__ = ["ASSETS", "RULES", "load", "rule_list"]
RULES = ASSETS / _rules.RULES_PATH


def load(relative: str) -> Any:
    return yaml.safe_load((ASSETS / relative).read_text("utf-8"))


def rule_list() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
