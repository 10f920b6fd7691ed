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
                   items: list[tuple[int, int, dict]]) -> list[tuple[int, dict]]:
    """Runs on a worker: ``(index, point)`` of every ``(index, seq_len, swept)`` item."""
    from einsim.sweeps import evaluate_point

    return [(index, evaluate_point(mapping, workload, seq_len, swept, hardware, objective))
            for index, seq_len, swept in items]


def connect(scheduler: str):
    """``(cluster or None, client)`` for ``local:N`` or a scheduler address."""
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
    try:
        return None, Client(scheduler.strip(), timeout="10s")
    except (OSError, TimeoutError) as error:
        raise SchedulerError(f"--scheduler {scheduler}: cannot connect ({error})") from None


def run_on_dask(scheduler: str, mapping: str, workload: str, hardware: str | None,
                objective: str, items: list[tuple[int, int, dict]],
                on_chunk: Callable[[Iterable[tuple[int, dict]]], None],
                chunk_size: int = 256) -> None:
    """Evaluate ``(index, seq_len, swept)`` items on ``scheduler``; ``on_chunk`` gets each
    finished chunk's ``(index, point)`` pairs.  The cluster (or client) is closed at the end."""
    from dask.distributed import as_completed

    cluster, client = connect(scheduler)
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        # at most chunk_size points a task, and about four tasks a worker on small sweeps
        size = max(1, min(chunk_size, math.ceil(len(items) / (4 * workers))))
        chunks = [items[k:k + size] for k in range(0, len(items), size)]
        task = partial(evaluate_chunk, mapping, workload, hardware, objective)
        futures = client.map(task, chunks, pure=False)
        for future in as_completed(futures):
            on_chunk(future.result())
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
