"""The duplicates page's script (``st.navigation`` in :func:`pixseek.ui.page.main` runs it)."""

from pixseek.ui.dupes import page
from pixseek.ui.page import run_page

run_page(page)
