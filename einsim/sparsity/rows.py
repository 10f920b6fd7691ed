"""Exact counts of unmasked keys per query row, in O(rows x pieces), never O(rows x keys).

For one query row every comparison is exact, so a row's keys split into pieces of constant
truth (:func:`einsim.sparsity.pieces.breaks`) and the count is the total length of the true
pieces.  Two ways to split:

* *separable* masks (each comparison's key side is either the monotone ``floor(m/A)`` or one
  shared periodic feature ``x = floor(m/A) mod B``, as in causal, windows, documents, dilated
  and strided masks): pieces in ``m`` times pieces in ``x``; the keys of an (m-piece, x-piece)
  pair are counted in closed form (whole periods plus a remainder);
* anything else: keys by residue ``m = period*q + r``, pieces in ``q`` per residue, O(period)
  per row.
"""

from __future__ import annotations

import numpy as np

from einsim.sparsity.mask import KEY, And, Atom, Feature, Mask, Node, Not
from einsim.sparsity.pieces import _ceil, _QuerySide, breaks, key_values

ROW_CHUNK = 1 << 17
"""Pieces (rows x pieces per row) handled at once."""


def _truth(node: Node, sides: dict, keys_of, caches: dict) -> np.ndarray:
    """Truth of the tree for single rows; ``keys_of(atom)`` gives the keys it is read at."""
    if isinstance(node, Atom):
        keys = keys_of(node)
        cache = caches.setdefault(id(keys), {})
        value = key_values(node, keys, cache)
        extra = (slice(None),) + (None,) * (keys.ndim - 1)
        value = value + sides[id(node)].low[extra]
        return value <= 0 if node.op == "<=" else value == 0 if node.op == "==" else value != 0
    if isinstance(node, Not):
        return ~_truth(node.operand, sides, keys_of, caches)
    combine = np.logical_and if isinstance(node, And) else np.logical_or
    result = _truth(node.parts[0], sides, keys_of, caches)
    for part in node.parts[1:]:
        result = combine(result, _truth(part, sides, keys_of, caches))
    return result


def shared_period(mask: Mask) -> tuple[bool, Feature | None]:
    """(separable, the one periodic key feature or None): see the module docstring."""
    periodic = {f for a in mask.atoms for _, f in a.key if f.modulus is not None}
    mixed = any(len({f.modulus is None for _, f in a.key}) > 1 for a in mask.atoms)
    return len(periodic) <= 1 and not mixed, next(iter(periodic), None)


def count_rows(mask: Mask, rows, lo, hi) -> np.ndarray:
    """Exact number of keys ``m`` in [lo, hi) with the mask true at (m, row), per row."""
    rows, lo, hi = (np.asarray(x, dtype=np.int64) for x in (rows, lo, hi))
    separable, feature = shared_period(mask)
    count = _separable if separable else _by_residue
    per_row = sum(2 if a.op != "<=" else 1 for a in mask.atoms) + 1
    width = (per_row // 2 + 1) ** 2 if separable else per_row * mask.period
    out = np.zeros(rows.shape, dtype=np.int64)
    step = max(1, ROW_CHUNK // width)
    for first in range(0, rows.size, step):
        part = slice(first, first + step)
        out[part] = count(mask, rows[part], lo[part], np.maximum(hi[part], lo[part]), feature)
    return out


def _separable(mask: Mask, rows, lo, hi, feature: Feature | None) -> np.ndarray:
    atoms = mask.atoms
    sides = {id(a): _QuerySide(a, rows, rows) for a in atoms}
    zero = np.zeros(1, dtype=np.int64)
    in_m = [a for a in atoms if a.monotone is not None]
    m_starts = breaks(in_m, sides, zero, 1, mask.key_len, lo[:, None], hi[:, None])[:, 0]
    m_ends = np.concatenate([m_starts[:, 1:], hi[:, None]], axis=1)
    m_keys = m_starts[:, :, None]
    if feature is None:
        truth = _truth(mask.tree, sides, lambda atom: m_keys, {})
        return ((m_ends - m_starts)[:, :, None] * truth).sum(axis=(1, 2))
    # the periodic comparisons as monotone ones in x = feature(m), x in [0, B)
    A, B = feature.divisor, feature.modulus
    in_x = [a for a in atoms if a.key and a.monotone is None]
    plain = {id(a): Atom(((sum(c for c, _ in a.key), Feature(KEY)),), a.query, a.const, a.op)
             for a in in_x}
    x_sides = {id(plain[id(a)]): sides[id(a)] for a in in_x}
    full = np.full((rows.size, 1), B, dtype=np.int64)
    x_starts = breaks(list(plain.values()), x_sides, zero, 1, B, np.zeros_like(full),
                      full)[:, 0]
    x_ends = np.concatenate([x_starts[:, 1:], full], axis=1)
    x_keys = (A * x_starts)[:, None, :]  # a key with feature value x: A*x
    periodic = {id(a) for a in in_x}
    truth = _truth(mask.tree, sides, lambda atom: x_keys if id(atom) in periodic else m_keys,
                   {})
    low, width = (A * x_starts)[:, None, :], (A * (x_ends - x_starts))[:, None, :]
    # keys in [0, y) whose feature is in [x_start, x_end), at every piece boundary y
    bounds = np.concatenate([m_starts, hi[:, None]], axis=1)
    periods, rest = np.divmod(bounds, A * B)
    below = periods[:, :, None] * width + np.minimum(np.maximum(rest[:, :, None] - low, 0),
                                                     width)
    return (np.diff(below, axis=1) * truth).sum(axis=(1, 2))


def _by_residue(mask: Mask, rows, lo, hi, feature) -> np.ndarray:
    atoms = mask.atoms
    period = mask.period
    residues = np.arange(period, dtype=np.int64)
    sides = {id(a): _QuerySide(a, rows, rows) for a in atoms}
    q_lo = _ceil(lo[:, None] - residues[None, :], period)
    q_hi = np.maximum(_ceil(hi[:, None] - residues[None, :], period), q_lo)
    starts = breaks(atoms, sides, residues, period, mask.key_len, q_lo, q_hi)
    ends = np.concatenate([starts[..., 1:], q_hi[..., None]], axis=-1)
    keys = period * starts + residues[None, :, None]
    truth = _truth(mask.tree, sides, lambda atom: keys, {})
    return ((ends - starts) * truth).sum(axis=(1, 2))
