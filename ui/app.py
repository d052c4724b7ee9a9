"""The Streamlit script ``pixseek ui`` runs: the page itself is :mod:`pixseek.ui.page`."""

from pixseek.ui.page import main

main()
