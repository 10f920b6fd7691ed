"""The vectorized sweep engine gives exactly the point-by-point rows."""

import pytest

from einsim.errors import EinsimError
from einsim.sweeps import iterate
from einsim.vectorized import NotVectorizable, vectorized_points

GRID = {"pe_dim": [16, 64, 256, 512], "global_buffer_bytes": [2**12, 2**16, 2**20, 2**24],
        "dram_bandwidth": [1e11, 429496729600.0]}
LENGTHS = [1000, 4096, 65536, 1048576]  # 1000: a ragged last query block


@pytest.mark.parametrize("mapping", ["fusemax", "fusemax-arch", "fusemax-cascade"])
@pytest.mark.parametrize("workload", ["bert", "xlm"])
def test_rows_equal_the_point_by_point_path(mapping, workload):
    vector = vectorized_points(mapping, workload, LENGTHS, GRID)
    points = list(iterate(mapping, workload, LENGTHS, GRID))
    assert vector == points  # same keys, order, values (feasible and infeasible alike)
    assert any(not row["feasible"] for row in points) and any(row["feasible"] for row in points)


def test_fixed_p1_clock_and_hardware_file(tmp_path):
    grid = {"P1": [1, 3, 8], "clock_hz": [0.5e9, 1.5e9], "pe_dim": [32, 128]}
    assert vectorized_points("fusemax", "t5", [5000, 65536], grid) == \
        list(iterate("fusemax", "t5", [5000, 65536], grid))
    preset = tmp_path / "small.yaml"
    preset.write_text(open("hw_models/presets/fusemax-cloud.yaml").read()
                      .replace("name: fusemax-cloud", "name: small").replace("pe_dim: 256",
                                                                          "pe_dim: 64"))
    assert vectorized_points("fusemax", "bert", [8192], {"dram_bandwidth": [1e11]},
                             hardware=str(preset)) == \
        list(iterate("fusemax", "bert", [8192], {"dram_bandwidth": [1e11]}, str(preset)))


def test_other_mappings_and_parameters_are_not_vectorized():
    with pytest.raises(NotVectorizable):
        vectorized_points("flat", "bert", [4096], {"pe_dim": [64]})
    with pytest.raises(NotVectorizable):
        vectorized_points("fusemax", "bert", [4096], {"global_buffer.banks": [4]})


def test_invalid_values_raise_like_the_point_path():
    with pytest.raises(EinsimError, match="pe_dim"):
        vectorized_points("fusemax", "bert", [4096], {"pe_dim": [64, 0]})
    with pytest.raises(EinsimError, match="unknown objective"):
        vectorized_points("fusemax", "bert", [4096], {"pe_dim": [64]}, objective="speed")
