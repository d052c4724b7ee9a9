"""Storage: the SQLite database (the truth), the FAISS cache of its vectors, the thumbnail cache, the
data dir and its lock. All of pixseek's SQL and data files live here; storage knows no model.
"""

from .database import ImageRow, Store
from .filters import Filter
from .paths import DataDir
from .vectors import VectorIndex

__all__ = ["DataDir", "Filter", "ImageRow", "Store", "VectorIndex"]
