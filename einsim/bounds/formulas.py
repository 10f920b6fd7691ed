"""The lower-bound formulas, in words per (batch, head), vectorized over on-chip capacity S.

Each function is one argument of ``docs/concepts/bounds.md``; every one is a valid lower bound
for *any* value of its free parameter (the segment length ``alpha * S`` or the fiber group
``g``), so taking the largest over a grid of parameters is valid too.  Notation:

* ``pairs``: (key, query) points the score contraction computes (unmasked);
* ``d``: the contraction's reduced volume (the head dimension E);
* ``fibers``: query points; ``keys``: key points; ``lmin``/``lmax``: the fewest / most
  unmasked keys of one query;
* ``crossing``: words per pair that must survive a pass boundary.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ALPHAS = 2.0 ** (np.arange(-16, 25) / 4)
"""Segment lengths R = alpha * S tried by the contraction bounds (any alpha > 0 is valid;
alpha = 1 gives the closed forms stated in the docs)."""


def _as_array(capacity) -> np.ndarray:
    """Capacities in words, at least 1 (the bound at one word is valid for none: it only
    grows as capacity shrinks)."""
    return np.maximum(np.asarray(capacity, dtype=float), 1.0)


def contraction_large(pairs: float, d: float, capacity) -> np.ndarray:
    """Q·K contraction, pairs completed inside one I/O segment (FlashAttention's regime).

    Split the run into segments of R = alpha·S counted I/Os.  A pair whose d products all fall
    in one segment needs its query row and key row (d words each) present in that segment:
    at most ((S + R) / 2d)² pairs.  Any other pair carries a partial score across a segment
    boundary: in fast memory (at most S words per boundary) or spilled (a write and a read).
    So ``pairs <= (T/R + 1) c + (T/R) S + T/2`` with ``c = ((S + R) / 2d)²``, i.e.
    ``T >= (pairs - c) / (c/R + S/R + 1/2)``; for S >> d² this is about pairs·d²/S.
    """
    s = _as_array(capacity)[..., None]
    r = ALPHAS * s
    complete = ((s + r) / (2 * d)) ** 2
    bound = (pairs - complete) / (complete / r + s / r + 0.5)
    return np.maximum(bound.max(axis=-1), 0.0)


def contraction_small(pairs: float, d: float, capacity) -> np.ndarray:
    """Q·K contraction by Loomis–Whitney, for S below d² (Saha & Ye's regime).

    In a segment of R counted I/Os the products (p, m, e) computed project onto query words
    and key words present (together at most S + R) and onto the pairs touched: at most
    2S + R (a partial score in fast memory at either end, or moved by one of the R I/Os) plus
    the pairs completed inside (at most ((S + R) / 2d)²).  Loomis–Whitney bounds the products
    per segment by ``((S + R)/2) * sqrt(2S + R + c)``; all ``pairs * d`` must be made, so
    ``T >= R * (pairs d / (((S+R)/2) sqrt(2S + R + c)) - 1)``; for S << d² about
    pairs·d / sqrt(3 S).
    """
    s = _as_array(capacity)[..., None]
    r = ALPHAS * s
    complete = ((s + r) / (2 * d)) ** 2
    per_segment = (s + r) / 2 * np.sqrt(2 * s + r + complete)
    bound = r * (pairs * d / per_segment - 1)
    return np.maximum(bound.max(axis=-1), 0.0)


def fiber_spill(crossing_words: float, fibers: float, capacity) -> np.ndarray:
    """Words that must round-trip at one pass boundary: ``2 (W - fibers * S)``, ``W`` the
    crossing words of all fibers.

    When the reduction ending a pass completes for query p, every crossing value of p has been
    made and none consumed, so all are live; at most S sit on chip, the rest were written and
    must be read back (2 I/Os each).  Summed over queries (Jensen for uneven masked fibers).
    """
    s = _as_array(capacity)
    return np.maximum(2.0 * (crossing_words - fibers * s), 0.0)


@lru_cache(maxsize=64)
def group_sizes(d: float) -> np.ndarray:
    """Fiber group sizes g tried by :func:`fiber_reread` (any 1 <= g <= d is valid)."""
    top = max(int(d), 1)
    values = {1, top} | {2 ** k for k in range(top.bit_length()) if 2 ** k <= top}
    values |= {int(round(x)) for x in np.geomspace(1, top, 24)}
    return np.array(sorted(values), dtype=float)


def fiber_reread(pairs: float, fibers: float, lmin: float, lmax: float, crossing: float,
                 d: float, capacity) -> np.ndarray:
    """Multi-pass: hold fibers on chip or re-read keys — a cut at each g-th fiber deadline.

    Order queries by the time t_j their pass-ending reduction completes.  At a cut t_j, for
    each of the next g queries and each key m: either some value of pair (m, p') already
    exists (live at the cut: on chip or spilled) or all of key m's d words are still needed
    (on chip at the cut, or read before the group's last deadline).  With query j's own
    crossing words on chip too, ``sum_window L + crossing L_j - S <= reads of keys + spills``
    for g <= d.  Summed over disjoint groups:
    ``T >= pairs - (fibers - n g) lmax + n (crossing lmin - S)``, ``n = floor((fibers-1)/g)``.
    """
    s = _as_array(capacity)[..., None]
    g = group_sizes(d)
    groups = np.floor((fibers - 1) / g)
    valid = groups >= 1
    bound = pairs - (fibers - groups * g) * lmax + groups * (crossing * lmin - s)
    bound = np.where(valid, bound, 0.0)
    return np.maximum(bound.max(axis=-1), 0.0)


def fiber_reread_both(pairs: float, fibers: float, lmin: float, lmax: float, crossing: float,
                      d: float, f: float, capacity) -> np.ndarray:
    """Multi-pass with keys re-read before each deadline *and* values after it.

    Cuts at every (g+1)-th deadline, the g queries between two cuts form a window.  Before
    its deadline a window query needs every key (d words, as in :func:`fiber_reread`); after
    it, every value row (f words) for the product with V.  So per key m, at the cut before the
    window all g pairs are live or key m is on chip / re-read, and at the cut after it all g
    pairs are still live or value row m is on chip / re-read.  With the cut query's own
    crossing words, for g <= min(d, f):
    ``T >= 2 (pairs - (fibers - (n-1) g) lmax) + n (crossing lmin - S)``, n cuts.
    """
    s = _as_array(capacity)[..., None]
    g = group_sizes(min(d, f))
    cuts = np.floor((fibers - 1) / (g + 1)) + 1
    valid = cuts >= 2
    bound = 2 * (pairs - (fibers - (cuts - 1) * g) * lmax) + cuts * (crossing * lmin - s)
    bound = np.where(valid, bound, 0.0)
    return np.maximum(bound.max(axis=-1), 0.0)
