"""The GPU kernel of a sparse mask: FlashAttention's loop tree on the online-softmax cascade
with the mask on its scores, evaluated on the engine (which skips empty tiles and masks
partial ones, counting them from the same mask)."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from typing import Mapping

from einsim.language import ir
from einsim.language.affine import Affine, Term
from einsim.sparsity.mask import SparseMaskError

_SCORES = "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]"


def masked_attention(cascade: ir.Cascade, stand_in: bool = False) -> ir.Cascade:
    """``attention-1pass`` with ``cascade``'s mask on its scores S (the key ``m`` becomes the
    tiled ``m1*M0 + m0``), and ``cascade``'s params.  The mask must be over ``m`` and ``p``.

    A mask on a partition's digits (``md == pd``) cannot be written over the kernel's own KV
    tiles; with ``stand_in`` it gets a stand-in of the same structure (the same operations per
    score) whose counts the caller must supply (:func:`gpu_runtimes` takes them from the
    sparse analysis, which counts any mask over (m, p))."""
    from einsim.language.parser import parse

    masked = [e for e in cascade.einsums if e.condition is not None]
    if not masked:
        raise SparseMaskError("the cascade has no mask (no Einsum has a where)")
    condition = _whole(masked[0].condition, cascade)
    tiles = any(p.rank == "M" and p.parts == ("M1", "M0") and p.sizes == ("M0",)
                for p in cascade.partitions)  # the kernel's own KV tiles: m1, m0 stay
    allowed = {"m", "p"} | ({"m1", "m0"} if tiles else set())
    others = [v for v in ir.condition_variables(condition) if v not in allowed]
    if others and stand_in:
        condition = _stand_in(condition)
    elif others:
        raise SparseMaskError(f"mask '{masked[0].condition}' of {masked[0].name} uses "
                              f"{others[0]} apart from the index it is a part of: a GPU "
                              "runtime needs a mask over the key m and the query p (the "
                              "kernel tiles the keys itself)")
    template = resources.files("einsim.library").joinpath("attention-1pass.einsum").read_text()
    kernel = parse(template)  # its tensor, rank and size names are taken
    taken = set(kernel.input_names) | set(kernel.producers) \
        | {ir.rank_of(v) for e in kernel.einsums for v in e.variables} \
        | {part for p in kernel.partitions for part in (p.rank, *p.parts)}
    clashing = sorted(taken & {p.name for p in cascade.params})
    if clashing:
        raise SparseMaskError(f"param {clashing[0]}: the kernel's cascade uses that name; "
                              "rename the param for a GPU runtime")
    params = "".join(f"param {p.name} = {p.value}\n" for p in cascade.params)
    text = params + template.replace(_SCORES, f"{_SCORES} where {_tiled(condition)}")
    return replace(parse(text), name=f"attention-1pass masked as {cascade.name or 'given'}")


def _stand_in(condition):
    """The condition's structure over (m, p): each comparison a comparison, each window a
    window, so masking a score costs the same operations."""
    if isinstance(condition, ir.BoolOp):
        return replace(condition, left=_stand_in(condition.left),
                       right=_stand_in(condition.right))
    if isinstance(condition, ir.Not):
        return replace(condition, operand=_stand_in(condition.operand))
    key, query = Affine.variable("m"), Affine.variable("p")
    if isinstance(condition, ir.IndexComparison):
        return ir.IndexComparison("<=", key, query)
    return ir.Predicate("within", (query, key, Affine.constant(0)))


def _whole(condition, cascade: ir.Cascade):
    """The condition with each partition's parts, where they appear as the whole index
    (``m1*M0 + m0``), written as that index (``m``)."""
    wholes = []
    for partition in cascade.partitions:
        parts = [part.lower() for part in partition.parts]
        radix = [tuple(sorted(partition.parts[k + 1:])) for k in range(len(parts))]
        wholes.append((partition.rank.lower(), dict(zip(parts, radix))))
    return _map_indices(condition, lambda index: _merged(index, wholes))


def _merged(index: Affine, wholes) -> Affine:
    terms = list(index.terms)
    for whole, radix in wholes:
        found = {t.variable: t for t in terms if t.variable in radix}
        if len(found) != len(radix):
            continue
        coefficient = next(iter(found.values())).coefficient
        if all(t.coefficient == coefficient and tuple(sorted(t.sizes)) == radix[v]
               for v, t in found.items()):
            terms = [t for t in terms if t.variable not in radix] + [Term(coefficient, (),
                                                                          whole)]
    return Affine.of(terms)


def _map_indices(condition, change):
    """The condition with ``change`` applied to every index."""
    if isinstance(condition, ir.BoolOp):
        return replace(condition, left=_map_indices(condition.left, change),
                       right=_map_indices(condition.right, change))
    if isinstance(condition, ir.Not):
        return replace(condition, operand=_map_indices(condition.operand, change))
    if isinstance(condition, ir.IndexComparison):
        return replace(condition, left=change(condition.left), right=change(condition.right))
    return replace(condition, args=tuple(change(a) for a in condition.args))


def _tiled(condition):
    """The condition with the key index m written as m1*M0 + m0."""
    return _map_indices(condition, _key)


def _key(index: Affine) -> Affine:
    terms = []
    for term in index.terms:
        if term.variable == "m":
            terms += [Term(term.coefficient, term.sizes + ("M0",), "m1"),
                      Term(term.coefficient, term.sizes, "m0")]
        else:
            terms.append(term)
    return Affine.of(terms)


def gpu_runtimes(gpu, cascade: ir.Cascade, params: Mapping[str, int], *, q_tile: int,
                 kv_tile: int, seq_len: int, kv_len: int, head_dim: int, sequences: int,
                 dtype: str, counts=None, attended: int | None = None) -> tuple[float, float]:
    """(sparse, dense) seconds of the GPU's own FlashAttention tree (FlashAttention-3, or -2
    where the preset's kernel does not overlap softmax with the GEMMs) with ``q_tile`` queries
    per CTA and ``kv_tile`` keys per tile, with and without the mask (a cascade without one
    runs dense).  ``counts`` (the analysis' :class:`~einsim.sparsity.tiles.TileCounts` at these
    tiles) and ``attended`` (pairs) price a mask the kernel cannot write over its own tiles."""
    from einsim.kernels.tree_runs import run_tree

    mapping = "flash-attention-3" if gpu.fmha_pipelined else "flash-attention-2"
    sizes = {"M": kv_len, "P": seq_len, "E": head_dim, "F": head_dim}
    tiles = {"TQ": q_tile, "M0": kv_tile}
    dense = float(run_tree(gpu, mapping, sizes, sequences, tiles, dtype=dtype)["latency_s"])
    if not any(e.condition is not None for e in cascade.einsums):
        return dense, dense
    try:
        kernel, supplied = masked_attention(cascade), None
    except SparseMaskError:
        if counts is None or attended is None:
            raise
        kernel = masked_attention(cascade, stand_in=True)
        dense_tiles = counts.q_tiles * counts.kv_tiles
        partial = counts.partial.sum() + (counts.last_full.sum() if kv_len % kv_tile else 0)
        supplied = {"S": (attended / (seq_len * kv_len), counts.visited.sum() / dense_tiles,
                          partial / dense_tiles, counts.visited.max() / counts.kv_tiles)}
    sparse = run_tree(gpu, mapping, sizes, sequences, tiles, params, dtype, kernel, supplied)
    return float(sparse["latency_s"]), dense
