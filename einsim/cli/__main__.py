"""``python -m einsim.cli``: the einsim command line (its exit status included)."""

import sys

from einsim.cli import main

sys.exit(main())
