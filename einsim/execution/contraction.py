"""Contraction plans: how one einsum spec is computed, decided once per spec.

A sum of products of two operands that is a matrix product (rows, one contracted axis,
columns) goes to ``np.matmul`` (BLAS) through transposed views, writing into a given output
when there is one; single-operand sums go to ``np.add.reduce``; anything else goes to
``np.einsum`` with a contraction path computed on first use.
"""

from __future__ import annotations

import numpy as np

_PLANS: dict[tuple, object] = {}


def contract_plan(subscripts: tuple[str, ...], output: str):
    """A function ``(operands, out) -> result`` for one einsum spec, built once per spec.

    Two operands whose letters split into rows (first only), a contracted inner axis (both, not
    in the output) and columns (second only) go to ``np.matmul`` (BLAS) with transposed views;
    anything else goes to ``np.einsum`` with a contraction path computed once.
    """
    key = (subscripts, output)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _build_plan(subscripts, output)
    return plan


def _build_plan(subscripts: tuple[str, ...], output: str):
    spec = ",".join(subscripts) + "->" + output
    if len(subscripts) == 2:
        a, b = subscripts
        inner = [c for c in a if c in b and c not in output]
        rows = [c for c in a if c not in b]
        columns = [c for c in b if c not in a]
        if len(inner) == 1 and len(rows) <= 1 and len(columns) <= 1 and \
                len(set(a)) == len(a) and len(set(b)) == len(b) and \
                sorted(output) == sorted(rows + columns) and set(a) | set(b) == set(output) | \
                set(inner):
            a_order = [a.index(c) for c in rows + inner]
            b_order = [b.index(c) for c in inner + columns]
            flipped = output != "".join(rows + columns)

            def gemm(operands, out):
                left = operands[0].transpose(a_order)
                right = operands[1].transpose(b_order)
                if not rows:
                    left = left[None, :]
                if not columns:
                    right = right[:, None]
                if out is None:
                    result = np.matmul(left, right)
                    if not columns:
                        result = result[:, 0]
                    if not rows:
                        result = result[0]
                    return result.T if flipped else result
                if not rows or not columns:  # a matrix-vector product: small, no out=
                    np.copyto(out, gemm(operands, None))
                    return out
                np.matmul(left, right, out=out.T if flipped else out)
                return out

            return gemm
    if len(subscripts) == 1 and len(set(subscripts[0])) == len(subscripts[0]) and \
            set(output) <= set(subscripts[0]):
        letters = subscripts[0]
        summed = [c for c in letters if c not in output]
        order = [letters.index(c) for c in (*output, *summed)]
        axes = tuple(range(len(output), len(letters)))

        def reduce(operands, out):
            return np.add.reduce(operands[0].transpose(order), axis=axes, out=out)

        return reduce
    path = None

    def general(operands, out):
        nonlocal path
        if len(operands) < 2:
            return np.einsum(spec, *operands, out=out)
        if path is None:
            path = np.einsum_path(spec, *operands, optimize="greedy")[0]
        return np.einsum(spec, *operands, optimize=path, out=out)

    return general
