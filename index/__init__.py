"""Write side of pixseek: scan, decode, embed, store (SQLite) and vectors (FAISS).

Heavy libraries (torch, open_clip, faiss) are imported lazily inside the functions that need them.
"""
