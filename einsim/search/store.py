"""Append-only, crash-safe, single-writer sweep stores: a CSV file or a Parquet directory.

Rows carry a ``point_key`` (a hash of the point's inputs); reading deduplicates by it.

* Opening takes the store's writer lock (:mod:`einsim.search.store_lock`) before anything else, then
  checks, reading a bounded amount and writing nothing, that an existing ``--out`` is a store
  of ours holding the same experiment (:mod:`einsim.search.manifest`).  Only then is a torn
  last CSV line cut or a Parquet temporary left by a kill removed.
* CSV rows are appended and fsync'ed per batch, one line a row.  A batch that fails (a full
  disk) is cut back off, so the file stays whole rows.  A batch with a new column rewrites the
  file (streamed, to a temporary renamed into place) under the lock.
* Parquet gets one ``part-<n>-<pid>-<uuid>.parquet`` per batch, written under a hidden name
  and renamed into place when whole; names cannot collide.
* The manifest is written just before the first row, so a sweep that fails before its first
  point leaves nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Iterable, Iterator

from einsim.errors import EinsimError
from einsim.search.store_lock import StoreLock
from einsim.search.manifest import (NotAStoreError, check, fsync_directory, read_manifest,
                                   write_manifest)

KEY = "point_key"
TEXT_COLUMNS = {KEY, "mapping", "hardware", "workload", "error", "objective"}
HEADER_LIMIT = 1 << 20  # bytes read to find a CSV header: bounded whatever --out is


class StoreExistsError(EinsimError):
    """The output already exists and ``resume`` was not asked for."""


class StoreWriteError(EinsimError):
    """A batch could not be written (a full disk...); the rows before it are kept."""


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


def open_store(path: str | Path, resume: bool = False,
               manifest: dict | None = None) -> "CsvStore | ParquetStore":
    """The store at ``path`` (Parquet if it ends in ``.parquet``, else CSV), locked for
    writing until :meth:`close`.  An existing output is an error unless ``resume``; then it
    must be a store of ours whose manifest matches ``manifest`` (when given)."""
    path = Path(path)
    lock = StoreLock(path).acquire()
    try:
        if (path.exists() or path.is_symlink()) and not resume:
            raise StoreExistsError(f"{path} exists; pass --resume to continue it or choose "
                                   "another --out")
        kind = ParquetStore if path.suffix == ".parquet" else CsvStore
        return kind(path, lock, manifest)
    except BaseException:
        lock.release()
        raise


def read_rows(path: str | Path) -> dict[str, dict]:
    """The rows of a store by key, without opening it for writing (empty if missing)."""
    path = Path(path)
    if not path.exists():
        return {}
    kind = ParquetStore if path.suffix == ".parquet" else CsvStore
    return _by_key(kind.iter_rows(path))


def _by_key(rows: Iterable[dict]) -> dict[str, dict]:  # the first row of a key wins
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


class _Store:
    """What both kinds share: the lock, the manifest, a failed batch stopping the rest."""

    manifest_path: Path

    def __init__(self, path: Path, lock: StoreLock, manifest: dict | None):
        self.path, self.lock, self.manifest = path, lock, manifest
        self.failed: str | None = None
        self._manifest_ok = manifest is None

    def _check_manifest(self, has_rows: bool) -> None:
        stored = read_manifest(self.manifest_path, self.path)
        if stored is not None and has_rows and self.manifest is not None:
            check(stored, self.manifest, self.path)
            self._manifest_ok = True  # the same experiment: nothing to write

    def _before_write(self) -> None:
        if self.failed:
            raise StoreWriteError(self.failed)
        if not self._manifest_ok:
            self._guard(lambda: write_manifest(self.manifest_path, self.manifest))
            self._manifest_ok = True

    def _guard(self, write, undo=None) -> None:
        """Run ``write``; an OSError stops the store (after ``undo``) as one clear error."""
        try:
            write()
        except OSError as error:
            if undo is not None:
                try:
                    undo()
                except OSError:
                    pass
            self.failed = (f"--out {self.path}: cannot write ({error.strerror or error}); the "
                           "rows written before are kept: fix this and rerun with --resume")
            raise StoreWriteError(self.failed) from None

    def stored(self, keys_only: bool = False) -> dict | set:
        """The rows already stored, by key (or only their keys), in bounded chunks."""
        if not self.path.exists():
            return set() if keys_only else {}
        rows = self.iter_rows(self.path, [KEY] if keys_only else None)
        if keys_only:
            return {row[KEY] for row in rows if row.get(KEY)}
        return _by_key(rows)

    def close(self) -> None:
        self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CsvStore(_Store):
    def __init__(self, path: Path, lock: StoreLock, manifest: dict | None = None):
        super().__init__(path, lock, manifest)
        self.manifest_path = path.with_name(path.name + ".manifest.json")
        self.columns: list[str] = []
        self._size = 0
        for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)  # a rewrite a kill interrupted (we hold the lock)
        if path.exists() or path.is_symlink():
            self._open_existing()

    def _open_existing(self) -> None:
        """Check the file is a sweep of ours (writing nothing), then cut a torn last line."""
        try:
            mode = os.stat(self.path).st_mode
        except OSError as error:
            raise NotAStoreError(f"--out {self.path}: cannot read it ({error.strerror})") \
                from None
        if stat.S_ISDIR(mode):
            raise NotAStoreError(f"--out {self.path}: is a directory; a CSV sweep store is a "
                                 "file (a Parquet store is a directory named *.parquet)")
        if not stat.S_ISREG(mode):
            raise NotAStoreError(f"--out {self.path}: not a regular file, so not a sweep "
                                 "file; choose another --out")
        with open(self.path, "rb") as handle:
            head = handle.read(HEADER_LIMIT)
            size = handle.seek(0, os.SEEK_END)
        line, newline, _ = head.partition(b"\n")
        columns = _header(line) if newline else None
        ours = bool(columns) and columns[0] == KEY and {"seq_len", "feasible"} <= set(columns)
        torn_header = not newline and head.startswith(KEY.encode()) and \
            self.manifest_path.exists()  # a kill during the first write
        if (size or not self.manifest_path.exists()) and not ours and not torn_header:
            raise NotAStoreError(f"--out {self.path}: exists but is not a sweep file (no "
                                 f"{KEY} header); choose another --out")
        self._check_manifest(has_rows=bool(ours))
        end = _last_newline(self.path, size) if ours else 0
        if end < size:  # a torn last line (or header): cut it
            os.truncate(self.path, end)
            fsync_path(self.path)
        self.columns, self._size = (columns if ours else []), end

    @staticmethod
    def iter_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict]:
        """Every whole row (a torn last line is skipped), streamed."""
        with open(path, "rb") as handle:
            header = _header(handle.readline().rstrip(b"\n")) or []
            wanted = [(i, c) for i, c in enumerate(header) if columns is None or c in columns]
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                cells = next(csv.reader([line.decode(errors="replace")[:-1]]), [])
                if len(cells) == len(header):
                    yield {c: _cell(c, cells[i]) for i, c in wanted}

    def append(self, rows: list[dict]) -> None:
        """Append ``rows`` (flat dicts with a point_key) and make them durable."""
        if not rows:
            return
        self._before_write()
        new = [c for c in dict.fromkeys(c for r in rows for c in r) if c not in self.columns]
        if new and self._size:  # a column the header lacks: rewrite the file with it
            self._guard(lambda: self._rewrite(self.columns + new))
        elif new:
            self.columns = [KEY] + [c for c in self.columns + new if c != KEY]
        writer = csv.writer(buffer := io.StringIO(), lineterminator="\n")
        if not self._size:
            writer.writerow(self.columns)
        # one line a row (no newline inside a cell): cutting at a newline is exact
        writer.writerows([_text(row.get(c)) for c in self.columns] for row in rows)
        data, created = buffer.getvalue().encode(), not self.path.exists()
        self._guard(lambda: self._write(data, created), lambda: self._cut(self._size))
        self._size += len(data)

    def _write(self, data: bytes, created: bool) -> None:
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            fsync_directory(self.path.parent)

    def _cut(self, size: int) -> None:
        if size:
            os.truncate(self.path, size)
        else:
            self.path.unlink(missing_ok=True)

    def _rewrite(self, columns: list[str]) -> None:
        """The file with ``columns`` (the old ones first), streamed line by line."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        extra = b"," * (len(columns) - len(self.columns))
        try:
            with open(self.path, "rb") as source, open(temporary, "wb") as target:
                source.readline()
                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(columns)
                target.write(header.getvalue().encode())
                for line in source:
                    if line.endswith(b"\n"):
                        target.write(line[:-1] + extra + b"\n")
                target.flush()
                os.fsync(target.fileno())
                size = target.tell()
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(self.path.parent)
        self.columns, self._size = columns, size


def _header(line: bytes) -> list[str] | None:
    try:
        return next(csv.reader([line.decode()]), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def _last_newline(path: Path, size: int) -> int:
    """The offset just after the file's last newline (0 if none), reading from the end."""
    with open(path, "rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0


def glob_escape(name: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetStore(_Store):
    PART = re.compile(r"part-(\d+)(-[0-9]+-[0-9a-f]+)?\.parquet$")

    def __init__(self, path: Path, lock: StoreLock, manifest: dict | None = None):
        super().__init__(path, lock, manifest)
        self.manifest_path = path / "_manifest.json"
        self._next = 0
        if path.exists() or path.is_symlink():
            self._open_existing()

    def _open_existing(self) -> None:
        """Check the directory is a sweep of ours (writing nothing), then drop temporaries."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.path.is_dir():
            raise NotAStoreError(f"--out {self.path}: not a directory; a Parquet sweep store "
                                 "is a directory (a CSV store is a file)")
        names = [p.name for p in self.path.iterdir()]
        parts = sorted(n for n in names if self.PART.match(n))
        junk = [n for n in names if not n.startswith((".", "_")) and n not in parts]
        if junk:
            raise NotAStoreError(f"--out {self.path}: holds {junk[0]}, which is not a part of "
                                 "a sweep; choose another --out")
        for name in parts:
            try:
                schema = pq.read_schema(self.path / name)
            except (pa.ArrowException, OSError):
                schema = None
            if schema is None or KEY not in schema.names:
                raise NotAStoreError(f"--out {self.path}: {name} is not a sweep part file; "
                                     "choose another --out")
        self._check_manifest(has_rows=bool(parts))
        for stale in [*self.path.glob(".part-*.tmp"), *self.path.glob("._manifest.json.*.tmp")]:
            stale.unlink()  # a part or manifest a kill interrupted (we hold the lock)
        self._next = max((int(self.PART.match(n).group(1)) for n in parts), default=-1) + 1

    @classmethod
    def iter_rows(cls, path: Path, columns: list[str] | None = None) -> Iterator[dict]:
        """Every row, part by part (parts may differ in columns)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not path.is_dir():
            raise NotAStoreError(f"{path}: not a Parquet sweep directory")
        for part in sorted(p for p in path.iterdir() if cls.PART.match(p.name)):
            try:
                table = pq.read_table(part, columns=columns)
            except (pa.ArrowException, OSError) as error:
                raise NotAStoreError(f"{path}: cannot read {part.name} ({error})") from None
            yield from table.to_pylist()

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` as a new part file, atomically."""
        import pyarrow as pa

        if not rows:
            return
        columns = list(dict.fromkeys([KEY] + [c for row in rows for c in row]))
        table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns})
        self.path.mkdir(parents=True, exist_ok=True)
        self._before_write()
        name = f"part-{self._next:05d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        temporary = self.path / f".{name}.tmp"
        self._guard(lambda: self._write(table, temporary, self.path / name),
                    lambda: temporary.unlink(missing_ok=True))
        self._next += 1

    def _write(self, table, temporary: Path, final: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(table, temporary)
        fsync_path(temporary)
        os.replace(temporary, final)
        fsync_directory(self.path)
