"""The optimization advisor: which slow reads to pre-cache, and what it would save."""

from tiertrace._advisor.advisor import Advisor
from tiertrace._advisor.findings import SUGGESTION_FIELDS, Suggestion

__all__ = ["SUGGESTION_FIELDS", "Advisor", "Suggestion"]
