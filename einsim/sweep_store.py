"""Append-only, crash-safe sweep stores: a CSV file or a Parquet dataset directory.

Rows carry a ``point_key`` (a hash of the point's inputs); reading deduplicates by it.  CSV
rows are appended and fsync'ed per batch (a torn last line is cut on resume, ignored on read);
``<name>.parquet/`` gets one ``part-XXXXX.parquet`` per batch, renamed into place when whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
from pathlib import Path
from typing import Iterator

from einsim.errors import SpecError, EinsimError

KEY = "point_key"
TEXT_COLUMNS = {KEY, "mapping", "hardware", "workload", "error"}


class StoreExistsError(EinsimError):
    """The output already exists and ``resume`` was not asked for."""


def _token(name: str, value) -> str:
    """``name=value``, the same for 64, 64.0 and numpy's 64."""
    value = value.item() if hasattr(value, "item") else value
    value = int(value) if isinstance(value, float) and value.is_integer() else value
    return f"{name}={json.dumps(value, default=str)}"


def point_keys(mapping: str, workload: str, hardware: str, objective: str, seq_lens,
               parameters: dict) -> Iterator[str]:
    """Stable keys of a sweep's points (hashes of their inputs), in Cartesian order."""
    head, given = json.dumps([mapping, workload, hardware, objective]), list(parameters)
    tokens = [[_token(name, v) for v in parameters[name]] for name in given]
    order = sorted(range(len(given)), key=given.__getitem__)  # by name: order-independent
    for seq_len in seq_lens:
        prefix = f"{head}|{_token('seq_len', seq_len)}|"
        for values in itertools.product(*tokens):
            text = prefix + ";".join([values[i] for i in order])
            yield hashlib.sha1(text.encode()).hexdigest()[:20]


def point_key(mapping: str, workload: str, hardware: str, objective: str, seq_len: int,
              swept: dict) -> str:
    """The key of one design point (as :func:`point_keys`)."""
    return next(point_keys(mapping, workload, hardware, objective, [seq_len],
                           {k: [v] for k, v in swept.items()}))


def open_store(path: str | Path, resume: bool = False) -> "CsvStore | ParquetStore":
    """The store at ``path`` (Parquet if it ends in ``.parquet``, else CSV) to ``append`` rows
    to (each batch is durable when it returns); an existing output is an error unless
    ``resume`` is true."""
    path = Path(path)
    if path.exists() and not resume:
        raise StoreExistsError(f"{path} exists; pass --resume to continue it or choose "
                               "another --out")
    return (ParquetStore if path.suffix == ".parquet" else CsvStore)(path)


def read_rows(path: str | Path) -> dict[str, dict]:
    """The rows of a store by key, without opening it for writing (empty if missing)."""
    kind = ParquetStore if Path(path).suffix == ".parquet" else CsvStore
    return kind.read_path(Path(path)) if Path(path).exists() else {}


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _by_key(rows) -> dict[str, dict]:  # the first row of a key wins
    found: dict[str, dict] = {}
    for row in rows:
        if row.get(KEY):
            found.setdefault(row[KEY], row)
    return found


def _text(value) -> str:
    """A CSV cell: missing is '', a float keeps its exact repr, no newline inside a row."""
    return "" if value is None else re.sub(r"[\r\n]+", " ", value) if isinstance(value, str) \
        else str(value)


def _cell(column: str, text: str):
    """A CSV cell back as a value: '' is missing; numbers keep their int/float spelling."""
    if column in TEXT_COLUMNS or text in ("", "True", "False"):
        return text if column in TEXT_COLUMNS else None if text == "" else text == "True"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


class CsvStore:
    def __init__(self, path: Path):  # the file is created by the first append
        self.path, self.columns = path, []
        if path.exists():  # cut a torn last line (no newline at its end), read the header
            data = path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                os.truncate(path, end)
                _fsync(path)
            try:
                self.columns = next(csv.reader(io.StringIO(data[:end].decode())), [])
            except UnicodeDecodeError:
                self.columns = []
            if data and KEY not in self.columns:
                raise SpecError(f"--out {path}: exists but is not a sweep file (no {KEY} "
                                "column); choose another --out")

    @staticmethod
    def read_path(path: Path) -> dict[str, dict]:
        text = path.read_bytes().decode(errors="replace")
        reader = csv.reader(io.StringIO(text[:text.rfind("\n") + 1]))  # no torn last line
        header = next(reader, [])
        return _by_key({c: _cell(c, v) for c, v in zip(header, cells)}
                       for cells in reader if len(cells) == len(header))

    def append(self, rows: list[dict]) -> None:
        """Append ``rows`` (flat dicts with a point_key) and make them durable."""
        new = [c for c in dict.fromkeys(c for r in rows for c in r) if c not in self.columns]
        if new and self.columns:  # a column the header lacks: rewrite the file with it
            self._rewrite(self.columns + new)
        elif new:
            self.columns = [KEY] + [c for c in new if c != KEY]
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(buffer := io.StringIO(), lineterminator="\n")
            if handle.tell() == 0 and rows:
                writer.writerow(self.columns)
            # one line a row (no newline inside a cell): cutting at a newline is exact
            writer.writerows([_text(row.get(c)) for c in self.columns] for row in rows)
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())

    def _rewrite(self, columns: list[str]) -> None:
        old = self.read_path(self.path)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([_text(row.get(c)) for c in columns] for row in old.values())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        _fsync(self.path.parent, directory=True)
        self.columns = columns


class ParquetStore:
    PART = re.compile(r"part-(\d+)\.parquet$")

    def __init__(self, path: Path):  # the directory is created by the first append
        self.path, numbers = path, []
        if path.is_dir():
            for stale in path.glob(".part-*.tmp"):  # a part a kill interrupted: not renamed
                stale.unlink()
            numbers = [int(m.group(1)) for p in path.iterdir() if (m := self.PART.match(p.name))]
        self._next = max(numbers, default=-1) + 1

    @staticmethod
    def read_path(path: Path) -> dict[str, dict]:
        import pyarrow as pa
        import pyarrow.dataset as ds

        fragments = ds.dataset(path, format="parquet").get_fragments()  # skips hidden .tmp
        tables = [f.to_table() for f in sorted(fragments, key=lambda f: f.path)]
        return _by_key(pa.concat_tables(tables, promote_options="permissive").to_pylist()
                       if tables else [])  # parts may differ in columns: promoted

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` as the next part file, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return
        columns = list(dict.fromkeys([KEY] + [c for row in rows for c in row]))
        table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns})
        name = f"part-{self._next:05d}.parquet"
        temporary = self.path / f".{name}.tmp"
        self.path.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, temporary)
        _fsync(temporary)
        os.replace(temporary, self.path / name)
        _fsync(self.path, directory=True)
        self._next += 1
