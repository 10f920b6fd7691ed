"""The writer lock of a sweep store: ``<store>.lock`` beside it, held with ``flock``.

The kernel releases an ``flock`` when its holder dies, so a lock file a killed sweep left
behind never blocks the next one.  The holder writes its pid, host and start time into the
file; a second writer is refused with a message naming them.  The file is removed on release
(while still held); a writer that locked a file someone removed meanwhile retries on the new
one, so two writers never both believe they hold the lock.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from einsim.errors import EinsimError


class StoreLockedError(EinsimError):
    """Another process is writing the store."""


class StoreLock:
    """An exclusive, non-blocking writer lock on ``store`` (a CSV file or Parquet directory)."""

    def __init__(self, store: Path):
        self.store, self.path = store, store.with_name(store.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "StoreLock":
        """Take the lock or raise :class:`StoreLockedError` naming the holder."""
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise StoreLockedError(f"--out {self.store}: cannot create its lock file "
                                       f"{self.path} ({error.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise StoreLockedError(f"--out {self.store} is being written by another sweep "
                                       f"({holder}); wait for it to finish or choose another "
                                       "--out") from None
            if _same_file(fd, self.path):  # not a file its last holder removed meanwhile
                self._fd = fd
                self._write_holder()
                return self
            os.close(fd)
        raise StoreLockedError(f"--out {self.store}: its lock file {self.path} keeps changing")

    def _write_holder(self) -> None:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": started})
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode(), 0)
        except OSError:  # a full disk: the lock holds anyway, only the holder is unnamed
            pass

    def release(self) -> None:
        """Remove the lock file (while holding it) and release the lock."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(fd: int) -> str:
    """``pid N on HOST since TIME`` from a held lock file (its holder may still be writing)."""
    for _ in range(20):
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode())
            return f"pid {info['pid']} on {info['host']} since {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.01)
    return "holder unknown"
