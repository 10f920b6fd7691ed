"""Cascade rewriting: 3 → 2 → 1 passes by rules on the IR, proven by execution.

The rewrites are checked three ways: ``einsim.passes`` of the printed text, the rewriter's own
validation against the original, and (independently) plain NumPy attention.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.cli import main
from einsim.library import references
from einsim.rewriting import (AlreadyRewrittenError, NotSoftmaxLikeError, RewriteError,
                              RewriteValidationError)
from einsim.rewriting.algebra import linear_form

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

REWRITABLE = {  # library cascade or example → (passes now, its plain-NumPy reference)
    "attention-3pass": (3, references.attention),
    "attention-2pass": (2, references.attention),
    "attention-2pass-tiled": (2, references.attention),
    "causal-attention-3pass": (3, references.causal_attention),
    "causal-attention-2pass": (2, references.causal_attention),
}
EXAMPLE_FILES = {"biased_softmax_reference.einsum": 3, "my_cascade.einsum": 2}


def _load(name: str) -> einsim.Cascade:
    if name.endswith(".einsum"):
        return einsim.parse((EXAMPLES / name).read_text(), name=name)
    return einsim.library.get(name)


def _cases():
    for name, (now, _) in {**REWRITABLE, **{k: (v, None) for k, v in EXAMPLE_FILES.items()}
                           }.items():
        for passes in (2, 1):
            if passes < now:
                yield name, passes


def _numpy_attention(inputs, scale=1.0, temperature=1.0, bias=0.0, softmin=False, keep=None):
    """Softmax (or softmin) attention, masked by ``keep[m, p]``; a fully masked row gives 0."""
    logits = scale * (inputs["K"].T @ inputs["Q"]) + bias
    logits = (-temperature if softmin else temperature) * logits
    keep = np.ones(logits.shape, bool) if keep is None else keep
    shown = np.where(keep, logits, -np.inf)
    top = shown.max(axis=0)
    weights = np.where(keep, np.exp(shown - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = weights.sum(axis=0)
    return (inputs["V"] @ weights) / np.where(total > 0, total, 1.0)


def _rng_inputs(cascade, sizes, seed):
    rng = np.random.default_rng(seed)
    shapes = {"Q": ("E", "P"), "K": ("E", "M"), "V": ("F", "M"), "BIAS": ("M", "P"),
              "MASK": ("M", "P")}
    return {n: rng.standard_normal([sizes[r] for r in shapes[n]]) for n in cascade.input_names}


# ------------------------------------------------------------------ the library and examples

@pytest.mark.parametrize("name, passes", list(_cases()))
def test_library_and_examples_rewrite_to_fewer_passes(name, passes):
    original = _load(name)
    result = einsim.rewrite(original, passes)
    parsed = einsim.parse(result.text)
    assert einsim.passes(parsed, "m") == passes == result.passes
    assert result.validated.ok and result.validated.max_abs_error < 1e-12
    assert result.cascade == parsed and result.text.startswith("#")
    # the rewrite executes equal to the original, and to plain NumPy attention
    sizes = {"E": 5, "F": 3, "M": 11, "P": 9, "M0": 4}
    inputs = _rng_inputs(original, sizes, seed=7)
    tensors = einsim.execute(parsed, inputs, {"M0": 4} if original.partitions else None)
    mine = einsim.execute(original, inputs, {"M0": 4} if original.partitions else None)
    for output in original.outputs:
        np.testing.assert_allclose(tensors[output], mine[output], rtol=1e-12, atol=1e-13)
    if name in REWRITABLE:
        expected = REWRITABLE[name][1](inputs, sizes)["AV"]
    else:
        bias = inputs.get("BIAS", 0.0)
        keep = np.arange(11)[:, None] <= np.arange(9)[None, :] if "causal" in \
            (EXAMPLES / name).read_text() else None
        expected = _numpy_attention(inputs, bias=bias, keep=keep)
    np.testing.assert_allclose(tensors["AV"], expected, rtol=1e-10, atol=1e-12)


def test_three_passes_to_one_is_the_fusemax_form_when_tiled():
    """A 3-pass cascade over a partition becomes FuseMax's shape: tile max, running max,
    correction factor, tile sums and running sums, one division at the end."""
    text = """partition M -> M1, M0 by M0
input Q[E, P], K[E, M], V[F, M]
BQK[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]
GM[p] = max[m1, m0] BQK[m1, m0, p]
SN[m1, m0, p] = exp(BQK[m1, m0, p] - GM[p])
SD[p] = SN[m1, m0, p]
A[m1, m0, p] = SN[m1, m0, p] / SD[p]
AV[f, p] = A[m1, m0, p] * V[f, m1*M0 + m0]
"""
    result = einsim.rewrite(text, 1)
    body = [line for line in result.text.splitlines() if not line.startswith("#")]
    assert "GM_LOCAL[m1, p] = max[m0] BQK[m1, m0, p]" in body
    assert "GM_RUN[m1 + 1, p] = max(GM_RUN[m1, p], GM_LOCAL[m1, p])" in body
    assert "GM_CORR[m1, p] = exp(GM_RUN[m1, p] - GM_RUN[m1 + 1, p])" in body
    assert "SN[m1, m0, p] = exp(BQK[m1, m0, p] - GM_RUN[m1 + 1, p])" in body
    assert "AV[f, p] = SNV_RUN[f, M1, p] / SD_RUN[M1, p]" in body
    assert result.validated.tile == "m1"
    assert einsim.passes(result.cascade, "m0") == 2  # like FuseMax: 1 over m, 2 over m0


def test_two_level_normaliser_runs_over_the_outer_part():
    """attention-2pass-tiled has tile maxima LM and GM = max[m1] LM: the running max is over
    m1, and the tiles' exponentials stay as they are."""
    result = einsim.rewrite(einsim.library.get("attention-2pass-tiled"), 1)
    assert "GM_RUN[m1 + 1, p] = max(GM_RUN[m1, p], LM[m1, p])" in result.text
    assert "SLN[m1, m0, p] = exp(BQK[m1, m0, p] - LM[m1, p])" in result.text
    assert "SD_RUN[m1 + 1, p] = SD_RUN[m1, p] * GM_CORR[m1, p] + SPD[m1, p]" in result.text


HEADS = """rank M = 40
param SCALE = 0.35
partition M -> M1, M0 by 8
input Q[E, H, P], K[E, H, M], V[F, H, M]
S[h, m1, m0, p] = Q[e, h, p] * K[e, h, m1*M0 + m0] * SCALE
MX[h, p] = max[m1, m0] S[h, m1, m0, p]
EX[h, m1, m0, p] = exp(S[h, m1, m0, p] - MX[h, p]) where m1*M0 + m0 <= p
SUMX[h, p] = EX[h, m1, m0, p]
PR[h, m1, m0, p] = EX[h, m1, m0, p] / SUMX[h, p]
O[f, h, p] = PR[h, m1, m0, p] * V[f, h, m1*M0 + m0]
"""


@pytest.mark.parametrize("text", [HEADS, HEADS.replace("rank M = 40\n", "").replace("by 8",
                                                                                       "by 5")])
@pytest.mark.parametrize("passes", [2, 1])
def test_heads_declared_sizes_and_numeric_tiles(text, passes):
    result = einsim.rewrite(text, passes)
    assert result.validated.ok and einsim.passes(result.cascade, "m") == passes
    assert "O[f, h, p] = " in result.text
    if passes == 1:
        assert "MX_RUN[m1 + 1, h, p] = max(MX_RUN[m1, h, p], MX_LOCAL[m1, h, p])" in result.text


# -------------------------------------------------------------------- generated variants

NAME = st.from_regex(r"[A-Z][A-Z]{1,3}", fullmatch=True).filter(lambda n: n not in {"MX"})
EXPONENTS = {  # style → exponent of t * (x - n) (softmax) and t * (n - x) (softmin)
    "times": ("({x} - {n}) * {t}", "({n} - {x}) * {t}"),
    "distributed": ("{t} * {x} - {t} * {n}", "{t} * {n} - {t} * {x}"),
    "divided": ("({x} - {n}) / {inv}", "({n} - {x}) / {inv}"),
    "negated": ("neg({n} - {x}) * {t}", "neg({x} - {n}) * {t}"),
}


@st.composite
def variants(draw):
    """A softmax-like cascade text with random names, constants, mask, tiling and form."""
    names = draw(st.lists(NAME, min_size=10, max_size=10, unique=True))
    role = dict(zip(["S", "X", "XM", "N", "E", "D", "A", "Y", "NV", "EX"], names))
    case = {
        "softmin": draw(st.booleans()), "scale": draw(st.sampled_from([0.125, 0.5, 1.0, 1.7])),
        "t": draw(st.sampled_from([0.5, 1.0, 2.0])), "bias": draw(st.sampled_from(
            ["none", "constant", "tensor"])), "mask": draw(st.sampled_from(
            ["none", "filter", "value"])), "shift": draw(st.integers(0, 3)),
        "tiled": draw(st.booleans()), "tile": draw(st.integers(1, 4)),
        "form": draw(st.sampled_from(["3pass", "fused", "2pass"])),
        "style": draw(st.sampled_from(sorted(EXPONENTS))),
        "M": draw(st.integers(1, 9)), "P": draw(st.integers(1, 7)),
        "seed": draw(st.integers(0, 2**16)),
    }
    case["passes"] = 1 if case["form"] == "2pass" else draw(st.sampled_from([1, 2]))
    return _variant_text(role, case), case


def _variant_text(role, case):
    tiled = case["tiled"]
    m = "m1, m0" if tiled else "m"
    key = "m1*M0 + m0" if tiled else "m"
    lines = ["partition M -> M1, M0 by M0"] if tiled else []
    extra = {"tensor": ", BIAS[M, P]"}.get(case["bias"], "") + \
        (", MASK[M, P]" if case["mask"] == "value" else "")
    lines.append(f"input Q[E, P], K[E, M], V[F, M]{extra}")
    where = f" where {key} + {case['shift']} <= p" if case["mask"] == "filter" else ""
    lines.append(f"{role['S']}[{m}, p] = Q[e, p] * K[e, {key}]")
    bias = {"none": "", "constant": " - 0.75", "tensor": f" + BIAS[{key}, p]"}[case["bias"]]
    lines.append(f"{role['X']}[{m}, p] = {role['S']}[{m}, p] * {case['scale']}{bias}{where}")
    logits = role["X"]
    if case["mask"] == "value":
        hidden = "inf" if case["softmin"] else "-inf"
        lines.append(f"{role['XM']}[{m}, p] = where(MASK[{key}, p] > 0, {role['X']}[{m}, p], "
                     f"{hidden})")
        logits = role["XM"]
    op = "min" if case["softmin"] else "max"
    lines.append(f"{role['N']}[p] = {op}[{m}] {logits}[{m}, p]")
    pattern = EXPONENTS[case["style"]][int(case["softmin"])]
    exponent = pattern.format(x=f"{logits}[{m}, p]", n=f"{role['N']}[p]", t=case["t"],
                              inv=1 / case["t"])
    e, d, y = role["E"], role["D"], role["Y"]
    lines += [f"{e}[{m}, p] = exp({exponent})", f"{d}[p] = {e}[{m}, p]"]
    value = f"V[f, {key}]"
    if case["form"] == "3pass":
        lines += [f"{role['A']}[{m}, p] = {e}[{m}, p] / {d}[p]",
                  f"{y}[f, p] = {role['A']}[{m}, p] * {value}"]
    elif case["form"] == "fused":
        lines.append(f"{y}[f, p] = {e}[{m}, p] * {value} / {d}[p]")
    else:
        lines += [f"{role['NV']}[f, p] = {e}[{m}, p] * {value}",
                  f"{y}[f, p] = {role['NV']}[f, p] / {d}[p]"]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants())
def test_generated_variants_rewrite_and_match_numpy(variant):
    text, case = variant
    result = einsim.rewrite(text, case["passes"], seed=case["seed"] % 100)
    parsed = einsim.parse(result.text)
    assert einsim.passes(parsed, "m") == case["passes"]
    assert result.validated.ok
    sizes = {"E": 3, "F": 2, "M": case["M"], "P": case["P"]}
    inputs = _rng_inputs(parsed, sizes, case["seed"])
    keep = np.ones((case["M"], case["P"]), bool)
    if case["mask"] == "filter":
        keep = np.arange(case["M"])[:, None] + case["shift"] <= np.arange(case["P"])[None, :]
    if case["mask"] == "value":
        inputs["MASK"][:, 0] = -1.0  # query 0 sees no key at all
        keep = inputs["MASK"] > 0
    bias = {"none": 0.0, "constant": -0.75}.get(case["bias"], inputs.get("BIAS"))
    expected = _numpy_attention(inputs, case["scale"], case["t"], bias, case["softmin"], keep)
    got = einsim.execute(parsed, inputs, {"M0": case["tile"]} if case["tiled"] else None)
    output = next(line.split("[")[0] for line in reversed(result.text.splitlines()))
    compared = np.ones(case["P"], bool)
    if case["mask"] == "value" and case["passes"] == 2:
        # the 2-pass form keeps the original's exponent, and with it the original's NaN on a
        # row of +-inf (inf - inf for softmin, neg(-inf - -inf) for the negated style)
        compared = keep.any(axis=0)
    np.testing.assert_allclose(got[output][:, compared], expected[:, compared], rtol=1e-9,
                               atol=1e-11)
    if case["passes"] == 1 or case["mask"] != "value":
        assert np.all(got[output][:, ~keep.any(axis=0)] == 0)  # fully masked rows give 0


def _skeleton(text: str) -> list[str]:
    """The statements with every upper-case name blanked: equal for any naming of tensors."""
    return [re.sub(r"\b[A-Z][A-Za-z0-9_]*\b", "T", line) for line in text.splitlines()
            if line and not line.startswith("#")]


ORIGINAL_NAMES = ["QK", "GM", "SN", "SD", "AV", "A"]


@settings(max_examples=25, deadline=None)
@given(st.lists(NAME.filter(lambda n: n not in ORIGINAL_NAMES), min_size=6, max_size=6,
                unique=True), st.sampled_from([1, 2]))
def test_renaming_tensors_renames_the_rewrite_and_changes_nothing_else(names, passes):
    original = einsim.library.get("causal-attention-3pass")
    mapping = dict(zip(ORIGINAL_NAMES, names))
    text = re.sub(r"\b[A-Z]+\b", lambda found: mapping.get(found.group(), found.group()),
                  str(original))
    renamed = einsim.rewrite(text, passes)
    plain = einsim.rewrite(original, passes)
    assert _skeleton(renamed.text) == _skeleton(plain.text)
    assert not set(ORIGINAL_NAMES) & set(re.findall(r"\b[A-Z]+\b", renamed.text))


# -------------------------------------------------------------------------------- refusals

SUM_NORMALISED = """input Q[E, P], K[E, M], V[F, M]
QK[m, p] = Q[e, p] * K[e, m]
LM[p] = sum[m] QK[m, p]
SN[m, p] = exp(QK[m, p] - LM[p])
SD[p] = SN[m, p]
A[m, p] = SN[m, p] / SD[p]
AV[f, p] = A[m, p] * V[f, m]
"""


def _attention_with(exponent: str, tail: str = "") -> str:
    return ("input Q[E, P], K[E, M], V[F, M]\nQK[m, p] = Q[e, p] * K[e, m]\n"
            f"GM[p] = max[m] QK[m, p]\nSN[m, p] = exp({exponent})\nSD[p] = SN[m, p]\n"
            + (tail or "A[m, p] = SN[m, p] / SD[p]\nAV[f, p] = A[m, p] * V[f, m]\n"))


@pytest.mark.parametrize("source, passes, error, message", [
    ("linear-attention", 1, NotSoftmaxLikeError, "linear-attention is not softmax-like over m "
     "(m1, m0): no Einsum T[...] = exp(...) iterates it; rewriting needs a max- or "
     "min-normalised exponential, its sum and a division"),
    (SUM_NORMALISED, 2, NotSoftmaxLikeError, "the normaliser LM is a sum, not a monotone "
     "reduction (max or min)"),
    ("fusemax", 1, AlreadyRewrittenError, "fusemax already needs 1 pass over m (m1, m0); "
     "nothing to rewrite"),
    ("attention-2pass", 2, AlreadyRewrittenError, "attention-2pass already needs 2 passes over "
     "m; nothing to rewrite"),
    ("attention-naive", 2, AlreadyRewrittenError, "attention-naive already needs 1 pass over "
     "m, fewer than the 2 asked for; nothing to rewrite"),
    (_attention_with("QK[m, p] - 2 * GM[p]"), 2, NotSoftmaxLikeError,
     "no exponential of (x - max): the exponent of SN, QK[m, p] - 2 * GM[p], is not a "
     "multiple of (QK[m, p]) - GM[p]"),
    (_attention_with("QK[m, p] * GM[p]"), 1, NotSoftmaxLikeError,
     "no exponential of (x - max): the exponent of SN uses GM non-linearly, in "
     "QK[m, p] * GM[p]"),
    (_attention_with("QK[m, p]"), 1, NotSoftmaxLikeError, "no exponential of (x - max): the "
     "exponent of SN, QK[m, p], subtracts no max or min over m"),
    (_attention_with("QK[m, p] - GM[p]", "A[m, p] = SN[m, p] / SD[p]\n"), 2, RewriteError,
     "A = SN[m, p] / SD[p] is an output that keeps m: the division by SD cannot be deferred "
     "past a sum"),
    (_attention_with("QK[m, p] - GM[p]", "A[m, p] = SN[m, p] / SD[p]\n"
                     "AV[f, p] = A[m, p] * V[f, m]\nLSE[p] = GM[p] + log(SD[p])\n"), 1,
     RewriteError, "the normaliser GM is also read by LSE; the 1-pass form replaces it by a "
     "running value that is complete only at the end"),
])
def test_refusals_say_why_in_one_line(source, passes, error, message):
    cascade = einsim.library.get(source) if source in einsim.library.names() else source
    with pytest.raises(error) as raised:
        einsim.rewrite(cascade, passes)
    assert str(raised.value) == message
    assert isinstance(raised.value, einsim.EinsimError)


def test_the_log_sum_exp_output_still_defers_its_division():
    text = _attention_with("QK[m, p] - GM[p]", "A[m, p] = SN[m, p] / SD[p]\n"
                           "AV[f, p] = A[m, p] * V[f, m]\nLSE[p] = GM[p] + log(SD[p])\n")
    result = einsim.rewrite(text, 2)
    assert result.validated.ok and "LSE[p] = GM[p] + log(SD[p])" in result.text


@pytest.mark.parametrize("passes", [0, 3, True, "1"])
def test_passes_must_be_one_or_two(passes):
    with pytest.raises(RewriteError, match="passes must be 1 or 2"):
        einsim.rewrite(einsim.library.get("attention-3pass"), passes)


def test_bad_arguments_are_einsim_errors():
    with pytest.raises(einsim.EinsimError, match="expected a Cascade or cascade text"):
        einsim.rewrite(42, 1)
    with pytest.raises(einsim.EinsimError, match="rank 'q' does not occur"):
        einsim.rewrite(einsim.library.get("attention-3pass"), 1, rank="q")


def test_a_rewrite_that_fails_validation_is_raised_not_returned(monkeypatch):
    from einsim.rewriting import front_door
    from einsim.rewriting.validation import Validation

    failing = Validation(False, 0.5, 3, (("M", 13),), None, "AV on normal inputs")
    monkeypatch.setattr(front_door, "compare", lambda *args, **kwargs: failing)
    with pytest.raises(RewriteValidationError, match="differs from it on random inputs"):
        einsim.rewrite(einsim.library.get("attention-3pass"), 2)


# ----------------------------------------------------------------------------- algebra

def test_linear_forms_read_scales_and_signs():
    cascade = einsim.parse("param S = 0.5\nY[m, p] = exp((X[m, p] - N[p]) * S / sqrt(E) + 2)")
    form = linear_form(cascade.einsums[0].expression.args[0])
    x, n = (einsim.parse(f"Z[m, p] = {t}").einsums[0].expression for t in ("X[m, p]",
                                                                          "N[p]"))
    assert str(form.coefficient(x).expression()) == "S / sqrt(E)"
    assert str(form.coefficient(n).expression()) == "neg(S / sqrt(E))"
    assert form.coefficient(n).is_negative and form.constant.terms == (((), 2.0),)


# --------------------------------------------------------------------------- the CLI

def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_json_has_the_documented_keys(capsys):
    status, out, _ = run_cli(capsys, "rewrite", "attention-3pass", "--passes", "1", "--json")
    data = json.loads(out)
    assert status == 0 and set(data) == {"cascade", "passes", "validated"}
    assert set(data["validated"]) == {"ok", "max_abs_error"} and data["validated"]["ok"]
    assert data["passes"] == 1 and einsim.passes(einsim.parse(data["cascade"]), "m") == 1


def test_cli_prints_the_cascade_and_a_validation_line(capsys, tmp_path):
    path = tmp_path / "mine.einsum"
    path.write_text(SUM_NORMALISED.replace("sum[m]", "max[m]"))
    status, out, _ = run_cli(capsys, "rewrite", "--file", str(path), "--passes", "2")
    assert status == 0 and "SNV[f, p] = SN[m, p] * V[f, m]" in out
    assert "passes over m: 3 → 2" in out and "validated: ok" in out


@pytest.mark.parametrize("argv, expected", [
    (["rewrite", "linear-attention", "--passes", "1"], "not softmax-like"),
    (["rewrite", "fusemax", "--passes", "1"], "already needs 1 pass"),
    (["rewrite", "attention-3pass", "--passes", "3"], "passes must be 1 or 2"),
    (["rewrite", "attention-3pass"], "--passes"),
    (["rewrite", "no-such-cascade", "--passes", "1"], "unknown cascade"),
    (["rewrite", "--passes", "1"], "give a library cascade NAME or --file F"),
    (["rewrite", "--file", "/no/such.einsum", "--passes", "1"], "no such file"),
    (["rewrite", "attention-3pass", "--passes", "1", "--rank", "q"], "does not occur"),
])
def test_cli_bad_input_is_one_line_and_status_2(capsys, argv, expected):
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("einsim: error:") and expected in err


def test_cli_failed_validation_is_status_1(capsys, monkeypatch):
    from einsim.rewriting import front_door
    from einsim.rewriting.validation import Validation

    failing = Validation(False, 0.5, 3, (("M", 13),), None, "AV on normal inputs")
    monkeypatch.setattr(front_door, "compare", lambda *args, **kwargs: failing)
    status, out, err = run_cli(capsys, "rewrite", "attention-3pass", "--passes", "2")
    assert status == 1 and out == "" and "differs from it" in err and err.count("\n") == 1
