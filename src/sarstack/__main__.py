"""``python -m sarstack <stage> ...``: the same as the ``sarstack`` command."""

from sarstack.cli import main

main()
