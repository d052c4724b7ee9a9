"""``python -m pixseek``: the command line."""

from .cli import main

main()
