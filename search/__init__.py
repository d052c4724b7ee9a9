"""Read side of pixseek: queries -> ranked results. ``from search import Engine``."""
from .engine import Engine, Result
from .query import Term, build_terms

__all__ = ["Engine", "Result", "Term", "build_terms"]
