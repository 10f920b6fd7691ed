"""Plain-NumPy reference implementations for validating Einsum cascades.

Every public reference takes ``inputs`` (tensor name -> array) and ``sizes``
(rank/parameter name -> integer-valued number) and returns a dict mapping an
output tensor name to its expected value, computed in float64.

Axis convention: a tensor's axes follow its index order in the cascade text.
``Q`` has shape (E, P), ``K`` has shape (E, M) and ``V`` has shape (F, M).
Scores are unscaled, ``s[m, p] = sum_e Q[e, p] K[e, m]``, and the attention
output ``AV`` has shape (F, P).

The implementations favour obviousness over speed: they are oracles, so they
avoid the algebraic tricks (online softmax, tiling, ...) that the cascades
under test use.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "attention",
    "causal_attention",
    "grouped_attention",
    "masked_attention",
    "neighborhood_window",
    "neighborhood_mask_1d",
    "neighborhood_mask",
    "gna_attention",
    "gna_attention_2d",
    "gna_attention_3d",
    "token_permute",
    "decode_layer",
    "causal_linear_attention",
    "attention_scan",
    "REFERENCES",
]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _as_int(value: float, name: str) -> int:
    """Convert an integer-valued size to ``int``, rejecting fractional values."""
    as_integer = int(round(float(value)))
    if not math.isclose(float(value), as_integer, rel_tol=0.0, abs_tol=1e-9):
        raise ValueError(f"size {name!r} must be integer-valued, got {value!r}")
    return as_integer


def _size(sizes: dict[str, float], name: str, default: int | None = None) -> int:
    """Read an integer parameter from ``sizes``, falling back to ``default``."""
    if name not in sizes:
        if default is None:
            raise KeyError(f"missing required size {name!r}")
        return default
    return _as_int(sizes[name], name)


def _query_key_value(inputs: dict[str, np.ndarray]):
    """Return ``Q``, ``K``, ``V`` from ``inputs`` converted to float64."""
    return tuple(np.asarray(inputs[name], dtype=np.float64) for name in ("Q", "K", "V"))


def _causal_mask(keys: int, queries: int) -> np.ndarray:
    """Boolean (keys, queries) mask, True iff key index m <= query index p."""
    return np.arange(keys)[:, None] <= np.arange(queries)[None, :]


# --------------------------------------------------------------------------
# Dense and masked softmax attention
# --------------------------------------------------------------------------


def masked_attention(
    query: np.ndarray, key: np.ndarray, value: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Softmax attention restricted to the keys allowed by ``mask``.

    Parameters
    ----------
    query : (E, P) array
    key : (E, M) array
    value : (F, M) array
    mask : (M, P) bool array, ``mask[m, p]`` True iff key m is attended by query p.

    Returns
    -------
    (F, P) float64 array. A query attending no key outputs 0 (the
    FlashAttention convention) rather than NaN.

    Notes
    -----
    The softmax is numerically stable: each query's maximum attended score is
    subtracted before exponentiating.
    """
    query = np.asarray(query, dtype=np.float64)
    key = np.asarray(key, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    keys, queries = key.shape[1], query.shape[1]
    if mask.shape != (keys, queries):
        raise ValueError(f"mask shape {mask.shape} != (M, P) = {(keys, queries)}")
    if value.shape[1] != keys:
        raise ValueError("V and K disagree on the number of keys M")

    scores = key.T @ query  # (M, P)
    masked_scores = np.where(mask, scores, -np.inf)
    has_key = mask.any(axis=0)
    column_max = np.where(has_key, masked_scores.max(axis=0, initial=-np.inf), 0.0)
    weights = np.where(mask, np.exp(masked_scores - column_max), 0.0)
    denominator = weights.sum(axis=0)
    safe_denominator = np.where(has_key, denominator, 1.0)
    return (value @ weights) / safe_denominator


def attention(inputs: dict[str, np.ndarray], sizes: dict[str, float]) -> dict[str, np.ndarray]:
    """Dense (unscaled) softmax attention: every query attends every key."""
    query, key, value = _query_key_value(inputs)
    mask = np.ones((key.shape[1], query.shape[1]), dtype=bool)
    return {"AV": masked_attention(query, key, value, mask)}


def grouped_attention(inputs: dict[str, np.ndarray], sizes: dict[str, float]
                      ) -> dict[str, np.ndarray]:
    """Grouped-query attention: ``Q`` is (E, G, P); each of the G query heads attends the
    shared K and V; ``AV`` is (F, G, P)."""
    query, key, value = _query_key_value(inputs)
    mask = np.ones((key.shape[1], query.shape[2]), dtype=bool)
    return {"AV": np.stack([masked_attention(query[:, g, :], key, value, mask)
                            for g in range(query.shape[1])], axis=1)}


def causal_attention(
    inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, np.ndarray]:
    """Causal softmax attention: key m is attended by query p iff m <= p."""
    query, key, value = _query_key_value(inputs)
    mask = _causal_mask(key.shape[1], query.shape[1])
    return {"AV": masked_attention(query, key, value, mask)}


# --------------------------------------------------------------------------
# Generalized neighborhood attention (NATTEN semantics)
# --------------------------------------------------------------------------


def _undilated_window(i: int, length: int, window: int, stride: int, causal: bool) -> range:
    """Attended in-group key coordinates of in-group query ``i`` (no dilation).

    ``length`` is the group's own length. Queries in the same stride group
    share the window of the group's leader; causal windows end at ``i``.
    """
    group_start = (i // stride) * stride
    if causal:
        leader = min(group_start + stride - 1, length - 1)
        start = max(leader - window + 1, 0)
        end = i + 1
    else:
        leader = min(group_start + stride // 2, length - 1)
        start = max(min(leader - window // 2, length - window), 0)
        end = min(start + window, length)
    return range(start, end)


def neighborhood_window(
    i: int,
    length: int,
    window: int,
    stride: int = 1,
    dilation: int = 1,
    causal: bool = False,
) -> list[int]:
    """Sorted key coordinates attended by query ``i`` along one axis.

    Implements NATTEN's generalized neighborhood attention rules by direct
    per-query enumeration, so it can serve as an independent oracle:
    token ``x`` belongs to dilation group ``x mod dilation`` with in-group
    coordinate ``x // dilation``; the window/stride/causal rules then run on
    in-group coordinates with the group's own length.

    Parameters
    ----------
    i : query coordinate, ``0 <= i < length``.
    length : axis length L (keys and queries share the axis).
    window : window size K.
    stride : stride S; queries ``floor(i/S)*S ...`` share their leader's window.
    dilation : dilation D.
    causal : if True, keys after the query are never attended.
    """
    if not 0 <= i < length:
        raise ValueError(f"query {i} outside axis of length {length}")
    if window < 1 or stride < 1 or dilation < 1:
        raise ValueError("window, stride and dilation must be positive")
    group = i % dilation
    in_group_query = i // dilation
    group_length = math.ceil((length - group) / dilation)
    attended = []
    for in_group_key in _undilated_window(in_group_query, group_length, window, stride, causal):
        attended.append(group + in_group_key * dilation)
    return sorted(attended)


def neighborhood_mask_1d(
    length: int, window: int, stride: int = 1, dilation: int = 1, causal: bool = False
) -> np.ndarray:
    """(L, L) bool mask, ``mask[m, p]`` True iff key m is attended by query p."""
    mask = np.zeros((length, length), dtype=bool)
    for query in range(length):
        mask[neighborhood_window(query, length, window, stride, dilation, causal), query] = True
    return mask


def neighborhood_mask(
    shape: Sequence[int],
    window: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    causal: Sequence[bool],
) -> np.ndarray:
    """Multi-dimensional neighborhood mask over C-order-flattened tokens.

    The mask is the AND of the per-axis masks, so with row-major flattening it
    is the Kronecker product of the per-axis (L, L) masks.

    Returns
    -------
    (N, N) bool array with ``N = prod(shape)``, indexed ``mask[key, query]``.
    """
    per_axis = [len(shape), len(window), len(stride), len(dilation), len(causal)]
    if len(set(per_axis)) != 1:
        raise ValueError(f"per-axis parameters disagree on the number of axes: {per_axis}")
    axis_masks = [
        neighborhood_mask_1d(length, axis_window, axis_stride, axis_dilation, bool(axis_causal))
        for length, axis_window, axis_stride, axis_dilation, axis_causal in zip(
            shape, window, stride, dilation, causal
        )
    ]
    combined = functools.reduce(
        lambda left, right: np.kron(left, right), (m.astype(np.uint8) for m in axis_masks)
    )
    return combined.astype(bool)


def _gna_attention(
    inputs: dict[str, np.ndarray], sizes: dict[str, float], axis_suffixes: Sequence[str]
) -> dict[str, np.ndarray]:
    """Neighborhood self-attention over any number of spatial axes.

    ``Q`` has shape (E, *spatial), ``K`` (E, *spatial), ``V`` (F, *spatial).
    Per-axis parameters are read from sizes ``"W" + suffix`` (window, required),
    ``"S" + suffix`` (stride, default 1), ``"D" + suffix`` (dilation, default 1)
    and ``"C" + suffix`` (causal flag, default 0).
    """
    query, key, value = _query_key_value(inputs)
    spatial = query.shape[1:]
    if len(spatial) != len(axis_suffixes):
        raise ValueError(f"expected {len(axis_suffixes)} spatial axes, Q has shape {query.shape}")
    if key.shape[1:] != spatial or value.shape[1:] != spatial:
        raise ValueError("neighborhood attention is self-attention: Q, K, V spatial shapes must match")
    window = [_size(sizes, "W" + suffix) for suffix in axis_suffixes]
    stride = [_size(sizes, "S" + suffix, 1) for suffix in axis_suffixes]
    dilation = [_size(sizes, "D" + suffix, 1) for suffix in axis_suffixes]
    causal = [bool(_size(sizes, "C" + suffix, 0)) for suffix in axis_suffixes]
    mask = neighborhood_mask(spatial, window, stride, dilation, causal)
    flat_output = masked_attention(
        query.reshape(query.shape[0], -1),
        key.reshape(key.shape[0], -1),
        value.reshape(value.shape[0], -1),
        mask,
    )
    return {"AV": flat_output.reshape((value.shape[0], *spatial))}


def gna_attention(inputs: dict[str, np.ndarray], sizes: dict[str, float]) -> dict[str, np.ndarray]:
    """1-D neighborhood attention; parameters from sizes "W", "S", "D", "C"."""
    return _gna_attention(inputs, sizes, [""])


def gna_attention_2d(
    inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, np.ndarray]:
    """2-D neighborhood attention over axes X, Y; parameters "WX", "WY", "SX", ..."""
    return _gna_attention(inputs, sizes, ["X", "Y"])


def gna_attention_3d(
    inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, np.ndarray]:
    """3-D neighborhood attention over axes X, Y, Z; parameters "WX", ..., "CZ"."""
    return _gna_attention(inputs, sizes, ["X", "Y", "Z"])


def token_permute(inputs: dict[str, np.ndarray], sizes: dict[str, float]) -> dict[str, np.ndarray]:
    """A layout change, so the identity on values: ``QP, KP, VP = Q, K, V`` and ``O = AV``."""
    copies = {"QP": "Q", "KP": "K", "VP": "V", "O": "AV"}
    return {out: np.asarray(inputs[source], dtype=np.float64) for out, source in copies.items()}


def decode_layer(inputs: dict[str, np.ndarray], sizes: dict[str, float]) -> dict[str, np.ndarray]:
    """One decoder layer at a decode step: ``X`` (D, B) through Q/K/V projections, grouped-query
    attention of each query head over its key/value head's cache ``KC``, ``VC`` (E|F, N, M, B),
    the output projection plus residual and a SwiGLU FFN plus residual.  Returns the new
    token's ``KN``, ``VN`` and the layer output ``Z``."""
    x = np.asarray(inputs["X"], dtype=np.float64)
    w = {k: np.asarray(inputs[k], dtype=np.float64)
         for k in ("WQ", "WK", "WV", "WO", "WG", "WU", "WDN", "KC", "VC")}
    queries = np.einsum("db,dnge->ngeb", x, w["WQ"])
    outputs = np.zeros((queries.shape[0], queries.shape[1], w["VC"].shape[0], x.shape[1]))
    for n in range(queries.shape[0]):
        for b in range(x.shape[1]):
            keys, values = w["KC"][:, n, :, b], w["VC"][:, n, :, b]  # (E, M), (F, M)
            query = queries[n, :, :, b].T                          # (E, G)
            outputs[n, :, :, b] = masked_attention(query, keys, values,
                                                   np.ones((keys.shape[1], query.shape[1]),
                                                           dtype=bool)).T
    residual = x + np.einsum("ngfb,ngfd->db", outputs, w["WO"])
    gate, up = residual.T @ w["WG"], residual.T @ w["WU"]            # (B, I)
    hidden = gate / (1.0 + np.exp(-gate)) * up
    return {"KN": np.einsum("db,dne->neb", x, w["WK"]),
            "VN": np.einsum("db,dnf->nfb", x, w["WV"]),
            "Z": residual + (hidden @ w["WDN"]).T}


# --------------------------------------------------------------------------
# Linear attention and prefix (scan) attention
# --------------------------------------------------------------------------


def _elu_plus_one(x: np.ndarray) -> np.ndarray:
    """Feature map ``phi(x) = elu(x) + 1``; strictly positive."""
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))) + 1.0


def causal_linear_attention(
    inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, np.ndarray]:
    """Causal kernelized linear attention (Katharopoulos et al., 2020).

    ``AV[f, p] = sum_{m<=p} a[m, p] V[f, m] / sum_{m<=p} a[m, p]`` with
    ``a[m, p] = phi(Q[:, p]) . phi(K[:, m])`` and ``phi = elu + 1``. Computed
    in the quadratic form rather than the recurrent-state form the cascades
    use, so it checks the reassociation.
    """
    query, key, value = _query_key_value(inputs)
    if key.shape[1] != query.shape[1]:
        raise ValueError("causal linear attention requires M == P")
    similarity = _elu_plus_one(key).T @ _elu_plus_one(query)  # (M, P)
    similarity = np.where(_causal_mask(key.shape[1], query.shape[1]), similarity, 0.0)
    return {"AV": (value @ similarity) / similarity.sum(axis=0)}


def attention_scan(
    inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, np.ndarray]:
    """Prefix softmax attention (Aaren, Feng et al., 2024).

    For every prefix length, each query attends keys ``0..m``:
    ``AV[f, m, p] = sum_{j<=m} softmax_{j<=m}(s[:, p])[j] V[f, j]``.
    Returns ``{"AV": (F, M, P)}``; each prefix is computed independently.
    """
    query, key, value = _query_key_value(inputs)
    keys, queries = key.shape[1], query.shape[1]
    output = np.empty((value.shape[0], keys, queries), dtype=np.float64)
    for prefix_end in range(keys):
        prefix_mask = np.broadcast_to((np.arange(keys) <= prefix_end)[:, None], (keys, queries))
        output[:, prefix_end, :] = masked_attention(query, key, value, prefix_mask)
    return {"AV": output}


REFERENCES: dict[str, Callable[[dict[str, np.ndarray], dict[str, float]], dict[str, np.ndarray]]] = {
    "attention": attention,
    "causal-attention": causal_attention,
    "gna": gna_attention,
    "gna-2d": gna_attention_2d,
    "gna-3d": gna_attention_3d,
    "causal-linear-attention": causal_linear_attention,
    "attention-scan": attention_scan,
}
