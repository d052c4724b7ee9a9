"""Index runs: scan folders, decode in worker processes, embed, commit (``pixseek index``), and the
``pixseek doctor`` checks and repairs. Uses the model layer and storage; nothing below imports it."""
