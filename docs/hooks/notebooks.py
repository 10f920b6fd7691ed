"""MkDocs hook: publish the notebooks of ``notebooks/`` (as they are, not executed) at
``notebooks/NAME.ipynb`` in the site, so ``docs/notebooks.md`` can link to them.

Excluded from the site itself by ``exclude_docs`` in ``mkdocs.yml``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File(f"notebooks/{notebook.name}", src_dir=str(ROOT),
                          dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
