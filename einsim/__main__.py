"""``python -m einsim``: the command line."""

import sys

from einsim.cli import main

sys.exit(main())
