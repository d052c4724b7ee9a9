"""Queries -> ranked results: ``from pixseek.search import Engine``. Uses the model layer and storage."""

from pixseek.store.filters import Filter

from .engine import Engine, Result
from .query import Term, build_terms

__all__ = ["Engine", "Filter", "Result", "Term", "build_terms"]
