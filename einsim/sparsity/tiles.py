"""Visited and partial KV tiles of every Q tile, without materializing the mask.

Each Q tile is a block of queries (:mod:`einsim.sparsity.pieces`): along the key axis its status
is a few pieces, and each piece covers a run of KV tiles.  A tile's status joins the pieces that
cover it (it has a true point iff one of them has), so every Q tile's KV tiles come out as a
few *runs* of equal status.  Two sweeps produce the runs:

* by residue (any mask): keys ``m = period*q + r``, pieces per residue; a piece covers a
  contiguous run of tiles when the KV tile is at least the period, else a run of the tiles
  ``j = c*n + g`` of one *slot* ``g`` (``n = lcm(period, kv_tile) / kv_tile``); a sweep over the
  pieces' end points joins them; O(Q tiles x period x pieces);
* separable masks with the KV tile at least the period: :mod:`einsim.sparsity.separable`,
  O(Q tiles x pieces²), whatever the period.

Tiles left ``MAYBE`` (an ``and`` of two mixed comparisons, an ``==`` with gaps) are decided
exactly by :func:`decide`: their rows are split in halves, and halves again, until every part
is decided (one row always is); they lie where two mask boundaries cross the same tile, a few
per Q tile, and a split or two settles most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from einsim.sparsity.mask import Mask, SparseMaskError
from einsim.sparsity.pieces import MAYBE, NO, YES, join, pieces
from einsim.sparsity.rows import shared_period

SKIPPED, PARTIAL, FULL = 0, 1, 2
"""Values of :attr:`TileCounts.grid`."""

BLOCK_CHUNK = 1 << 20
"""Pieces (Q tiles x residues x pieces) swept at once."""

WORK_LIMIT = 1 << 31
"""Most pieces (Q tiles x residues x pieces, plus rows x pieces) one analysis runs (about a
minute)."""

GRID_LIMIT = 1 << 22
"""Most (Q tile, KV tile) cells a tile map holds."""


@dataclass(frozen=True, eq=False)
class TileCounts:
    """Per Q tile: KV tiles visited (at least one unmasked point) and partial (also a masked
    point); whether the last KV tile is visited without masking; optionally the whole map."""

    q_tiles: int
    kv_tiles: int
    visited: np.ndarray
    partial: np.ndarray
    last_full: np.ndarray
    resolved: int
    grid: np.ndarray | None = None


def _per_block(mask: Mask) -> int:
    return 2 * sum(1 for a in mask.atoms if a.monotone is not None) + 1


def _separable(mask: Mask, kv_tile: int) -> bool:
    separable, feature = shared_period(mask)
    return separable and feature is not None and feature.period <= kv_tile


def check_work(mask: Mask | None, query_len: int, q_tile: int, kv_tile: int) -> None:
    """Refuse analyses that would run longer than about a minute, naming the cause."""
    if mask is None:
        return
    per, period = _per_block(mask), mask.period
    separable, _ = shared_period(mask)
    blocks = -(-query_len // q_tile)
    if _separable(mask, kv_tile):
        tiles = blocks * (2 * len(mask.atoms) + 1) ** 3
    else:
        tiles = blocks * (period if period <= kv_tile else math.lcm(period, kv_tile)) * per
    rows = query_len * (2 * len(mask.atoms) + 1) ** 2 if separable else \
        query_len * period * per
    if tiles + rows > WORK_LIMIT:
        raise SparseMaskError(f"counting this mask means about {tiles + rows:.2e} pieces "
                              f"(key period {period}, {per} pieces per residue, "
                              f"{query_len:,} queries); the limit is {WORK_LIMIT:.2e}: use "
                              "a shorter sequence or larger tiles")


def tile_counts(mask: Mask | None, query_len: int, key_len: int, q_tile: int, kv_tile: int,
                grid: bool = False) -> TileCounts:
    """Visited and partial KV tiles of every Q tile of ``mask`` (None: no mask)."""
    q_tiles, kv_tiles = -(-query_len // q_tile), -(-key_len // kv_tile)
    if grid and q_tiles * kv_tiles > GRID_LIMIT:
        raise SparseMaskError(f"a tile map of {q_tiles:,} x {kv_tiles:,} tiles is more than "
                              f"{GRID_LIMIT:,} cells; use larger tiles")
    cells = np.full((q_tiles, kv_tiles), FULL, dtype=np.int8) if grid else None
    if mask is None:
        return TileCounts(q_tiles, kv_tiles, np.full(q_tiles, kv_tiles, dtype=np.int64),
                          np.zeros(q_tiles, dtype=np.int64), np.ones(q_tiles, dtype=bool), 0,
                          cells)
    check_work(mask, query_len, q_tile, kv_tile)
    if _separable(mask, kv_tile):
        from einsim.sparsity.separable import SeparableSweep

        sweep = SeparableSweep(mask, query_len, key_len, q_tile, kv_tile)
        per = (2 * len(mask.atoms) + 1) ** 3
    else:
        sweep = ResidueSweep(mask, query_len, key_len, q_tile, kv_tile)
        per = sweep.residues.size * _per_block(mask)
    tally = Tally(mask, query_len, key_len, q_tile, kv_tile, sweep.slots, cells)
    step = max(1, BLOCK_CHUNK // per)
    for first in range(0, q_tiles, step):
        sweep.run(np.arange(first, min(first + step, q_tiles), dtype=np.int64), tally)
    resolved = tally.resolve()
    return TileCounts(q_tiles, kv_tiles, tally.visited, tally.partial, tally.last_full,
                      resolved, cells)


class Tally:
    """Accumulates runs of KV tiles of equal status per Q tile, and the tiles left undecided.

    A run is (Q tile, slot g, first coordinate c, length, has_true, has_false): the KV tiles
    ``c*slots + g`` .. ``(c + length - 1)*slots + g``.
    """

    def __init__(self, mask: Mask, query_len: int, key_len: int, q_tile: int, kv_tile: int,
                 slots: int, cells: np.ndarray | None):
        self.mask, self.P, self.M, self.TQ, self.TK = mask, query_len, key_len, q_tile, kv_tile
        self.slots, self.cells = slots, cells
        q_tiles, self.kv_tiles = -(-query_len // q_tile), -(-key_len // kv_tile)
        self.visited = np.zeros(q_tiles, dtype=np.int64)
        self.partial = np.zeros(q_tiles, dtype=np.int64)
        self.last_full = np.zeros(q_tiles, dtype=bool)
        self.unsure: list[tuple[np.ndarray, np.ndarray]] = []

    def runs(self, blocks, slot, start, length, true, false) -> None:
        keep = length > 0
        blocks, slot, start, length, true, false = (np.asarray(x)[keep] for x in (
            blocks, slot, start, length, true, false))
        size = self.visited.size
        sure = (true != MAYBE) & (false != MAYBE)
        seen = sure & (true == YES)
        self.visited += np.bincount(blocks, weights=length * seen, minlength=size) \
            .astype(np.int64)
        self.partial += np.bincount(blocks, weights=length * (seen & (false == YES)),
                                    minlength=size).astype(np.int64)
        last = self.kv_tiles - 1
        covers = (slot == last % self.slots) & (start <= last // self.slots) \
            & (last // self.slots < start + length)
        self.last_full[blocks[covers]] = (seen & (false == NO))[covers]
        if np.any(~sure):
            self.unsure.append(self._expand(blocks[~sure], slot[~sure], start[~sure],
                                            length[~sure]))
        if self.cells is not None:
            value = np.where(true == NO, SKIPPED, np.where(false == NO, FULL, PARTIAL))
            rows, columns = self._expand(blocks, slot, start, length)
            self.cells[rows, columns] = np.repeat(value, length)

    def _expand(self, blocks, slots, starts, lengths) -> tuple[np.ndarray, np.ndarray]:
        """(Q tile, KV tile) of every tile of the runs."""
        run = np.repeat(np.arange(blocks.size), lengths)
        offset = np.arange(run.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return blocks[run], (starts[run] + offset) * self.slots + slots[run]

    def resolve(self) -> int:
        """Decide the undecided tiles exactly; returns how many there were."""
        if not self.unsure:
            return 0
        rows = np.concatenate([u[0] for u in self.unsure])
        columns = np.concatenate([u[1] for u in self.unsure])
        step = max(1, (1 << 18) // self.TQ)
        for first in range(0, rows.size, step):
            i, j = rows[first:first + step], columns[first:first + step]
            has_true, has_false = decide(self.mask, i * self.TQ,
                                         np.minimum(i * self.TQ + self.TQ, self.P) - 1,
                                         j * self.TK, np.minimum(j * self.TK + self.TK, self.M) - 1)
            np.add.at(self.visited, i, has_true.astype(np.int64))
            np.add.at(self.partial, i, (has_true & has_false).astype(np.int64))
            at_end = j == self.kv_tiles - 1
            self.last_full[i[at_end]] = (has_true & ~has_false)[at_end]
            if self.cells is not None:
                self.cells[i, j] = np.where(~has_true, SKIPPED,
                                            np.where(has_false, PARTIAL, FULL))
        return int(rows.size)


def _box_status(mask: Mask, q_first, q_last, k_first, k_last):
    """(has_true, has_false) of each box, three-valued, from pieces over its keys."""
    period = mask.period
    residues = np.arange(period, dtype=np.int64)
    q_lo = -((residues[None, :] - k_first[:, None]) // period)
    q_hi = np.maximum(-((residues[None, :] - k_last[:, None] - 1) // period), q_lo)
    starts, ends, codes = pieces(mask, q_first, q_last, period, residues, q_lo, q_hi)
    return join(codes, ends > starts, axes=(1, 2))


def decide(mask: Mask, q_first, q_last, k_first, k_last) -> tuple[np.ndarray, np.ndarray]:
    """Exact (has_true, has_false) of boxes ``q_first..q_last x k_first..k_last``.

    Undecided boxes are split into halves of their rows until every part is decided: one row
    is always exact, and a half usually settles a tile (the rows away from a crossing of two
    mask boundaries see one boundary at a time).
    """
    n = q_first.size
    true, false = np.full(n, MAYBE), np.full(n, MAYBE)
    owner = np.arange(n)
    lo, hi, k_lo, k_hi = q_first, q_last, k_first, k_last
    while owner.size:
        part_true, part_false = _box_status(mask, lo, hi, k_lo, k_hi)
        for mine, theirs in ((true, part_true), (false, part_false)):
            yes = np.zeros(n, dtype=bool)
            yes[owner[theirs == YES]] = True
            maybe = np.zeros(n, dtype=bool)
            maybe[owner[theirs == MAYBE]] = True
            mine[yes] = YES
            mine[(mine == MAYBE) & ~yes & ~maybe] = NO  # every part said no
        open_ = ((true[owner] == MAYBE) & (part_true == MAYBE)) \
            | ((false[owner] == MAYBE) & (part_false == MAYBE))
        owner, lo, hi, k_lo, k_hi = (x[open_] for x in (owner, lo, hi, k_lo, k_hi))
        if np.any(lo == hi):  # pragma: no cover - one row is always exact
            raise AssertionError("a single query row gave an inexact status")
        middle = (lo + hi) // 2
        owner, k_lo, k_hi = (np.concatenate([x, x]) for x in (owner, k_lo, k_hi))
        lo, hi = np.concatenate([lo, middle + 1]), np.concatenate([middle, hi])
    return true == YES, false == YES


class ResidueSweep:
    """Runs of every Q tile from pieces per key residue (any mask)."""

    def __init__(self, mask: Mask, query_len: int, key_len: int, q_tile: int, kv_tile: int):
        self.mask, self.P, self.M, self.TQ, self.TK = mask, query_len, key_len, q_tile, kv_tile
        period = mask.period
        self.period = period if period <= kv_tile else math.lcm(period, kv_tile)
        self.slots = 1 if period <= kv_tile else self.period // kv_tile
        self.residues = np.arange(self.period, dtype=np.int64)
        self.slot = (self.residues // kv_tile) % self.slots
        self.q_count = np.maximum(-((self.residues - key_len) // self.period), 0)

    def run(self, blocks: np.ndarray, tally: Tally) -> None:
        lo = blocks * self.TQ
        hi = np.minimum(lo + self.TQ, self.P) - 1
        shape = (blocks.size, self.residues.size)
        q_hi = np.broadcast_to(self.q_count, shape)
        starts, ends, codes = pieces(self.mask, lo, hi, self.period, self.residues,
                                     np.zeros(shape, dtype=np.int64), q_hi)
        live = ends > starts
        r, g = self.residues[None, :, None], self.slot[None, :, None]
        first = ((self.period * starts + r) // self.TK - g) // self.slots
        last = ((self.period * (ends - 1) + r) // self.TK - g) // self.slots
        grouped = (blocks.size, self.slots, starts.size // blocks.size // self.slots)
        has_true, has_false = codes // 3, codes % 3
        counters = np.stack([has_true == YES, has_true == MAYBE, has_false == YES,
                             has_false == MAYBE]) & live
        counters = counters.reshape(4, *grouped).astype(np.int32)
        positions = np.concatenate([np.where(live, first, 0).reshape(grouped),
                                    np.where(live, last + 1, 0).reshape(grouped)], axis=-1)
        deltas = np.concatenate([counters, -counters], axis=-1)
        order = np.argsort(positions, axis=-1, kind="stable")
        positions = np.take_along_axis(positions, order, axis=-1)
        cover = np.cumsum(np.take_along_axis(deltas, order[None], axis=-1), axis=-1,
                          dtype=np.int32)[..., :-1]
        lengths = positions[..., 1:] - positions[..., :-1]
        true = np.where(cover[0] > 0, YES, np.where(cover[1] > 0, MAYBE, NO))
        false = np.where(cover[2] > 0, YES, np.where(cover[3] > 0, MAYBE, NO))
        b, s, k = np.nonzero(lengths > 0)
        tally.runs(blocks[b], s, positions[b, s, k], lengths[b, s, k], true[b, s, k],
                   false[b, s, k])
