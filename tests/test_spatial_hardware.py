"""Tests of hw_models.spatial_array: the FuseMax / FLAT presets, overrides, areas and YAML files.

Expected numbers are the published FuseMax (MICRO 2024) evaluation parameters, written out here
rather than read back from the presets.
"""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

import hw_models
from einsim.errors import SpecError
from hw_models.spatial_array import SpatialArray, load_spatial_array, spatial_array_presets

MiB = 2 ** 20
CLOCK_HZ = 940e6
DRAM_BW = 400 * 2 ** 30  # bytes/s
MAC_PJ = 17.1645

# Per-PE area (um^2) = sum of the action areas + register-file area, from the published tables.
PE_AREA_UM2 = {
    "fusemax-cloud": {"array2d": 1545 + 0 + 49.29 + 4255.93,
                      "array1d": 1545 + 0 + 49.29 + 23740.94 + 4255.93},
    "flat-cloud": {"array2d": 1545 + 0 + 1838.15,
                   "array1d": 1545 + 0 + 49.29 + 8240 + 23740.94 + 2145.42},
}
GLOBAL_BUFFER_AREA_UM2 = 94176256
BUFFER_BYTES = {"fusemax-cloud": 16 * MiB, "flat-cloud": 32 * MiB}


def test_preset_names():
    assert {"fusemax-cloud", "flat-cloud"} <= set(spatial_array_presets())


@pytest.mark.parametrize("name", ["fusemax-cloud", "flat-cloud"])
def test_presets_have_published_numbers(name):
    hw = load_spatial_array(name)
    assert isinstance(hw, SpatialArray)
    assert hw.name == name
    assert hw.clock_hz == pytest.approx(CLOCK_HZ)
    assert hw.word_bits == 16 and hw.word_bytes == 2
    assert hw.pe_dim == 256
    assert hw.pe_count("array2d") == 256 * 256
    assert hw.pe_count("array1d") == 256
    assert hw.unit_shape("array2d") == (256, 256)
    assert hw.unit_shape("array1d") == (256,)
    assert hw.dram.bandwidth_bytes_per_s == pytest.approx(DRAM_BW)
    assert hw.dram.access_bits == 64
    assert hw.dram.energy_pj_per_access == pytest.approx(249.6)
    gb = hw.global_buffer
    assert gb.bytes == BUFFER_BYTES[name]
    assert gb.row_words == 256
    assert gb.read_pj_per_row == pytest.approx(484.97)
    assert gb.write_pj_per_row == pytest.approx(451.30)
    for unit in ("array2d", "array1d"):
        assert hw.unit(unit).actions["mac"].energy_pj == pytest.approx(MAC_PJ)


def test_fusemax_pes_compute_exp_with_macs_and_flat_has_an_exp_unit():
    fusemax = load_spatial_array("fusemax-cloud")
    flat = load_spatial_array("flat-cloud")
    assert fusemax.array2d.actions_for("exp") == {"mac": 6}  # + the cascade's own subtract
    assert fusemax.array1d.actions_for("exp") == {"mac": 6}
    assert "exp" not in fusemax.array2d.actions
    assert flat.array1d.actions_for("exp") == {"exp": 1}
    # the FLAT 2D array can only multiply-accumulate and add
    assert set(flat.array2d.actions) == {"mac", "add"}
    # default action names for operations missing from op_costs
    assert flat.array1d.actions_for("div") == {"divide": 1}
    assert flat.array1d.actions_for("mul") == {"mac": 1}
    # add shares the MAC's functional unit
    assert fusemax.array2d.unit_of("add") == "mac"
    assert fusemax.array2d.unit_of("max") == "max"


def test_unknown_unit_raises():
    hw = load_spatial_array("fusemax-cloud")
    with pytest.raises(SpecError, match="array3d"):
        hw.unit("array3d")


@pytest.mark.parametrize("name", ["fusemax-cloud", "flat-cloud"])
def test_area_breakdown_is_pes_times_pe_area(name):
    hw = load_spatial_array(name)
    breakdown = hw.area_breakdown_mm2()
    expected = {
        "array2d": 256 * 256 * PE_AREA_UM2[name]["array2d"] / 1e6,
        "array1d": 256 * PE_AREA_UM2[name]["array1d"] / 1e6,
        "global_buffer": GLOBAL_BUFFER_AREA_UM2 / 1e6,
    }
    assert set(breakdown) == set(expected)
    for key, value in expected.items():
        assert breakdown[key] == pytest.approx(value, rel=1e-12)
    assert hw.area_mm2 == pytest.approx(sum(expected.values()), rel=1e-12)
    assert hw.array2d.pe_area_um2 == pytest.approx(PE_AREA_UM2[name]["array2d"])


@pytest.mark.parametrize("pe_dim", [16, 128, 512])
def test_pe_dim_override_scales_both_arrays(pe_dim):
    hw = load_spatial_array("fusemax-cloud", {"pe_dim": pe_dim})
    assert hw.pe_dim == pe_dim
    assert hw.pe_count("array2d") == pe_dim ** 2
    assert hw.pe_count("array1d") == pe_dim
    assert hw.unit_shape("array2d") == (pe_dim, pe_dim)
    breakdown = hw.area_breakdown_mm2()
    assert breakdown["array2d"] == pytest.approx(
        pe_dim ** 2 * PE_AREA_UM2["fusemax-cloud"]["array2d"] / 1e6)
    assert breakdown["array1d"] == pytest.approx(
        pe_dim * PE_AREA_UM2["fusemax-cloud"]["array1d"] / 1e6)
    # the override does not touch anything else
    assert hw.global_buffer.bytes == 16 * MiB
    assert hw.clock_hz == pytest.approx(CLOCK_HZ)


def test_short_name_and_dotted_overrides():
    hw = load_spatial_array("flat-cloud", {"global_buffer_bytes": 4 * MiB,
                                           "dram_bandwidth": 1e11, "clock_hz": 1e9,
                                           "array2d.actions.mac.energy_pj": 20.0,
                                           "dram.access_bits": 128})
    assert hw.global_buffer.bytes == 4 * MiB
    assert hw.dram.bandwidth_bytes_per_s == pytest.approx(1e11)
    assert hw.clock_hz == pytest.approx(1e9)
    assert hw.array2d.actions["mac"].energy_pj == pytest.approx(20.0)
    assert hw.array1d.actions["mac"].energy_pj == pytest.approx(MAC_PJ)
    assert hw.dram.access_bits == 128


def test_overrides_do_not_leak_into_later_loads():
    load_spatial_array("fusemax-cloud", {"pe_dim": 8, "global_buffer_bytes": 1024})
    hw = load_spatial_array("fusemax-cloud")
    assert hw.pe_dim == 256 and hw.global_buffer.bytes == 16 * MiB


@pytest.mark.parametrize("key", ["pe_dims", "buffer_bytes", "dram.bandwidth", "global_buffer.size",
                                 "array2d.actions.mac.energy"])
def test_unknown_override_names_the_field(key):
    with pytest.raises(SpecError) as info:
        load_spatial_array("fusemax-cloud", {key: 1})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("key, field, value", [
    ("pe_dim", "pe_dim", -4),
    ("pe_dim", "pe_dim", 0),
    ("global_buffer_bytes", "global_buffer.bytes", -1),
    ("dram_bandwidth", "dram.bandwidth_bytes_per_s", -5.0),
    ("clock_hz", "clock_hz", -940e6),
    ("array2d.actions.mac.energy_pj", "array2d.actions.mac.energy_pj", -1.0),
])
def test_negative_override_names_the_field(key, field, value):
    with pytest.raises(SpecError) as info:
        load_spatial_array("fusemax-cloud", {key: value})
    assert field in str(info.value)


def test_unknown_preset_raises():
    with pytest.raises(SpecError, match="no-such-array"):
        load_spatial_array("no-such-array")


def test_missing_yaml_file_raises(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spatial_array(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_load_modified_copy_from_yaml_file(tmp_path, suffix):
    text = resources.files(hw_models).joinpath("presets", "fusemax-cloud.yaml").read_text()
    document = yaml.safe_load(text)
    document["name"] = "my-array"
    document["pe_dim"] = 64
    document["global_buffer"]["bytes"] = 2 * MiB
    document["dram"]["energy_pj_per_access"] = 100.0
    path = tmp_path / f"mine{suffix}"
    path.write_text(yaml.safe_dump(document))

    hw = load_spatial_array(str(path))
    assert hw.name == "my-array"
    assert hw.pe_dim == 64 and hw.pe_count("array2d") == 64 * 64 and hw.pe_count("array1d") == 64
    assert hw.global_buffer.bytes == 2 * MiB
    assert hw.dram.energy_pj_per_access == pytest.approx(100.0)
    assert hw.area_breakdown_mm2()["array2d"] == pytest.approx(
        64 * 64 * PE_AREA_UM2["fusemax-cloud"]["array2d"] / 1e6)
    # overrides apply on top of a file too
    assert load_spatial_array(str(path), {"pe_dim": 32}).pe_count("array1d") == 32


def test_yaml_file_with_bad_field_names_it(tmp_path):
    document = yaml.safe_load(
        resources.files(hw_models).joinpath("presets", "flat-cloud.yaml").read_text())
    document["dram"]["access_bits"] = -64
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match=r"dram\.access_bits"):
        load_spatial_array(str(path))

    document["dram"]["access_bits"] = 64
    document["global_buffer"]["rows"] = 3  # extra field
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match=r"global_buffer\.rows"):
        load_spatial_array(str(path))


def test_yaml_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError):
        load_spatial_array(str(path))


@pytest.mark.parametrize("call, fragment", [
    (lambda: load_spatial_array(None), "hardware None: expected a preset name"),
    (lambda: load_spatial_array(42), "hardware 42: expected a preset name"),
    (lambda: load_spatial_array("fusemax-cloud", [("pe_dim", 2)]), "overrides [('pe_dim', 2)]"),
    (lambda: load_spatial_array("fusemax-cloud", {7: 2}), "override name 7"),
    (lambda: load_spatial_array("fusemax-cloud", {"pe_dim": "64"}), "pe_dim: expected an integer"),
    (lambda: load_spatial_array("fusemax-cloud", {"pe_dim": 1.5}), "pe_dim: expected an integer"),
    (lambda: load_spatial_array("fusemax-cloud", {"dram_bandwidth": float("inf")}),
     "dram.bandwidth_bytes_per_s: expected a finite number"),
    (lambda: load_spatial_array("fusemax-cloud", {"clock_hz": None}), "clock_hz: expected"),
    (lambda: load_spatial_array("fusemax-cloud", {"global_buffer_bytes": 2 ** 63}),
     "global_buffer.bytes: expected an integer"),
])
def test_api_misuse_is_a_spec_error_naming_the_argument(call, fragment):
    from einsim.errors import SpecError

    with pytest.raises(SpecError) as caught:
        call()
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_whole_float_overrides_are_integers():
    machine = load_spatial_array("fusemax-cloud", {"pe_dim": 128.0})
    assert machine.pe_dim == 128 and isinstance(machine.pe_dim, int)
