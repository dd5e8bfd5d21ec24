"""What the asset tests share: the repository root, the rules file and YAML loading."""

from __future__ import annotations

from typing import Any

import yaml

from support import ROOT
from tiertrace._contract import rules as _rules

__all__ = ["ROOT", "RULES", "load", "rule_list"]
RULES = ROOT / _rules.RULES_PATH


def load(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text("utf-8"))


def rule_list() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
