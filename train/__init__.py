"""Training and evaluation of pixseek's own CLIP-style models (datasets, train, eval)."""
