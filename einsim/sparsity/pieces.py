"""Three-valued evaluation of a mask over *blocks* of queries, piecewise along the key axis.

A block is a range of queries ``p_lo .. p_hi`` (one row, or one Q tile).  Keys are split by
residue: ``m = period*q + r``, so every periodic key feature is a constant of ``r`` and the one
monotone key feature of each atom is monotone in ``q``.  Along ``q`` an atom's status over
"block x {key}" changes only where its monotone feature crosses two thresholds (closed forms),
so each (block, residue) is a handful of *pieces* [start, end) of constant status.

A status says, for a set of points, whether it has a true point and whether it has a false
point, each ``NO``, ``YES`` or ``MAYBE``; it is coded ``has_true*3 + has_false``.  Per atom the
query side is an interval (exact min and max of its one query feature) so ``<=`` is exact and
``==`` is exact when the feature's values are contiguous; ``and`` / ``or`` of two mixed sets is
``MAYBE`` (their true points may not meet).  For one query row every status is exact.
"""

from __future__ import annotations

import numpy as np

from einsim.sparsity.mask import And, Atom, Feature, Mask, Node, Not

NO, YES, MAYBE = 0, 1, 2
TRUE, FALSE, MIXED, UNKNOWN = YES * 3 + NO, NO * 3 + YES, YES * 3 + YES, MAYBE * 3 + MAYBE


def _or3(x: int, y: int) -> int:
    return YES if YES in (x, y) else NO if x == y == NO else MAYBE


def _and_true(true_a: int, false_a: int, true_b: int, false_b: int) -> int:
    """Does A and B have a true point, from each side's (has_true, has_false)?"""
    if NO in (true_a, true_b):
        return NO
    if false_a == NO:  # A is true everywhere: A and B is B
        return true_b
    if false_b == NO:
        return true_a
    return MAYBE


def _normal(has_true: int, has_false: int) -> int:
    """A non-empty set without true points is all false, and the other way round."""
    if has_true == NO:
        has_false = YES
    if has_false == NO:
        has_true = YES
    return has_true * 3 + has_false


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    both = np.zeros((2, 9, 9), dtype=np.int8)
    for x in range(9):
        for y in range(9):
            (ta, fa), (tb, fb) = divmod(x, 3), divmod(y, 3)
            both[0, x, y] = _normal(_and_true(ta, fa, tb, fb), _or3(fa, fb))
            both[1, x, y] = _normal(_or3(ta, tb), _and_true(fa, ta, fb, tb))
    negate = np.array([_normal(c % 3, c // 3) for c in range(9)], dtype=np.int8)
    return both[0], both[1], negate


AND_TABLE, OR_TABLE, NOT_TABLE = _tables()


def feature_range(feature: Feature, lo: np.ndarray, hi: np.ndarray):
    """(min, max, contiguous) of a feature over indices ``lo .. hi`` (arrays): both extremes
    are attained; ``contiguous`` says every value between them is too."""
    a, b = lo // feature.divisor, hi // feature.divisor
    if feature.modulus is None:
        return a, b, np.ones(a.shape, dtype=bool)
    B = feature.modulus
    full = b - a >= B - 1
    first, last = a % B, b % B
    wrapped = ~full & (first > last)  # values first..B-1 and 0..last: both ends attained
    wide = full | wrapped
    return np.where(wide, 0, first), np.where(wide, B - 1, last), ~wrapped


class _QuerySide:
    """Per atom and block: bounds of the query part and whether ``<=`` / ``==`` are exact."""

    def __init__(self, atom: Atom, lo: np.ndarray, hi: np.ndarray):
        if lo is hi:  # single rows: the query part is one exact value
            value = np.zeros(lo.shape, dtype=np.int64)
            for coefficient, feature in atom.query:
                value += coefficient * feature.of(lo)
            self.low = self.high = value
            self.le_exact, self.eq_exact = True, np.ones(lo.shape, dtype=bool)
            return
        self.low = np.zeros(lo.shape, dtype=np.int64)
        self.high = np.zeros(lo.shape, dtype=np.int64)
        contiguous = np.ones(lo.shape, dtype=bool)
        for coefficient, feature in atom.query:
            first, last, contiguous = feature_range(feature, lo, hi)
            self.low += np.minimum(coefficient * first, coefficient * last)
            self.high += np.maximum(coefficient * first, coefficient * last)
        single = len(atom.query) <= 1
        self.le_exact = single
        unit = all(abs(c) == 1 for c, _ in atom.query)
        self.eq_exact = contiguous & unit if single else np.zeros(lo.shape, dtype=bool)


def key_values(atom: Atom, keys: np.ndarray, cache: dict) -> np.ndarray:
    """``const + sum(c * feature(key))`` of an atom at ``keys`` (features computed once per
    evaluation through ``cache``)."""
    value = None
    for coefficient, feature in atom.key:
        if feature not in cache:
            cache[feature] = feature.of(keys)
        term = cache[feature] if coefficient == 1 else coefficient * cache[feature]
        value = term + atom.const if value is None else value + term
    return np.full(keys.shape, atom.const, dtype=np.int64) if value is None else value


def _status(atom: Atom, side: _QuerySide, keys: np.ndarray, cache: dict) -> np.ndarray:
    """Status codes of ``atom`` over "block x {key}" for keys shaped (blocks, ...)."""
    value = key_values(atom, keys, cache)
    extra = (slice(None),) + (None,) * (keys.ndim - 1)
    low, high = side.low[extra], side.high[extra]
    if atom.op == "<=":
        middle = MIXED if side.le_exact else UNKNOWN
        codes = np.where(value <= -high, TRUE, np.where(value > -low, FALSE, middle))
        return codes.astype(np.int8)
    target = -value
    hit = (target >= low) & (target <= high)
    inside = np.where(low == high, TRUE, np.where(side.eq_exact[extra], MIXED, UNKNOWN))
    codes = np.where(hit, inside, FALSE).astype(np.int8)
    return NOT_TABLE[codes] if atom.op == "!=" else codes


def evaluate(node: Node, sides: dict, keys, cache: dict | None = None) -> np.ndarray:
    """Status codes of the whole tree at ``keys`` (see :func:`_status`): an array, or a function
    giving each atom's keys (arrays that broadcast together)."""
    cache = {} if cache is None else cache
    if isinstance(node, Atom):
        at = keys(node) if callable(keys) else keys
        return _status(node, sides[id(node)], at, cache.setdefault(id(at), {}))
    if isinstance(node, Not):
        return NOT_TABLE[evaluate(node.operand, sides, keys, cache)]
    table = AND_TABLE if isinstance(node, And) else OR_TABLE
    codes = evaluate(node.parts[0], sides, keys, cache)
    for part in node.parts[1:]:
        codes = table[codes, evaluate(part, sides, keys, cache)]
    return codes


def _floor(a, b):
    return a // b


def _ceil(a, b):
    return -((-a) // b)


def _thresholds(atom: Atom, side: _QuerySide, residues: np.ndarray, key_len: int):
    """Values ``t`` of the atom's monotone key feature h where its status may change: it is
    constant on ``h < t1``, ``t1 <= h < t2`` and ``h >= t2``.  Shaped (blocks, residues)."""
    coefficient, feature = atom.monotone
    periodic = np.full(residues.shape, atom.const, dtype=np.int64)
    for c, f in atom.key:
        if f.modulus is not None:
            periodic += c * f.of(residues)
    # status changes where u = c*h crosses tau_true (all true below) or tau_false
    tau_true = -(periodic[None, :] + side.high[:, None])
    tau_false = -(periodic[None, :] + side.low[:, None])
    c = coefficient
    if atom.op == "<=":
        if c > 0:
            t1, t2 = _floor(tau_true, c) + 1, _floor(tau_false, c) + 1
        else:
            t1, t2 = _ceil(tau_true, c), _ceil(tau_false, c)
    elif c > 0:  # == and !=: non-false for u in [tau_true, tau_false]
        t1, t2 = _ceil(tau_true, c), _floor(tau_false, c) + 1
    else:
        t1, t2 = _ceil(tau_false, c), _floor(tau_true, c) + 1
    top = (key_len + 1) // feature.divisor + 2
    return (feature.divisor, np.minimum(np.maximum(t1, -1), top),
            np.minimum(np.maximum(t2, -1), top))


def breaks(atoms, sides: dict, residues: np.ndarray, period: int, key_len: int,
           q_lo: np.ndarray, q_hi: np.ndarray) -> np.ndarray:
    """Sorted piece starts (N, R, K) in ``q`` (keys ``period*q + r``) within [q_lo, q_hi]."""
    found = [q_lo]
    for atom in atoms:
        if atom.monotone is None:
            continue
        side = sides[id(atom)]
        divisor, t1, t2 = _thresholds(atom, side, residues, key_len)
        single = side.low is side.high and atom.op == "<="  # one row: t1 == t2
        for t in (t1,) if single else (t1, t2):  # first q with floor((period*q + r)/A) >= t
            found.append(_ceil(divisor * t - residues[None, :], period))
    stacked = np.stack(np.broadcast_arrays(*found), axis=-1)
    stacked = np.minimum(np.maximum(stacked, q_lo[..., None]), q_hi[..., None])
    stacked.sort(axis=-1)
    return stacked


def pieces(mask: Mask, lo: np.ndarray, hi: np.ndarray, period: int, residues: np.ndarray,
           q_lo: np.ndarray, q_hi: np.ndarray):
    """Pieces of constant status for blocks ``lo .. hi`` (N,) and keys ``period*q + r``.

    ``q_lo``, ``q_hi`` (N, R) bound ``q`` per block and residue.  Returns ``(starts, ends,
    codes)`` shaped (N, R, K): piece k covers ``q`` in [starts, ends) (possibly empty).
    """
    atoms = mask.atoms
    sides = {id(a): _QuerySide(a, lo, hi) for a in atoms}
    starts = breaks(atoms, sides, residues, period, mask.key_len, q_lo, q_hi)
    ends = np.concatenate([starts[..., 1:], q_hi[..., None]], axis=-1)
    keys = period * starts + residues[None, :, None]
    return starts, ends, evaluate(mask.tree, sides, keys)


_RANK = np.array([0, 2, 1])  # has_* value -> join rank: NO < MAYBE < YES
_VALUE = np.array([NO, MAYBE, YES])


def join(codes: np.ndarray, live: np.ndarray, axes) -> tuple[np.ndarray, np.ndarray]:
    """(has_true, has_false) of the union of the live sets along ``axes``."""
    true = np.where(live, _RANK[codes // 3], 0).max(axis=axes)
    false = np.where(live, _RANK[codes % 3], 0).max(axis=axes)
    return _VALUE[true], _VALUE[false]
