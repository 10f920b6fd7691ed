"""Tests of einsim.workloads: presets, sequence-length parsing, YAML loading and GEMM layers."""

from __future__ import annotations

import pydantic
import pytest
import yaml

from einsim.errors import SpecError
from einsim.workloads import (GemmLayer, Workload, linear_layers, load_workload, parse_seq_len,
                             parse_seq_lens, workload_names)

PUBLISHED = {  # FuseMax (MICRO 2024): heads, head dim, model dim, FFN dim
    "bert": (12, 64, 768, 3072),
    "trxl": (16, 64, 1024, 4096),
    "t5": (8, 64, 512, 2048),
    "xlm": (16, 128, 2048, 8192),
}


def write(tmp_path, text: str, name: str = "my.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


VALID = "name: mine\nheads: 4\nhead_dim: 32\nmodel_dim: 128\nffn_dim: 512\nseq_len: 2K\n"


GRIDS = {  # reference/gpus.md, GNA token layouts: tokens, heads, head dim
    "flux-4k": ((256, 256), 24, 128),
    "hunyuan-video": ((30, 48, 80), 24, 128),
    "cosmos-7b": ((16, 44, 80), 32, 128),
}


def test_workload_names():
    assert set(workload_names()) == set(PUBLISHED) | set(GRIDS)
    assert all(name == name.lower() for name in workload_names())


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_grid_presets_have_the_published_layouts(name):
    w = load_workload(name)
    assert (w.token_grid, w.heads, w.head_dim) == GRIDS[name]
    assert w.model_dim == w.heads * w.head_dim


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_have_published_numbers(name):
    heads, head_dim, model_dim, ffn_dim = PUBLISHED[name]
    w = load_workload(name)
    assert (w.heads, w.head_dim, w.model_dim, w.ffn_dim) == (heads, head_dim, model_dim, ffn_dim)
    assert w.batch == 64 and w.seq_len == 65536 and w.dtype_bytes == 2
    assert w.E == w.F == head_dim and w.M == w.P == 65536
    assert load_workload(name.upper()) == w


def test_preset_seq_len_override():
    assert load_workload("BERT", seq_len="1M").P == 1 << 20
    assert load_workload("t5", seq_len=1024).M == 1024


@pytest.mark.parametrize("text, expected", [
    ("1K", 1024), ("64K", 65536), ("1M", 1048576), ("4096", 4096), (" 2k ", 2048),
    ("256k", 262144), (512, 512),
])
def test_parse_seq_len(text, expected):
    assert parse_seq_len(text) == expected


@pytest.mark.parametrize("text", ["1G", "-5", "abc", "0", "", "1.5K", 0, -3, True, 2.0])
def test_parse_seq_len_errors(text):
    with pytest.raises(SpecError) as caught:
        parse_seq_len(text)
    message = str(caught.value)
    assert repr(text) in message and "64K" in message and "\n" not in message


def test_parse_seq_lens():
    assert parse_seq_lens("1K,4K,16K") == [1024, 4096, 16384]
    assert parse_seq_lens(" 1K , 2048 ") == [1024, 2048]
    with pytest.raises(SpecError):
        parse_seq_lens("1K,,4K")


def test_custom_yaml_loads(tmp_path):
    w = load_workload(write(tmp_path, VALID + "value_dim: 48\nkv_len: 512\n"))
    assert w.name == "mine" and w.batch == 64 and w.P == 2048 and w.M == 512
    assert (w.E, w.F) == (32, 48)
    overridden = load_workload(write(tmp_path, VALID + "kv_len: 512\n"), seq_len="4K")
    assert (overridden.P, overridden.M) == (4096, 512)  # an explicit seq_len keeps kv_len


@pytest.mark.parametrize("extra, expected", [
    ("head: 3\n", "unknown field 'head'"),
    ("dtype_bytes: 0\n", "dtype_bytes: expected an integer greater than 0 and at most 16, got 0"),
    ("batch: 2.5\n", "batch: expected an integer greater than 0 and at most 4,294,967,296, got 2.5"),
    ("seq_len: 1G\n", "seq_len: sequence length '1G'"),
])
def test_field_errors(tmp_path, extra, expected):
    text = VALID.replace("seq_len: 2K\n", "") if extra.startswith("seq_len") else VALID
    with pytest.raises(SpecError) as caught:
        load_workload(write(tmp_path, text + extra))
    message = str(caught.value)
    assert message.startswith("workload ") and "my.yaml" in message
    assert expected in message and "\n" not in message


def test_typo_reports_unknown_field_first(tmp_path):
    with pytest.raises(SpecError, match=r"my\.yaml: unknown field 'head'.*\(and 1 more error\)"):
        load_workload(write(tmp_path, VALID.replace("heads:", "head:")))


def test_negative_heads(tmp_path):
    with pytest.raises(SpecError, match=r"my\.yaml: heads: expected an integer greater than 0 and at most .*, got -4"):
        load_workload(write(tmp_path, VALID.replace("heads: 4", "heads: -4")))


def test_missing_heads(tmp_path):
    with pytest.raises(SpecError, match=r"my\.yaml: heads: missing required field"):
        load_workload(write(tmp_path, VALID.replace("heads: 4\n", "")))


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="unknown preset.*bert"):
        load_workload("gpt9")
    with pytest.raises(SpecError, match="no such file"):
        load_workload(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize("text, expected", [
    ("name: [unclosed\n", "not valid YAML at line"),
    ("- 1\n- 2\n", "expected a mapping"),
])
def test_invalid_yaml(tmp_path, text, expected):
    with pytest.raises(SpecError, match=expected):
        load_workload(write(tmp_path, text))


def test_sizes_mapping():
    w = Workload(name="x", batch=2, heads=3, head_dim=5, value_dim=7, model_dim=11,
                 ffn_dim=13, seq_len=17, kv_len=19)
    assert w.sizes() == {"B": 2, "H": 3, "G": 1, "N": 3, "M": 19, "P": 17, "E": 5, "F": 7,
                         "D": 11, "I": w.ffn_dim}


def test_immutable_and_strict():
    w = load_workload("bert")
    with pytest.raises(pydantic.ValidationError):
        w.heads = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Workload(name="x", heads=0, head_dim=1, model_dim=1, ffn_dim=1, seq_len=1)


def test_with_seq_len():
    w = Workload(name="x", heads=2, head_dim=4, model_dim=8, ffn_dim=16, seq_len=32, kv_len=64)
    longer = w.with_seq_len(1024)
    assert (longer.P, longer.M, longer.kv_len) == (1024, 64, 64)  # cross attention kept
    assert w.with_seq_len(1024, kv_len="2K").M == 2048
    self_attention = Workload(name="y", heads=2, head_dim=4, model_dim=8, ffn_dim=16, seq_len=32)
    assert self_attention.with_seq_len("1K").M == 1024
    assert w.with_seq_len("4K").seq_len == 4096
    assert (w.P, w.M) == (32, 64)  # original unchanged
    with pytest.raises(SpecError):
        w.with_seq_len(0)


def test_linear_layers_bert_1k():
    w = load_workload("bert", seq_len="1K")
    tokens, d, h, e, ffn = 64 * 1024, 768, 12, 64, 3072
    expected = {
        "q_proj": tokens * d * h * e,
        "k_proj": tokens * d * h * e,
        "v_proj": tokens * d * h * e,
        "out_proj": tokens * h * e * d,
        "ffn1": tokens * d * ffn,
        "ffn2": tokens * ffn * d,
    }
    layers = linear_layers(w)
    assert [layer.name for layer in layers] == list(expected)
    assert {layer.name: layer.macs for layer in layers} == expected
    assert sum(expected.values()) == 65536 * 768 * 768 * 4 + 2 * 65536 * 768 * 3072
    assert all(isinstance(layer, GemmLayer) for layer in layers)


def test_gemm_layer_macs_counts():
    assert GemmLayer(name="g", m=2, n=3, k=5, count=7).macs == 210
    assert GemmLayer(name="g", m=2, n=3, k=5).count == 1


CROSS = VALID.replace("seq_len: 2K", "seq_len: 1K") + "kv_len: 4K\n"


def test_a_files_own_lengths_are_used_without_an_override(tmp_path):
    """Cross attention from a file stays cross attention (issue 12)."""
    w = load_workload(write(tmp_path, CROSS))
    assert (w.P, w.M) == (1024, 4096)
    assert load_workload(write(tmp_path, CROSS), seq_len=None, kv_len=None) == w


def test_explicit_lengths_override_the_file(tmp_path):
    path = write(tmp_path, CROSS)
    assert (load_workload(path, seq_len="2K").P, load_workload(path, seq_len="2K").M) \
        == (2048, 4096)
    both = load_workload(path, seq_len=512, kv_len="8K")
    assert (both.P, both.M) == (512, 8192)
    self_file = load_workload(write(tmp_path, VALID, "self.yaml"), seq_len="8K")
    assert self_file.P == self_file.M == 8192


@pytest.mark.parametrize("extra, fragment", [
    ("batch: 1.5\n", "batch: expected an integer"),
    ("batch: .inf\n", "batch: expected an integer"),
    ("batch: .nan\n", "batch: expected an integer"),
    ("batch: 9223372036854775808\n", "batch: expected an integer greater than 0 and at most 4,294,967,296, got "
     "9223372036854775808"),
    ("batch: " + "9" * 400 + "\n", "batch: expected an integer"),
    ("batch: true\n", "batch: expected an integer"),
    ("batch: {a: 1}\n", "batch: expected an integer greater than 0 and at most 4,294,967,296, got a mapping"),
    ("kv_len: 99999999999\n", "kv_len: expected an integer greater than 0 and at most 4,294,967,296"),
    ("kv_len: 9999999M\n", "kv_len: sequence length '9999999M': longer than"),
    ("kv_len: 1.5\n", "kv_len: expected an integer"),
])
def test_hostile_sizes_name_the_field(tmp_path, extra, fragment):
    with pytest.raises(SpecError) as caught:
        load_workload(write(tmp_path, VALID + extra))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_integral_floats_are_accepted(tmp_path):
    assert load_workload(write(tmp_path, VALID + "batch: 8.0\n")).batch == 8


@pytest.mark.parametrize("value", ["4K", 4096.5, None, "1G", 2 ** 63, 10 ** 400])
def test_api_seq_len_misuse_is_a_spec_error(value):
    if value is None:
        assert load_workload("bert", seq_len=value).P == 65536
        return
    with pytest.raises(SpecError, match="seq_len"):
        load_workload("bert", seq_len=value if value != "4K" else "4K4")


def test_a_token_grid_gives_each_axis_its_extent():
    w = load_workload("hunyuan-video")
    assert (w.seq_len, w.token_grid) == (30 * 48 * 80, (30, 48, 80))
    sizes = w.sizes()
    assert [sizes[k] for k in ("MX", "PX", "MY", "PY", "MZ", "PZ")] == [30, 30, 48, 48, 80, 80]
    assert "MX" not in load_workload("bert").sizes()


@pytest.mark.parametrize("grid, seq_len, fragment", [
    ([64, 64], 4000, "holds 4,096 tokens"), ([4096], 4096, "token_grid"),
    ([2, 2, 2, 2], 16, "token_grid"), ([0, 4], 4, "token_grid"), ([2.5, 2], 5, "token_grid")])
def test_a_token_grid_must_hold_the_sequence(tmp_path, grid, seq_len, fragment):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "heads": 2, "head_dim": 8, "model_dim": 16,
                                    "ffn_dim": 64, "seq_len": seq_len, "token_grid": grid}))
    with pytest.raises(SpecError, match=fragment):
        load_workload(str(path))
