"""Point-by-point sweeps on Dask: a local process cluster (``local:N``) or a running scheduler
(``tcp://HOST:PORT``).

Points go out in chunks (one task evaluates up to ``chunk_size`` points) and come back in
whatever order the workers finish; each chunk is handed to ``on_chunk`` as soon as it is done,
so the caller can write it to its (keyed) store.  The workers must be able to import
``einsim`` (a local cluster inherits this process's environment).
"""

from __future__ import annotations

import logging
import math
import re
from functools import partial
from typing import Callable, Iterable

from einsim.errors import EinsimError


class SchedulerError(EinsimError):
    """A ``--scheduler`` that is malformed or cannot be reached."""


def evaluate_chunk(mapping: str, workload: str, hardware: str | None, objective: str,
                   cascade: str | None, items: list[tuple[int, int, dict]]
                   ) -> list[tuple[int, dict]]:
    """Runs on a worker: ``(index, point)`` of every ``(index, seq_len, swept)`` item."""
    from einsim.search.sweeps import evaluate_point

    return [(index, evaluate_point(mapping, workload, seq_len, swept, hardware, objective,
                                   cascade)) for index, seq_len, swept in items]


def connect(scheduler: str, timeout: float = 10.0):
    """``(cluster or None, client)`` for ``local:N`` or a scheduler address (which must answer
    as a Dask scheduler within ``timeout`` seconds)."""
    from dask.distributed import Client, LocalCluster

    local = re.fullmatch(r"local:(\d+)", scheduler.strip())
    if local:
        workers = int(local.group(1))
        if workers < 1:
            raise SchedulerError(f"--scheduler {scheduler}: expected at least one worker")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        try:
            return cluster, Client(cluster)
        except BaseException:
            cluster.close()
            raise
    if not re.fullmatch(r"(tcp|tls|ws|wss|inproc)://\S+", scheduler.strip()):
        raise SchedulerError(f"--scheduler {scheduler!r}: expected local:N (a cluster of N "
                             "worker processes) or the address of a scheduler, "
                             "tcp://HOST:PORT")
    _probe(scheduler.strip(), timeout)
    try:
        return None, Client(scheduler.strip(), timeout=f"{timeout}s")
    except (OSError, TimeoutError) as error:
        raise SchedulerError(f"--scheduler {scheduler}: cannot connect ({error})") from None


def _probe(address: str, timeout: float) -> None:
    """Ask ``address`` who it is, within ``timeout`` seconds: a server that is not a Dask
    scheduler (silent, or speaking another protocol) is a :class:`SchedulerError`, where
    ``Client`` would wait forever."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect as open_comm

    async def identity():
        comm = await open_comm(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        with ThreadPoolExecutor(1) as pool:  # its own event loop, also under Jupyter's
            reply = pool.submit(asyncio.run, asyncio.wait_for(identity(), timeout)).result()
    except Exception as error:  # a timeout, a refusal, or bytes that decode to nonsense
        reason = "no answer" if isinstance(error, TimeoutError) else \
            f"{type(error).__name__}: {' '.join(str(error).split())[:120]}"
        raise SchedulerError(f"--scheduler {address}: not a Dask scheduler, or not reachable "
                             f"within {timeout:g} s ({reason})") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise SchedulerError(f"--scheduler {address}: answered, but is not a Dask scheduler")


class DaskSession:
    """One connection to ``scheduler`` for a whole sweep, run block by block."""

    def __init__(self, scheduler: str, mapping: str, workload: str, hardware: str | None,
                 objective: str, chunk_size: int = 256, cascade: str | None = None):
        self.scheduler, self.chunk_size = scheduler, chunk_size
        self.task = partial(evaluate_chunk, mapping, workload, hardware, objective, cascade)
        self.cluster = self.client = None

    def run(self, items: list[tuple[int, int, dict]],
            on_chunk: Callable[[Iterable[tuple[int, dict]]], None]) -> None:
        """Evaluate ``(index, seq_len, swept)`` items; ``on_chunk`` gets each finished
        chunk's ``(index, point)`` pairs, in the order the workers finish them."""
        from dask.distributed import as_completed

        if self.client is None:
            self.cluster, self.client = connect(self.scheduler)
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        # at most chunk_size points a task, and about four tasks a worker on small sweeps
        size = max(1, min(self.chunk_size, math.ceil(len(items) / (4 * workers))))
        chunks = [items[k:k + size] for k in range(0, len(items), size)]
        futures = self.client.map(self.task, chunks, pure=False)
        for future in as_completed(futures):
            on_chunk(future.result())
            future.release()

    def close(self) -> None:
        """Close the client, and the cluster if this session started it."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.cluster = self.client = None

    def __enter__(self) -> "DaskSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
