"""Fuzzing the YAML loaders: any document either loads or raises a one-line EinsimError.

Random documents (nested mappings, lists and scalars, keyed by real field names, near misses of
them and junk), random bytes, and mutations of the real presets go through every loader of a
YAML specification.  A loader must return its model or raise :class:`einsim.errors.EinsimError`
with a one-line message, never ``KeyError``, ``TypeError``, ``AttributeError`` or a raw pydantic
``ValidationError``.  Mutating one field of a preset must produce an error naming its path.
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.cost.tree import MappingTree, load_mapping_tree
from einsim.errors import EinsimError
from einsim.language.ir import Cascade
from einsim.workloads import Workload, load_workload
from einsim.language.yaml_form import load_yaml, to_yaml
from hw_models.gpu_sm import GPU, load_gpu
from hw_models.offload import LLM, load_llm
from hw_models.spatial_array import SpatialArray, load_spatial_array

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("EINSIM_FUZZ_EXAMPLES", "100"))  # more for a deeper hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LOADERS = {  # name -> (loader taking a path, model it returns, presets to mutate)
    "spatial_array": (load_spatial_array, SpatialArray, ["hw_models/presets/fusemax-cloud.yaml",
                                                         "hw_models/presets/flat-cloud.yaml"]),
    "gpu": (load_gpu, GPU, ["hw_models/presets/h100.yaml", "hw_models/presets/a100.yaml"]),
    "mapping_tree": (load_mapping_tree, MappingTree, ["mappings/fusemax.yaml",
                                                      "mappings/unfused.yaml",
                                                      "mappings/flat.yaml",
                                                      "mappings/flash-attention-2.yaml",
                                                      "mappings/flash-attention-3.yaml"]),
    "workload": (load_workload, Workload, ["einsim/workloads/bert.yaml",
                                           "einsim/workloads/t5.yaml"]),
    "llm": (load_llm, LLM, ["einsim/llms/llama3-8b.yaml", "einsim/llms/llama3-70b.yaml"]),
}


def _field_names() -> list[str]:
    """Every field name of the spec models (nested ones too) and the cascade YAML keys."""
    from hw_models import gpu_sm, offload, spatial_array
    from einsim import workloads as workload
    from einsim.language import yaml_form
    from einsim.cost import tree

    names = set(yaml_form._KEYS) | set(tree._KINDS) | {"tile", "on", "unit", "rows", "cols",
                                                       "pes", "dram", "global_buffer"}
    for module in (spatial_array, gpu_sm, offload, workload, tree):
        for value in vars(module).values():
            if isinstance(value, type) and hasattr(value, "model_fields"):
                names |= set(value.model_fields)
    return sorted(names)


FIELDS = _field_names()


def _near_misses(name: str) -> list[str]:
    if not name:
        return ["_"]
    return [name[:-1], name + "s", name.upper(), name.replace("_", "-"), name.replace("_", ""),
            name[1:], " " + name, name + " ", name[0].upper() + name[1:]]


NEAR_MISSES = sorted({m for name in FIELDS for m in _near_misses(name) if m})
KEYS = (st.sampled_from(FIELDS) | st.sampled_from(NEAR_MISSES) | st.text(max_size=8)
        | st.integers(-3, 3) | st.booleans() | st.none())
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
           | st.text(max_size=12)
           | st.sampled_from(["64K", "1M", "-inf", "nan", "0", "-1", "1e3", "fusemax", "h100",
                              "array2d", "mac", "QK[m, p] = Q[e, p] * K[e, m]", "x[", "{", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=5), max_leaves=20)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=8) | VALUES

_names = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-specs")


def _fresh(folder: Path, content: str | bytes, suffix: str = ".yaml") -> str:
    """A new file name per example: load_mapping_tree caches by path."""
    path = folder / f"spec-{next(_names)}{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _dump(document) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _check(load, model, argument):
    """Load; return the object (of the right type) or the EinsimError (one line)."""
    try:
        value = load(argument)
    except EinsimError as error:
        message = str(error)
        assert message.strip(), "empty error message"
        assert "\n" not in message, f"multi-line error: {message!r}"
        return error
    assert isinstance(value, model), f"{load.__name__} returned {type(value).__name__}"
    return value


@pytest.mark.parametrize("name", sorted(LOADERS))
@FUZZ
@given(document=DOCUMENTS)
def test_random_documents_load_or_raise_einsim_error(folder, name, document):
    load, model, _ = LOADERS[name]
    _check(load, model, _fresh(folder, _dump(document)))


@pytest.mark.parametrize("name", sorted(LOADERS))
@FUZZ
@given(content=st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_and_text_load_or_raise_einsim_error(folder, name, content):
    load, model, _ = LOADERS[name]
    _check(load, model, _fresh(folder, content))


CASCADE_KEYS = st.sampled_from(["name", "ranks", "params", "partitions", "inputs", "init",
                                "einsums"]) | st.sampled_from(NEAR_MISSES) | st.text(max_size=6) \
    | st.integers(-3, 3)  # mixed key types too
CASCADE_DOCUMENTS = (st.dictionaries(CASCADE_KEYS, VALUES, max_size=7) | SCALARS
                     | st.lists(VALUES, max_size=3))


@FUZZ
@given(document=CASCADE_DOCUMENTS)
def test_random_cascade_yaml_loads_or_raises_einsim_error(document):
    _check(load_yaml, Cascade, _dump(document))


PRINTABLE_TEXT = st.text(max_size=300)  # control characters included


@FUZZ
@given(text=PRINTABLE_TEXT)
def test_random_text_as_cascade_yaml_loads_or_raises_einsim_error(text):
    _check(load_yaml, Cascade, text)


def _preset(path: str):
    return yaml.safe_load((ROOT / path).read_text())


def _paths(node, prefix=()):
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


CASCADE_PRESETS = {name: yaml.safe_load(to_yaml(einsim.library.get(name)))
                   for name in ("fusemax", "causal-attention-1pass", "gna-2d", "decode-split")}
MUTATION_VALUES = SCALARS | st.lists(st.integers(-5, 5), max_size=3) \
    | st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2)


def _mutate(data, document, keys=KEYS):
    """Apply 1-3 random edits: drop a key, replace a value, rename a key, add a key."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        paths = list(_paths(document))
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        edit = data.draw(st.sampled_from(["drop", "replace", "rename", "add"]), label="edit")
        if edit == "drop":
            del parent[path[-1]]
        elif edit == "replace":
            parent[path[-1]] = data.draw(MUTATION_VALUES, label="value")
        elif isinstance(parent, dict) and edit == "rename":
            parent[data.draw(st.sampled_from(_near_misses(str(path[-1]))))] = \
                parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[data.draw(keys, label="key")] = data.draw(MUTATION_VALUES, label="value")
    return document


@pytest.mark.parametrize("name", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_mutated_presets_load_or_raise_einsim_error(folder, name, data):
    load, model, presets = LOADERS[name]
    document = _mutate(data, copy.deepcopy(_preset(data.draw(st.sampled_from(presets)))))
    _check(load, model, _fresh(folder, _dump(document)))


@FUZZ
@given(data=st.data())
def test_mutated_cascade_yaml_loads_or_raises_einsim_error(data):
    name = data.draw(st.sampled_from(sorted(CASCADE_PRESETS)))
    document = _mutate(data, copy.deepcopy(CASCADE_PRESETS[name]), CASCADE_KEYS)  # str keys
    _check(load_yaml, Cascade, _dump(document))


def test_unmutated_presets_load(folder):
    for name, (load, model, presets) in LOADERS.items():
        for preset in presets:
            assert isinstance(load(_fresh(folder, (ROOT / preset).read_text())), model)
    for document in CASCADE_PRESETS.values():
        assert isinstance(load_yaml(_dump(document)), Cascade)


def _drop(path):
    def edit(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _set(path, value):
    def edit(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _rename(path, new):
    def edit(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        node[new] = node.pop(path[-1])
    return edit


FIELD_PATH_CASES = [  # loader, preset, edit, words the one-line error must contain
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml", _drop(["dram", "access_bits"]),
     ["fusemax-cloud.yaml", "dram.access_bits", "missing"]),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml",
     _set(["array2d", "register_file", "words"], "sixteen"),
     ["array2d.register_file.words", "integer"]),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml",
     _set(["array2d", "register_file", "words"], -16),
     ["array2d.register_file.words", "greater than 0"]),
    ("spatial_array", "hw_models/presets/flat-cloud.yaml", _set(["dram", "access_bits"], 0),
     ["flat-cloud.yaml", "dram.access_bits", "greater than 0"]),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml",
     _set(["array1d", "actions", "divide", "energy_pj"], -1.0),
     ["array1d.actions.divide.energy_pj"]),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml",
     _rename(["global_buffer", "row_words"], "row_word"),
     ["unknown field", "global_buffer.row_word"]),
    ("spatial_array", "hw_models/presets/fusemax-cloud.yaml", _set(["pe_dim"], "big"),
     ["pe_dim"]),
    ("gpu", "hw_models/presets/h100.yaml", _set(["calibration", "tensor_efficiency"], 1.5),
     ["h100.yaml", "calibration.tensor_efficiency"]),
    ("gpu", "hw_models/presets/h100.yaml", _drop(["sms"]), ["sms", "missing"]),
    ("gpu", "hw_models/presets/a100.yaml",
     _set(["tensor_flops_per_clock_per_sm", "fp16"], -1024),
     ["tensor_flops_per_clock_per_sm.fp16"]),
    ("gpu", "hw_models/presets/h100.yaml", _set(["tiles", "fmha"], "128x176"), ["tiles.fmha"]),
    ("mapping_tree", "mappings/flash-attention-3.yaml", _set(["tree", 2, "tile"], "TQ ** 2"),
     ["flash-attention-3.yaml", "tree[2].tile", "operator Pow"]),
    ("mapping_tree", "mappings/flash-attention-2.yaml", _rename(["tree"], "tre"),
     ["flash-attention-2.yaml", "tre"]),
    # the ladder mappings are loop trees: their errors name the node's path in the tree
    ("mapping_tree", "mappings/fusemax.yaml", _drop(["tree", 3, "sequence", 1, 2, True]),
     ["fusemax.yaml", "tree[3].sequence[1][2]", "on: <unit>"]),
    ("mapping_tree", "mappings/fusemax.yaml", _set(["tree", 1, "tile"], "P1 ** 9"),
     ["fusemax.yaml", "tree[1].tile", "operator Pow"]),
    ("mapping_tree", "mappings/fusemax.yaml", _set(["tree", 1, "loop"], "M1"),
     ["tree[1].loop", "rank variable"]),
    ("mapping_tree", "mappings/unfused.yaml", _set(["tree", 0, "keep", "dram"], "Q"),
     ["unfused.yaml", "tree[0].keep.dram", "list of tensor names"]),
    ("mapping_tree", "mappings/fusemax.yaml", _drop(["parameters", "P1", "default"]),
     ["parameters.P1.default", "missing"]),
    ("mapping_tree", "mappings/flat.yaml",
     _rename(["parameters", "rows", "domain", "powers_of_two_up_to"], "powers_of_two"),
     ["flat.yaml", "unknown field", "parameters.rows.domain.powers_of_two"]),
    ("mapping_tree", "mappings/unfused.yaml", _rename(["tree"], "trees"),
     ["unknown field", "trees"]),
    ("workload", "einsim/workloads/bert.yaml", _set(["heads"], -12), ["bert.yaml", "heads"]),
    ("workload", "einsim/workloads/bert.yaml", _set(["head_dim"], "64"), ["head_dim"]),
    ("workload", "einsim/workloads/bert.yaml", _set(["seq_len"], "lots"), ["seq_len"]),
    ("workload", "einsim/workloads/t5.yaml", _rename(["ffn_dim"], "ffn_dims"),
     ["unknown field", "ffn_dims"]),
    ("llm", "einsim/llms/llama3-8b.yaml", _set(["layers"], 0), ["llama3-8b.yaml", "layers"]),
    ("llm", "einsim/llms/llama3-8b.yaml", _drop(["kv_heads"]), ["kv_heads", "missing"]),
]


@pytest.mark.parametrize("name, preset, edit, words", FIELD_PATH_CASES,
                         ids=[f"{c[0]}-{' '.join(c[3][-2:])}" for c in FIELD_PATH_CASES])
def test_a_broken_preset_field_is_named_by_its_path(folder, name, preset, edit, words):
    load, _, _ = LOADERS[name]
    document = _preset(preset)
    edit(document)
    target = folder / f"spec-{next(_names)}" / Path(preset).name  # keep the preset's file name
    target.parent.mkdir()
    target.write_text(_dump(document))
    with pytest.raises(EinsimError) as caught:
        load(str(target))
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


CASCADE_FIELD_CASES = [
    (_set(["ranks"], {"M": "big"}), ["ranks.M"]),
    (_set(["params"], {"W": "wide"}), ["params.W"]),
    (_set(["partitions", "M"], {"into": ["M1", "M0"]}), ["partitions.M"]),
    (_set(["einsums", 2], "BQK[m1, m0, p] = Q[e, p] *"), ["einsums[2]"]),
    (_set(["init", 0], "RM[0, p] = = -inf"), ["init[0]"]),
    (_set(["einsums"], "not a list"), ["einsums"]),
    (_set(["inpts"], {"Q": ["E", "P"]}), ["unknown key 'inpts'"]),
]


@pytest.mark.parametrize("edit, words", CASCADE_FIELD_CASES,
                         ids=[c[1][0] for c in CASCADE_FIELD_CASES])
def test_a_broken_cascade_yaml_field_is_named(edit, words):
    document = copy.deepcopy(CASCADE_PRESETS["fusemax"])
    document.setdefault("params", {})
    edit(document)
    with pytest.raises(EinsimError) as caught:
        load_yaml(_dump(document), source="fusemax.yaml")
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


BOMB = "a0: &a0 [lol]\n" + "".join(
    f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]\n" for n in range(1, 9))


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.parametrize("content, words", [
    (BOMB, ["aliases expand", "nodes"]),
    ("a: &a [1, *a]\n", ["alias refers to a node that contains it"]),
    ("name: x\nname: y\n", ["duplicate key 'name'", "line 2"]),
])
def test_alias_bombs_and_duplicate_keys_are_one_line_errors_in_every_loader(
        folder, name, content, words):
    import time

    load, _, _ = LOADERS[name]
    started = time.perf_counter()
    with pytest.raises(EinsimError) as caught:
        load(_fresh(folder, content))
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
