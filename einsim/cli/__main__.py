"""``python -m einsim.cli``: the einsim command line."""

from einsim.cli import main

main()
