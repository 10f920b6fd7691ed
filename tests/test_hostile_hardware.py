"""Hostile numbers in every hardware, LLM and workload field (issue 12).

Property: loading a specification whose field holds 0, a negative, a fraction, inf, nan, 2^63,
a 400-digit integer, text, ``None``, a boolean, a list or a nested mapping either gives a
valid model (every number finite, and the models it feeds still compute finite answers) or
raises :class:`SpecError` whose one-line message names the field's dotted path; never
another exception.  Every numeric field of every preset is tried with every hostile value,
then hypothesis combines several hostile edits at once.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsim.errors import EinsimError, SpecError
from einsim.workloads import Workload, load_workload
from hw_models.gpu_sm import GPU, load_gpu
from hw_models.offload import LLM, Link, load_link, load_llm
from hw_models.spatial_array import SHORT_NAMES, SpatialArray, load_spatial_array
from einsim.kernels.decode import estimate

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {  # loader, model type, preset files
    "spatial_array": (load_spatial_array, SpatialArray,
                      ["hw_models/presets/fusemax-cloud.yaml", "hw_models/presets/flat-cloud.yaml"]),
    "gpu": (load_gpu, GPU, ["hw_models/presets/h100.yaml", "hw_models/presets/a100.yaml"]),
    "link": (load_link, Link, ["hw_models/presets/roce-400g.yaml"]),
    "llm": (load_llm, LLM, ["einsim/llms/llama3-8b.yaml", "einsim/llms/llama3-70b.yaml"]),
    "workload": (load_workload, Workload, ["einsim/workloads/t5.yaml", "einsim/workloads/bert.yaml"]),
}
HOSTILE = [0, -1, -0.5, 0.5, 1.5, math.inf, -math.inf, math.nan, 2 ** 63, 10 ** 400,
           -(10 ** 400), "abc", "1e9", "", None, True, [1, 2], {"a": 1}, {"a": {"b": [1]}}]
COUNTS: dict[str, dict[str, int]] = {}


def numeric_paths(node, prefix=()):
    """Paths of every number in a document (booleans are flags, not numbers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from numeric_paths(value, prefix + (index,))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix


def document_of(preset: str) -> dict:
    return yaml.safe_load((ROOT / preset).read_text())


def with_value(document: dict, path: tuple, value) -> dict:
    edited = copy.deepcopy(document)
    node = edited
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return edited


def finite_numbers(node) -> bool:
    if isinstance(node, dict):
        return all(finite_numbers(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return all(finite_numbers(v) for v in node)
    if isinstance(node, float):
        return math.isfinite(node)
    return True


def still_computes(model) -> None:
    """A loaded model feeds the estimators: their answers are finite or an EinsimError."""
    try:
        if isinstance(model, GPU):
            result = estimate(model, "lean", batch=4, heads=8, head_dim=128, context=4096)
            assert math.isfinite(result.latency_s) and result.latency_s > 0
        elif isinstance(model, SpatialArray):
            assert math.isfinite(model.area_mm2) and model.word_bytes >= 1
        elif isinstance(model, LLM):
            assert model.heads % model.kv_heads == 0 and model.weight_bytes > 0
        elif isinstance(model, Workload):
            assert all(v >= 1 for v in model.sizes().values())
    except EinsimError:
        pass


def dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def check(kind: str, loader, model_type, document: dict, folder: Path, paths: list[tuple],
          name: str) -> str:
    """Load ``document``; returns "valid" or "refused", or fails the property."""
    target = folder / name
    target.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        model = loader(str(target))
    except SpecError as error:
        message = str(error)
        assert "\n" not in message and name in message, message
        named = [dotted(p) for p in paths if dotted(p) in message]
        if kind == "llm":  # a valid heads may leave kv_heads not dividing it
            named += ["kv_heads"] if "kv_heads" in message else []
        assert named, f"{kind}: {message!r} names none of {[dotted(p) for p in paths]}"
        return "refused"
    assert isinstance(model, model_type)
    assert finite_numbers(model.model_dump()), model
    still_computes(model)
    return "valid"


def test_every_numeric_field_with_every_hostile_value(tmp_path):
    for kind, (loader, model_type, presets) in PRESETS.items():
        tally = COUNTS.setdefault(kind, {"valid": 0, "refused": 0})
        for preset in presets:
            document = document_of(preset)
            for path, value in itertools.product(list(numeric_paths(document)), HOSTILE):
                outcome = check(kind, loader, model_type, with_value(document, path, value),
                                tmp_path, [path], Path(preset).name)
                tally[outcome] += 1
    total = sum(t["valid"] + t["refused"] for t in COUNTS.values())
    print(f"\nhostile single-field loads: {total} ({COUNTS})")
    assert total > 2000
    # the values that must never load
    for kind, tally in COUNTS.items():
        assert tally["refused"] > tally["valid"], kind


@pytest.mark.parametrize("kind, preset, path, value, fragment", [
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml", ("dram", "bandwidth_bytes_per_s"),
     math.inf, "dram.bandwidth_bytes_per_s: expected a finite number"),
    ("gpu", "hw_models/presets/h100.yaml", ("hbm_bandwidth_bytes_per_s",), math.inf,
     "hbm_bandwidth_bytes_per_s: expected a finite number"),
    ("gpu", "hw_models/presets/h100.yaml", ("price_per_hour",), -11.06, "price_per_hour"),
    ("link", "hw_models/presets/roce-400g.yaml", ("round_trip_s",), -33e-6,
     "round_trip_s: expected a finite number at least 0"),
    ("llm", "einsim/llms/llama3-8b.yaml", ("kv_heads",), 6,
     "kv_heads: expected a divisor of heads (32)"),
    ("llm", "einsim/llms/llama3-8b.yaml", ("layers",), 1.5, "layers: expected an integer"),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml", ("pe_dim",), 2 ** 63,
     "pe_dim: expected an integer greater than 0 and at most 65,536"),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml", ("word_bits",), 12,
     "word_bits: expected a multiple of 8 bits"),
    ("workload", "einsim/workloads/t5.yaml", ("heads",), 10 ** 400, "heads: expected an integer"),
])
def test_issue_cases_are_refused_naming_the_field(tmp_path, kind, preset, path, value, fragment):
    loader = PRESETS[kind][0]
    target = tmp_path / Path(preset).name
    target.write_text(yaml.safe_dump(with_value(document_of(preset), path, value)))
    with pytest.raises(SpecError) as caught:
        loader(str(target))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", sorted(SHORT_NAMES))
def test_overrides_by_short_name_take_hostile_values(name):
    refused = 0
    for value in HOSTILE:
        try:
            machine = load_spatial_array("fusemax-cloud", {name: value})
        except SpecError as error:
            assert SHORT_NAMES[name] in str(error) and "\n" not in str(error)
            refused += 1
        else:
            assert finite_numbers(machine.model_dump())
    assert refused >= len(HOSTILE) - 4  # at most 0.5, 1.5, "1e9" and 2^63 Hz are numbers


NUMBERS = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def hostile_documents(draw):
    kind = draw(st.sampled_from(sorted(PRESETS)))
    preset = draw(st.sampled_from(PRESETS[kind][2]))
    document = document_of(preset)
    paths = draw(st.lists(st.sampled_from(list(numeric_paths(document))), min_size=1,
                          max_size=3, unique=True))
    for path in paths:
        document = with_value(document, path, draw(NUMBERS))
    return kind, preset, paths, document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(hostile_documents())
def test_several_hostile_fields_at_once(tmp_path, case):
    kind, preset, paths, document = case
    loader, model_type, _ = PRESETS[kind]
    check(kind, loader, model_type, document, tmp_path, paths, Path(preset).name)
