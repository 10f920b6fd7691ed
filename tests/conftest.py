"""Test-suite settings: compiled trees are cached in a folder of the run, never in the user's
``~/.cache/einsim`` (subprocesses inherit it through the environment)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("EINSIM_CACHE_DIR", tempfile.mkdtemp(prefix="einsim-test-cache-"))
