"""``neighborhood(p, m, L, W, S, D, C)`` written as and / or of atoms (NATTEN's rules, DESIGN §8).

With ``g = p mod D`` (the dilation group), ``i = floor(p/D)``, ``j = floor(m/D)``, the group's
length ``Lg = ceil((L - g)/D)`` and ``a = floor(i/S) = floor(p/(D*S))``, a key is in the window iff
``m mod D == g`` and ``start <= j < end`` where (:func:`einsim.language.functions.window_bounds`)

* non-causal: ``leader = min(S*a + S//2, Lg - 1)``, ``start = clip(leader - W//2, 0, max(Lg - W, 0))``,
  ``end = start + W``;
* causal: ``leader = min(S*a + S - 1, Lg - 1)``, ``start = max(leader - W + 1, 0)``, ``end = i + 1``.

``min``, ``max`` and ``clip`` become or / and of comparisons (``min(x, y) <= z`` iff ``x <= z or
y <= z``), and ``Lg`` takes two values, ``L // D + 1`` for groups ``g < L mod D`` and ``L // D``
for the others, so each is a case guarded by a comparison on ``p mod D``.  Every atom then has
one monotone key feature (``j``) at most, as counting requires.
"""

from __future__ import annotations

from einsim.sparsity.mask import KEY, QUERY, And, Atom, Feature, Node, Or, atom


def expand(query: Feature, key: Feature, length: int, window: int, stride: int = 1,
           dilation: int = 1, causal: int = 0, *, key_len: int, query_len: int,
           where: str) -> Node:
    """The neighborhood of query ``p`` over keys ``m`` as a :data:`Node` tree."""
    W, S, D = window, stride, dilation
    j = Feature(KEY, D)
    i = Feature(QUERY, D)
    a = Feature(QUERY, D * S)
    group = Feature(QUERY, 1, D)

    def le(terms: list, const: int) -> Atom:
        """``sum(terms) + const <= 0``."""
        return atom(terms, const, "<=", key_len, query_len, where)

    def window_of(Lg: int) -> Node:
        if causal:
            reaches = Or((le([(S, a), (-1, j)], S - 1 - W + 1), le([(-1, j)], Lg - 1 - W + 1)))
            return And((reaches, le([(1, j), (-1, i)], 0)))
        H = max(Lg - W, 0)
        y = 1 - W  # j - W + 1 = j + y
        start_le_j = Or((le([(S, a), (-1, j)], S // 2 - W // 2),
                         le([(-1, j)], Lg - 1 - W // 2), le([(-1, j)], H)))
        start_gt_j_minus_w = And((
            Or((And((le([(1, j), (-S, a)], y - S // 2 + W // 2),
                     le([(1, j)], y - (Lg - 1 - W // 2)))),
                le([(1, j)], y))),
            le([(1, j)], y - H)))
        return And((start_le_j, start_gt_j_minus_w))

    small, extra = divmod(length, D)
    cases: list[Node] = []
    if extra > 0:  # groups g < extra have small + 1 tokens
        cases.append(And((le([(1, group)], -(extra - 1)), window_of(small + 1))))
    if extra < D:
        body = window_of(small)
        cases.append(And((le([(-1, group)], extra), body)) if extra > 0 else body)
    tree: Node = cases[0] if len(cases) == 1 else Or(tuple(cases))
    if D > 1:
        same_group = atom([(1, Feature(KEY, 1, D)), (-1, group)], 0, "==", key_len, query_len,
                          where)
        tree = And((same_group, tree))
    return tree
