"""pixseek: semantic image search over your own folders (CLIP embeddings in SQLite + FAISS, offline).

One import root. Layers, each using only those below it (docs/architecture.md):

* ``pixseek.cli`` and ``pixseek.ui`` - the command and the search page;
* ``pixseek.index`` (index runs, doctor) and ``pixseek.search`` (queries), ``pixseek.train``;
* ``pixseek.models`` (registry, encoders, export) and ``pixseek.store`` (SQLite, FAISS, thumbnails);
* the core modules here: ``errors``, ``settings``, ``fileio``, ``faults``, ``decode``.
"""
