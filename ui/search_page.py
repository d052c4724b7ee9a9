"""The search page's script (``st.navigation`` in :func:`pixseek.ui.page.main` runs it)."""

from pixseek.ui.page import run_page, search

run_page(search)
