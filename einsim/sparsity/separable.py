"""Tile runs of *separable* periodic masks in O(Q tiles x pieces²), whatever the period.

A mask is separable when each comparison reads the key through either its monotone feature
(``m``, ``floor(m/A)``) or one shared periodic feature ``x = floor(m/A) mod B`` (dilated, strided
and dilated-neighborhood masks).  For a Q tile the key axis then splits twice: into m-pieces
(where the monotone comparisons' statuses are constant) and x-pieces (the same for the periodic
ones).  The status of one key column is ``code[m-piece, x-piece]``.

With the KV tile at least the period ``A*B``, a tile inside one m-piece holds every value of x,
so all such tiles share the join of that m-piece's row of codes: one run per m-piece.  Only the
tiles that hold an m-piece boundary (and a ragged last tile) are looked at one by one: each
sub-range (tile ∩ m-piece) hits the x-pieces of its circular range of x values.
"""

from __future__ import annotations

import numpy as np

from einsim.sparsity.mask import KEY, Atom, Feature, Mask
from einsim.sparsity.pieces import _QuerySide, breaks, evaluate, join
from einsim.sparsity.rows import shared_period

class SeparableSweep:
    """Runs of every Q tile for a separable mask whose period fits in a KV tile."""

    slots = 1

    def __init__(self, mask: Mask, query_len: int, key_len: int, q_tile: int, kv_tile: int):
        self.mask, self.P, self.M, self.TQ, self.TK = mask, query_len, key_len, q_tile, kv_tile
        _, feature = shared_period(mask)
        self.A, self.B = feature.divisor, feature.modulus
        self.in_m = [a for a in mask.atoms if a.monotone is not None]
        self.in_x = [a for a in mask.atoms if a.key and a.monotone is None]
        self.plain = [Atom(((sum(c for c, _ in a.key), Feature(KEY)),), a.query, a.const, a.op)
                      for a in self.in_x]  # the periodic comparisons as comparisons of x
        self.periodic = {id(a) for a in self.in_x}

    def run(self, blocks: np.ndarray, tally) -> None:
        N, M, TK, A, B = blocks.size, self.M, self.TK, self.A, self.B
        lo = blocks * self.TQ
        hi = np.minimum(lo + self.TQ, self.P) - 1
        sides = {id(a): _QuerySide(a, lo, hi) for a in self.mask.atoms}
        zero = np.zeros(1, dtype=np.int64)
        low = np.zeros((N, 1), dtype=np.int64)
        m_starts = breaks(self.in_m, sides, zero, 1, M, low, np.full((N, 1), M))[:, 0]
        m_ends = np.concatenate([m_starts[:, 1:], np.full((N, 1), M)], axis=1)
        x_sides = {id(p): sides[id(a)] for p, a in zip(self.plain, self.in_x)}
        x_starts = breaks(self.plain, x_sides, zero, 1, B, low, np.full((N, 1), B))[:, 0]
        x_ends = np.concatenate([x_starts[:, 1:], np.full((N, 1), B)], axis=1)
        m_keys, x_keys = m_starts[:, :, None], (A * x_starts)[:, None, :]
        codes = evaluate(self.mask.tree, sides,
                         lambda atom: x_keys if id(atom) in self.periodic else m_keys)
        codes = np.broadcast_to(codes, (N, m_starts.shape[1], x_starts.shape[1]))
        m_live, x_live = m_ends > m_starts, x_ends > x_starts

        # tiles inside one m-piece hold every x: one run per piece
        true, false = join(codes, x_live[:, None, :], axes=2)
        whole = (M // TK) * TK  # a ragged last tile is looked at alone
        first = -(-m_starts // TK)
        length = np.where(m_live, np.maximum(np.minimum(m_ends, whole) // TK - first, 0), 0)
        rows = np.broadcast_to(blocks[:, None], m_starts.shape)
        tally.runs(rows.ravel(), np.zeros(rows.size, dtype=np.int64), first.ravel(),
                   length.ravel(), true.ravel(), false.ravel())

        # tiles holding a piece boundary, and the ragged last tile, one by one
        inner = m_starts[:, 1:]
        candidates = np.where((inner % TK != 0) & (inner < M), inner // TK, -1)
        if M % TK:
            candidates = np.concatenate([candidates, np.full((N, 1), M // TK)], axis=1)
        candidates = np.sort(candidates, axis=1)
        fresh = candidates >= 0
        fresh[:, 1:] &= candidates[:, 1:] != candidates[:, :-1]
        if not fresh.any():
            return
        tile_lo = (candidates * TK)[:, :, None]
        tile_hi = np.minimum(tile_lo + TK, M)
        sub_lo = np.maximum(m_starts[:, None, :], tile_lo)
        sub_hi = np.minimum(m_ends[:, None, :], tile_hi)  # (N, tiles, m-pieces), exclusive
        sub_live = (sub_hi > sub_lo) & m_live[:, None, :]
        a, b = sub_lo // A, (sub_hi - 1) // A
        full = (b - a >= B - 1)[..., None]
        u, v = (a % B)[..., None], (b % B)[..., None]
        xs, xe = x_starts[:, None, None, :], x_ends[:, None, None, :] - 1
        hit = full | np.where(u <= v, (xs <= v) & (xe >= u), (xe >= u) | (xs <= v))
        live = sub_live[..., None] & hit & x_live[:, None, None, :]
        true, false = join(codes[:, None, :, :], live, axes=(2, 3))
        rows = np.broadcast_to(blocks[:, None], candidates.shape)
        tally.runs(rows[fresh], np.zeros(int(fresh.sum()), dtype=np.int64), candidates[fresh],
                   np.ones(int(fresh.sum()), dtype=np.int64), true[fresh], false[fresh])
