"""Queries -> ranked results: ``from pixseek.search import Engine``. Uses the model layer and storage."""

from pixseek.store.filters import Filter

from .calibrate import ScoreScale, calibrate
from .cutoff import Cutoff
from .engine import Engine, Prepared
from .groups import Group, GroupPage, group_copies
from .query import Term, build_terms
from .results import Result, Results

__all__ = [
    "Cutoff",
    "Engine",
    "Filter",
    "Group",
    "GroupPage",
    "Prepared",
    "Result",
    "Results",
    "ScoreScale",
    "Term",
    "build_terms",
    "calibrate",
    "group_copies",
]
