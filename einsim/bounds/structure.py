"""What the bounds need to know about a cascade, read from its IR (no sizes, no names).

* the **score contraction** ``S[k, q] = A[d, q] * B[d, k]`` summed over ``d``, whose operands
  are inputs seen through element-wise copies (``BK[e, m1, m0] = K[e, m1*M0 + m0]``); its key
  side is the one the cascade reduces away (not in any output);
* the **crossing tensors** of each pass boundary: pair-specific intermediates (one value per
  (key, query) pair, e.g. ``QK[m, p]``) made in pass ``b`` or before and read in a later pass,
  by a reader that waits for a fiber-level reduction (``GM[p]``) which itself depends on them;
* how much of each input a masked cascade must read (rows of never-attended keys need not be).

Anything outside these patterns is reported in ``reason`` and bounded by compulsory traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from einsim.language import ir
from einsim.language.sizes import axis_rank, input_axis_ranks
from einsim.analysis.graph import dependency_graph, recurrences
from einsim.analysis.passes import pass_assignment, partition_root, rank_leaves, passes
from einsim.errors import EinsimError

USE_FULL, USE_KEYS, USE_QUERIES, USE_PAIRS = "full", "keys", "queries", "pairs"


@dataclass(frozen=True)
class Tensor:
    """An input or output: its axes' ranks (None for an axis whose size cannot be told) and,
    for an input, which part of it a mask leaves needed (``full``, ``keys``, ``queries``,
    ``pairs``)."""

    name: str
    ranks: tuple[str | None, ...]
    use: str = USE_FULL


@dataclass(frozen=True)
class Contraction:
    """The score contraction: ``einsum`` multiplies a query-side and a key-side input."""

    einsum: str
    query_input: str
    key_input: str
    reduced: tuple[str, ...]        # ranks summed over (the head dimension)
    query_ranks: tuple[str, ...]    # partition roots
    key_ranks: tuple[str, ...]
    condition: ir.Condition | None = None


@dataclass(frozen=True)
class ValueContraction:
    """``O[f, q] = sum P[k, q] * V[f, k]``: a per-pair operand times a value input."""

    einsum: str
    value_input: str
    extra_ranks: tuple[str, ...]   # the value row's ranks beyond the key (F)


@dataclass(frozen=True)
class Crossing:
    """Pair-specific tensors live at the end of pass ``boundary`` (and their extra axes);
    ``deadline`` is the fiber-level reduction ending the pass, ``values_after`` says the
    value contraction waits for it."""

    boundary: int
    tensors: tuple[str, ...]
    extra_ranks: tuple[tuple[str, ...], ...]   # per tensor: ranks beyond (key, query)
    first: tuple[bool, ...]                    # this is the tensor's first boundary
    deadline: str = ""
    values_after: bool = False


@dataclass(frozen=True)
class BoundStructure:
    """Everything the bound formulas need, as names of ranks and tensors."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    contraction: Contraction | None
    values: ValueContraction | None = None
    rank: str | None = None                 # the streamed rank passes are counted over
    passes: int = 1
    crossings: tuple[Crossing, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        return "; ".join(self.notes)


# ----------------------------------------------------------------------------- helpers


def _aligned(index, cascade: ir.Cascade) -> str | None:
    """The rank an index walks when it is a plain variable or a partition reconstruction."""
    return axis_rank(index, cascade)


def _root(cascade: ir.Cascade, rank: str) -> str:
    return partition_root(cascade, rank)


def _leaves(cascade: ir.Cascade, ranks) -> frozenset[str]:
    found: set[str] = set()
    for rank in ranks:
        if rank is not None:
            found |= rank_leaves(cascade, rank)
    return frozenset(found)


def _index_leaves(cascade: ir.Cascade, indices) -> frozenset[str]:
    """Leaf ranks the indices walk (an index like ``m1 + 1`` walks M1)."""
    found: set[str] = set()
    for index in indices:
        rank = _aligned(index, cascade)
        ranks = [rank] if rank is not None else [ir.rank_of(v) for v in index.variables]
        found |= _leaves(cascade, ranks)
    return frozenset(found)


def _elementwise_source(cascade: ir.Cascade, tensor: str) -> ir.Access | None:
    """The one access an element-wise copy or map reads (``BK = K[e, m1*M0 + m0]``,
    ``FQ = elu(Q[e, p]) + 1``): injective, aligned, no reduction, no mask, no recurrence."""
    einsum = cascade.producers.get(tensor)
    if einsum is None or einsum.reduced or einsum.condition is not None \
            or tensor in recurrences(cascade) or len(einsum.inputs) != 1:
        return None
    access = einsum.inputs[0]
    if access.tensor == tensor:
        return None
    used: list[str] = []
    for index in access.indices:
        if _aligned(index, cascade) is None:
            return None
        used += list(index.variables)
    outputs = [index.plain_variable() for index in einsum.output.indices]
    if None in outputs or len(set(used)) != len(used) or set(used) != set(outputs):
        return None
    return access


def trace_input(cascade: ir.Cascade, tensor: str) -> str | None:
    """The input a tensor copies element by element, or None."""
    seen = set()
    while tensor not in cascade.input_names:
        if tensor in seen:
            return None
        seen.add(tensor)
        source = _elementwise_source(cascade, tensor)
        if source is None:
            return None
        tensor = source.tensor
    return tensor


def _access_ranks(cascade: ir.Cascade, access: ir.Access) -> tuple[str, ...] | None:
    ranks = []
    for index in access.indices:
        rank = _aligned(index, cascade)
        if rank is None:
            return None
        ranks.append(_root(cascade, rank))
    return tuple(ranks)


def _product_operands(expression) -> list[ir.Access] | None:
    """The accesses of a product of two accesses (constants and parameters allowed)."""
    found: list[ir.Access] = []
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Access):
            found.append(node)
        elif isinstance(node, ir.BinaryOp) and node.op == "*":
            stack += [node.right, node.left]
        elif isinstance(node, (ir.Number, ir.Symbol)):
            continue
        else:
            return None
    return found if len(found) == 2 else None


def _passes_or_one(cascade: ir.Cascade, rank: str) -> int:
    try:
        return passes(cascade, rank.lower())
    except EinsimError:
        return 1


def _output_ranks(cascade: ir.Cascade) -> set[str]:
    ranks: set[str] = set()
    for name in cascade.outputs:
        for index in cascade.producers[name].output.indices:
            rank = _aligned(index, cascade)
            if rank is not None:
                ranks.add(_root(cascade, rank))
            for variable in index.variables:
                ranks.add(_root(cascade, ir.rank_of(variable)))
    return ranks


def find_contraction(cascade: ir.Cascade) -> tuple[Contraction | None, str]:
    """The first sum-of-products Einsum over two distinct inputs with disjoint free ranks."""
    why = "no Einsum multiplies two inputs (through element-wise copies) summed over a rank " \
          "they share"
    outputs = _output_ranks(cascade)
    for einsum in cascade.einsums:
        if not einsum.reduced or einsum.reduce_op != "sum":
            continue
        operands = _product_operands(einsum.expression)
        if operands is None:
            continue
        sources = [trace_input(cascade, a.tensor) for a in operands]
        ranks = [_access_ranks(cascade, a) for a in operands]
        if None in sources or None in ranks or sources[0] == sources[1]:
            continue
        variables = [set(a.variables) for a in operands]
        reduced = set(einsum.reduced)
        if variables[0] & variables[1] != reduced or \
                not set(einsum.output.variables) <= variables[0] | variables[1]:
            continue
        reduced_ranks = tuple(sorted({_root(cascade, ir.rank_of(v)) for v in reduced}))
        free = [tuple(dict.fromkeys(r for r in side if r not in reduced_ranks))
                for side in ranks]
        if not free[0] or not free[1] or set(free[0]) & set(free[1]):
            continue
        if any(set(_leaves(cascade, side)) & _leaves(cascade, reduced_ranks) for side in free):
            continue
        key = 1
        in_output = [bool(set(side) & outputs) for side in free]
        if in_output == [False, True]:
            key = 0
        elif in_output == [True, True] or in_output == [False, False]:
            counts = [max((_passes_or_one(cascade, r) for r in side), default=1)
                      for side in free]
            key = 0 if counts[0] > counts[1] else 1
        query = 1 - key
        return Contraction(einsum.name, sources[query], sources[key], reduced_ranks,
                           free[query], free[key], einsum.condition), ""
    return None, why


def find_value_contraction(cascade: ir.Cascade, contraction: Contraction
                           ) -> ValueContraction | None:
    """A sum of a per-pair operand times an input row over the key ranks plus extra ranks."""
    key_leaves = _leaves(cascade, contraction.key_ranks)
    for einsum in cascade.einsums:
        if not einsum.reduced or einsum.reduce_op != "sum" or einsum.condition is not None:
            continue
        operands = _product_operands(einsum.expression)
        if operands is None:
            continue
        for value, pair in (operands, operands[::-1]):
            source = trace_input(cascade, value.tensor)
            ranks = _access_ranks(cascade, value)
            if source is None or ranks is None or \
                    source in (contraction.query_input, contraction.key_input):
                continue
            extra = tuple(r for r in ranks if r not in contraction.key_ranks)
            if not extra or set(extra) & set(contraction.query_ranks) or \
                    not key_leaves <= _leaves(cascade, ranks) or \
                    _pair_specific(cascade, pair.tensor, contraction) != ():
                continue
            return ValueContraction(einsum.name, source, extra)
    return None


# ----------------------------------------------------------------------- pass crossings


def _pair_specific(cascade: ir.Cascade, tensor: str, contraction: Contraction
                   ) -> tuple[str, ...] | None:
    """Extra ranks (beyond key and query) of a per-pair intermediate, else None."""
    einsum = cascade.producers.get(tensor)
    if einsum is None or tensor in cascade.outputs or tensor in recurrences(cascade):
        return None
    ranks = []
    for index in einsum.output.indices:
        rank = _aligned(index, cascade)
        if rank is None:
            return None
        ranks.append(rank)
    covered = _leaves(cascade, ranks)
    pair = _leaves(cascade, contraction.key_ranks + contraction.query_ranks)
    if not pair <= covered:
        return None
    return tuple(r for r in ranks if not rank_leaves(cascade, r) <= pair)


def _aligned_graph(cascade: ir.Cascade, contraction: Contraction) -> nx.DiGraph:
    """Edges whose every access is a plain variable or a partition reconstruction, with the
    score's own query variables on query axes (so fiber p feeds fiber p)."""
    score = cascade.producers[contraction.einsum]
    query_variables = {v for v in score.output.variables
                       if _root(cascade, ir.rank_of(v)) in contraction.query_ranks}
    graph = dependency_graph(cascade)
    aligned = nx.DiGraph()
    aligned.add_nodes_from(graph.nodes)
    for source, target, data in graph.edges(data=True):
        if data["loop_carried"] or data["final"]:
            continue
        ok = True
        for access in data["accesses"]:
            for index in access.indices:
                rank = _aligned(index, cascade)
                if rank is None:
                    ok = False
                elif _root(cascade, rank) in contraction.query_ranks and \
                        not set(index.variables) <= query_variables:
                    ok = False
        if ok:
            aligned.add_edge(source, target)
    return aligned


def find_crossings(cascade: ir.Cascade, contraction: Contraction, rank: str,
                   values: ValueContraction | None = None
                   ) -> tuple[int, tuple[Crossing, ...], str]:
    """Pass count over ``rank`` and the crossing tensors of each boundary."""
    count = passes(cascade, rank.lower())
    if count < 2:
        return count, (), ""
    others = [e.name for e in cascade.einsums
              if e.condition is not None and e.name != contraction.einsum]
    if others:
        return count, (), (f"{', '.join(others)} carries its own mask, so pairs may drop out "
                           "after the score; pass terms left out")
    info = pass_assignment(cascade, rank.lower())
    aligned = _aligned_graph(cascade, contraction)
    key_leaves = _leaves(cascade, contraction.key_ranks)
    fiber_level = [e.name for e in cascade.einsums
                   if not _index_leaves(cascade, e.output.indices) & key_leaves]
    readers: dict[str, list[str]] = {}
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            if access.tensor != einsum.name:
                readers.setdefault(access.tensor, []).append(einsum.name)
    crossings, seen = [], set()
    for boundary in range(1, count):
        options = []
        for deadline in [d for d in fiber_level if info[d].ready == boundary + 0.5]:
            names, extras = [], []
            for einsum in cascade.einsums:
                tensor = einsum.name
                extra = _pair_specific(cascade, tensor, contraction)
                if extra is None or not info[tensor].traversal or \
                        info[tensor].pass_number > boundary:
                    continue
                late = [y for y in readers.get(tensor, ())
                        if info[y].traversal and info[y].pass_number > boundary]
                if nx.has_path(aligned, tensor, deadline) and any(
                        aligned.has_edge(tensor, y) and nx.has_path(aligned, deadline, y)
                        for y in late):
                    names.append(tensor)
                    extras.append(extra)
            after = values is not None and info[values.einsum].traversal and \
                info[values.einsum].pass_number > boundary and \
                nx.has_path(aligned, deadline, values.einsum)
            if names:
                options.append((len(names), after, deadline, names, extras))
        if options:
            _, after, deadline, names, extras = max(options, key=lambda o: o[:2])
            first = tuple(t not in seen for t in names)
            seen.update(names)
            crossings.append(Crossing(boundary, tuple(names), tuple(extras), first, deadline,
                                      after))
    return count, tuple(crossings), ""


# ------------------------------------------------------------------------ inputs, outputs


def _terminal_readers(cascade: ir.Cascade, tensor: str) -> list[ir.Einsum]:
    """Einsums that read ``tensor`` or an element-wise copy of it (copies followed)."""
    found, stack, seen = [], [tensor], set()
    while stack:
        current = stack.pop()
        for einsum in cascade.einsums:
            if einsum.name in seen or not any(a.tensor == current for a in einsum.inputs):
                continue
            if _elementwise_source(cascade, einsum.name) is not None:
                seen.add(einsum.name)
                stack.append(einsum.name)
            else:
                found.append(einsum)
    return found


def _input_use(cascade: ir.Cascade, name: str, ranks, contraction: Contraction | None,
               sources: dict[str, str]) -> str:
    if contraction is None or contraction.condition is None:
        return USE_FULL
    readers = _terminal_readers(cascade, name)
    if not readers or any(sources.get(r.name) != contraction.einsum for r in readers):
        return USE_FULL
    roots = {_root(cascade, r) for r in ranks if r is not None}
    keys = bool(roots & set(contraction.key_ranks))
    queries = bool(roots & set(contraction.query_ranks))
    if keys and queries:
        return USE_PAIRS
    return USE_KEYS if keys else USE_QUERIES if queries else USE_FULL


def _output_tensor(cascade: ir.Cascade, name: str) -> Tensor:
    einsum = cascade.producers[name]
    recurrence = recurrences(cascade).get(name)
    ranks = []
    for axis, index in enumerate(einsum.output.indices):
        rank = _aligned(index, cascade)
        if recurrence is not None and axis == recurrence.axis:
            rank = None
        ranks.append(rank)
    return Tensor(name, tuple(ranks))


def analyse(cascade: ir.Cascade) -> BoundStructure:
    """The bound structure of ``cascade`` (see the module docstring)."""
    from einsim.cost.masks import mask_sources

    notes: list[str] = []
    contraction, why = find_contraction(cascade)
    if why:
        notes.append(why)
    sources = mask_sources(cascade)
    inputs = []
    for name in cascade.input_names:
        ranks = input_axis_ranks(cascade, name)
        inputs.append(Tensor(name, ranks, _input_use(cascade, name, ranks, contraction,
                                                      sources)))
    outputs = tuple(_output_tensor(cascade, name) for name in cascade.outputs)
    if contraction is None:
        return BoundStructure(tuple(inputs), outputs, None, notes=tuple(notes))
    rank, count, crossings = None, 1, ()
    values = find_value_contraction(cascade, contraction)
    candidates = []
    for key in contraction.key_ranks:
        try:
            candidates.append((passes(cascade, key.lower()), key))
        except EinsimError:
            continue
    if candidates:
        # the streamed rank: the one the cascade partitions (as the engine reports), else
        # the first key rank; another key rank with more passes is used when it crosses
        partitioned = [c for c in candidates if any(p.rank == c[1] for p in cascade.partitions)]
        count, rank = (partitioned or candidates)[0]
        reasons = []
        for other_count, other in sorted(candidates, key=lambda c: -c[0]):
            if other_count < 2:
                break
            found_count, found, why = find_crossings(cascade, contraction, other, values)
            if found:
                count, rank, crossings = found_count, other, found
                break
            reasons.append((other, other_count, why))
        if not crossings:
            for other, other_count, why in reasons:
                if other == rank:
                    notes.append(why or f"{other_count} passes over {other} but no per-pair "
                                 "tensor crosses a pass boundary (what crosses is smaller "
                                 "than a fiber); pass terms left out")
    return BoundStructure(tuple(inputs), outputs, contraction, values, rank, count, crossings,
                          tuple(notes))
