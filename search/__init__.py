"""Queries -> ranked results: ``from pixseek.search import Engine``. Uses the model layer and storage."""

from pixseek.store.filters import Filter

from .calibrate import ScoreScale, calibrate
from .engine import Engine, Prepared
from .groups import Group, group_copies
from .query import Term, build_terms
from .results import Result

__all__ = [
    "Engine",
    "Filter",
    "Group",
    "Prepared",
    "Result",
    "ScoreScale",
    "Term",
    "build_terms",
    "calibrate",
    "group_copies",
]
