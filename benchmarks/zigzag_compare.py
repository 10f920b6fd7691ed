"""Side by side with ZigZag: one attention head's QKᵀ GEMM on a 256 x 256 MAC array.

Run ``python benchmarks/zigzag_compare.py [--no-search] [--json]``.

The problem is the QK Einsum of ``attention-3pass`` for one (batch, head), run on its own:
``QK[m, p] = Q[e, p] * K[e, m]`` with M = P = 4096 keys/queries and E = 64, 16-bit words,
Q and K read from DRAM once and the 4096 x 4096 QK matrix written back once (32 MiB; it cannot
stay in the 16 MiB buffer).  The hardware is ``fusemax-cloud``'s 2D array: 256 x 256 MAC PEs at
940 MHz, 16-word register files per PE, one 16 MiB global buffer, DRAM at 400 GiB/s with
64-bit accesses, and the preset's per-action energies.

**einsim** (its loop-tree engine, :class:`einsim.cost.engine.CompiledMapping`): the GEMM as a
one-Einsum cascade, ``QK[m, p] = Q[e, p] * K[e, m]``, and a small loop tree per binding, written
inline: Q, K and QK in DRAM; a block of 256 queries (``loop p``) with its Q tile in the global
buffer; a block of 256 keys (``loop m``) with its K tile and QK tile in the global buffer; the
array's rows and columns over the binding's variables, and the rest a temporal loop at the
leaf.  Two bindings: the ``unfused`` mapping's own (E on the rows, P on the columns: 64 of 256
rows busy, Q stationary in the registers, one key per cycle) and M on the rows, P on the
columns (the whole array, QK stationary in the registers, one e per cycle).  K is re-read from
DRAM for each block of queries, and the QK matrix (32 MiB) is written back once.  Compute
cycles are QK's Einsum cycles from the report; memory cycles are the report's DRAM traffic over
the bandwidth; latency is the report's (the engine overlaps compute and memory on spatial
arrays).  Energy is the report's: the MACs, the register-file, global-buffer and DRAM accesses
the tree's keeps imply (rows of the buffer, 64-bit DRAM bursts).  The first binding is
cross-checked against the QK entry of ``einsim.evaluate("unfused", hardware="fusemax-cloud")``.

**ZigZag** (KU Leuven, ``pip install zigzag-dse``): the same GEMM as a ``Gemm`` layer
``O[b][k] += I[b][c] * W[c][k]`` (B = queries P, K = keys M, C = E), an accelerator written to
YAML in a temporary directory (the array with ``unit_energy`` = the MAC energy, a per-PE register
file of 16 words shared by the three operands, the global buffer as 32 banks of one 256-word row
per cycle, DRAM as 57 x 64-bit accesses per cycle = the 400 GiB/s at 940 MHz rounded down by
0.2%), and ZigZag's LOMA temporal mapper minimising latency: once with ZigZag's own spatial
mapping search, and pinned to each of einsim's two bindings (C x B and K x B).  Reported:
``latency_total2`` (cycles including on- and off-loading) and ``energy_total``.

What differs by construction: both count accesses from a loop nest, but ZigZag searches the
temporal loop order (LOMA) while einsim's trees fix it; ZigZag serializes data on/off-loading
that einsim overlaps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # run as a script from anywhere: einsim, mappings, hw_models
    sys.path.insert(0, str(_ROOT))

import yaml  # noqa: E402

SEQ_LEN = 4096
HEAD_DIM = 64
HARDWARE = "fusemax-cloud"
BINDINGS = {  # label -> (einsim spatial binding of QK, ZigZag spatial mapping)
    "E x P (unfused)": ({"rows": "e", "cols": "p"}, {"D1": ["C, 64"], "D2": ["B, 256"]}),
    "M x P": ({"rows": "m", "cols": "p"}, {"D1": ["K, 256"], "D2": ["B, 256"]}),
}
NOT_INSTALLED = "zigzag not installed (pip install zigzag-dse)"


def _workload_yaml(seq_len: int, head_dim: int) -> str:
    return yaml.safe_dump({"name": "qk-gemm", "batch": 1, "heads": 1, "head_dim": head_dim,
                           "model_dim": head_dim, "ffn_dim": head_dim, "seq_len": seq_len})


QK_CASCADE = "input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m]\n"


def qk_tree(spatial: dict) -> dict:
    """The QK GEMM's loop tree for a binding of the 2D array (rows, cols) as a mapping
    document: the variable not on the array runs as the innermost temporal loop, and the
    operand that does not depend on it stays in each PE's registers."""
    inner = ({"e", "m", "p"} - set(spatial.values())).pop()
    stationary = {"m": "Q", "e": "QK", "p": "K"}[inner]
    return {"name": f"qk-{spatial['rows']}x{spatial['cols']}", "cascade": "qk-gemm",
            "hardware": HARDWARE,
            "tree": [{"keep": {"dram": ["Q", "K", "QK"]}},
                     {"loop": "p", "tile": "pe_dim"},
                     {"keep": {"global_buffer": ["Q"]}},
                     {"loop": "m", "tile": "pe_dim"},
                     {"keep": {"global_buffer": ["K", "QK"]}},
                     {"spatial": dict(spatial)},
                     {"keep": {"array2d.registers": [stationary]}},
                     {"loop": inner},
                     {"run": "QK", "on": "array2d"}]}


def einsim_estimates(seq_len: int = SEQ_LEN, head_dim: int = HEAD_DIM) -> dict:
    """einsim's cost of the QK GEMM alone, for each binding in :data:`BINDINGS`."""
    import einsim
    from einsim.cost.engine import CompiledMapping, Problem
    from einsim.cost.hierarchy import spatial_array_hierarchy
    from einsim.cost.tree import mapping_from_document
    from hw_models.spatial_array import load_spatial_array

    hardware = load_spatial_array(HARDWARE)
    hierarchy = spatial_array_hierarchy(hardware)
    cascade = einsim.parse(QK_CASCADE)
    problem = Problem("qk-gemm", {"M": seq_len, "P": seq_len, "E": head_dim}, 1, seq_len)
    rows = {}
    for label, (spatial, _) in BINDINGS.items():
        tree = mapping_from_document(qk_tree(spatial), "qk-gemm (inline)")
        report = CompiledMapping(cascade, tree, hierarchy).report(problem)
        qk = next(e for e in report.einsums if e.name == "QK")
        macs = qk.ops["mac"]
        memory_cycles = report.memory_latency_s * hardware.clock_hz
        latency_cycles = report.latency_s * hardware.clock_hz
        rows[label] = {
            "tool": "einsim", "binding": label, "spatial": spatial, "macs": macs,
            "compute_cycles": qk.cycles, "memory_cycles": memory_cycles,
            "latency_cycles": latency_cycles, "latency_s": report.latency_s,
            "utilization": macs / hardware.pe_count("array2d") / latency_cycles,
            "energy_j": report.energy_j, "energy_breakdown_j": report.energy_breakdown_j,
            "dram_bytes": report.traffic_bytes}
    with tempfile.TemporaryDirectory() as folder:  # the cross-check: the unfused report
        path = Path(folder) / "qk-gemm.yaml"
        path.write_text(_workload_yaml(seq_len, head_dim))
        report = einsim.evaluate("unfused", hardware=HARDWARE, workload=str(path),
                                 seq_len=seq_len)
    rows["E x P (unfused)"]["unfused_report_qk_cycles"] = next(
        e.cycles for e in report.einsums if e.name == "QK")
    return rows


def zigzag_accelerator(hardware_name: str = HARDWARE) -> dict:
    """The ZigZag accelerator description of a spatial-array preset's 2D array (bits, pJ)."""
    from hw_models.spatial_array import load_spatial_array

    hw = load_spatial_array(hardware_name)
    word = hw.word_bits
    rf = hw.array2d.register_file
    gb = hw.global_buffer
    gb_bits = gb.banks * gb.row_words * word  # every bank delivers one row per cycle
    dram_bits_per_cycle = hw.dram.bandwidth_bytes_per_s * 8 / hw.clock_hz
    accesses = max(1, math.floor(dram_bits_per_cycle / hw.dram.access_bits))

    def port(name, kind, low, high, allocation):
        return {"name": name, "type": kind, "bandwidth_min": low, "bandwidth_max": high,
                "allocation": allocation}

    return {
        "name": f"{hw.name}-array2d",
        "memories": {
            "register_file": {
                "size": rf.words * word, "r_cost": rf.read_pj, "w_cost": rf.write_pj, "area": 0,
                "latency": 1, "operands": ["I1", "I2", "O"],
                "ports": [port("r_port_1", "read", word, word, ["I1, tl"]),
                          port("r_port_2", "read", word, word, ["I2, tl"]),
                          port("r_port_3", "read", word, word, ["O, tl", "O, th"]),
                          port("w_port_1", "write", word, word, ["I1, fh", "I2, fh"]),
                          port("w_port_2", "write", word, word, ["O, fh", "O, fl"])],
                "served_dimensions": []},
            "global_buffer": {
                "size": gb.bytes * 8, "r_cost": gb.banks * gb.read_pj_per_row,
                "w_cost": gb.banks * gb.write_pj_per_row, "area": 0, "latency": 1,
                "operands": ["I1", "I2", "O"],
                "ports": [port("r_port_1", "read", word, gb_bits,
                               ["I1, tl", "I2, tl", "O, tl", "O, th"]),
                          port("w_port_1", "write", word, gb_bits,
                               ["I1, fh", "I2, fh", "O, fh", "O, fl"])],
                "served_dimensions": ["D1", "D2"]},
            "dram": {
                "size": 2**43, "r_cost": accesses * hw.dram.energy_pj_per_access,
                "w_cost": accesses * hw.dram.energy_pj_per_access, "area": 0, "latency": 1,
                "operands": ["I1", "I2", "O"],
                "ports": [port("rw_port_1", "read_write", hw.dram.access_bits,
                               accesses * hw.dram.access_bits,
                               ["I1, fh", "I1, tl", "I2, fh", "I2, tl",
                                "O, fh", "O, tl", "O, fl", "O, th"])],
                "served_dimensions": ["D1", "D2"]},
        },
        "operational_array": {
            "input_precision": [word, word], "unit_energy": hw.array2d.actions["mac"].energy_pj,
            "unit_area": 1, "dimensions": ["D1", "D2"], "sizes": [hw.pe_dim, hw.pe_dim]},
    }


def zigzag_workload(seq_len: int = SEQ_LEN, head_dim: int = HEAD_DIM, word_bits: int = 16
                    ) -> list[dict]:
    return [{"id": 0, "name": "QK", "operator_type": "Gemm",
             "equation": "O[b][k]+=I[b][c]*W[c][k]", "dimension_relations": [],
             "loop_dims": ["B", "C", "K"], "loop_sizes": [seq_len, head_dim, seq_len],
             "operand_precision": {"W": word_bits, "I": word_bits, "O": word_bits,
                                   "O_final": word_bits},
             "operand_source": {"I": 0, "W": 0}}]


def zigzag_available() -> bool:
    try:
        import zigzag.api  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def _zigzag_run(folder: Path, label: str, spatial: dict | None, hardware_name: str,
                seq_len: int, head_dim: int) -> dict:
    from zigzag.api import get_hardware_performance_zigzag

    from hw_models.spatial_array import load_spatial_array

    hw = load_spatial_array(hardware_name)
    mapping = {"name": "default", "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    if spatial:
        mapping["spatial_mapping"] = spatial
    files = {"accelerator": zigzag_accelerator(hardware_name),
             "workload": zigzag_workload(seq_len, head_dim, hw.word_bits),
             "mapping": [mapping]}
    for name, document in files.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    started = time.perf_counter()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # ZigZag logs every stage at INFO to the root logger
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            energy_pj, latency_cycles, cmes = get_hardware_performance_zigzag(
                str(folder / "workload.yaml"), str(folder / "accelerator.yaml"),
                str(folder / "mapping.yaml"), opt="latency",
                dump_folder=str(folder / f"out-{len(os.listdir(folder))}"),
                loma_show_progress_bar=False)
    finally:
        logging.disable(previous)
    seconds = time.perf_counter() - started
    best = cmes[0][1][0][0]  # the layer's chosen CostModelEvaluation
    macs = seq_len * seq_len * head_dim
    return {"tool": "zigzag", "binding": label,
            "spatial": {str(k): {str(d): float(f) for d, f in v.items()}
                        for k, v in best.layer.spatial_mapping.items()},
            "macs": macs, "compute_cycles": float(best.ideal_temporal_cycle),
            "latency_cycles": float(latency_cycles),
            "latency_s": float(latency_cycles) / hw.clock_hz,
            "utilization": float(best.mac_utilization2),
            "energy_j": float(energy_pj) * 1e-12,
            "energy_breakdown_j": {"mac": float(best.mac_energy) * 1e-12,
                                   "memories": float(best.mem_energy) * 1e-12},
            "search_s": seconds}


def zigzag_estimates(search: bool = True, seq_len: int = SEQ_LEN, head_dim: int = HEAD_DIM
                     ) -> dict:
    """ZigZag's best mapping for latency: its own spatial search and pinned to each binding.

    Returns ``{"status": "ok", "rows": {...}}``, or a status saying why there are no rows
    (not installed, or ZigZag failed); never raises because of ZigZag.
    """
    if not zigzag_available():
        return {"status": NOT_INSTALLED, "rows": {}}
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("zigzag-dse")
    except PackageNotFoundError:
        release = "unknown"
    runs = ([("ZigZag's search", None)] if search else []) \
        + [(label, spatial) for label, (_, spatial) in BINDINGS.items()]
    rows = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for label, spatial in runs:
                rows[label] = _zigzag_run(Path(folder), label, spatial, HARDWARE, seq_len,
                                          head_dim)
    except Exception as error:  # a different ZigZag release, or its mapper failing
        message = " ".join(str(error).split())[:200]
        return {"status": f"zigzag {release} failed: {type(error).__name__}: {message}",
                "rows": rows, "version": release}
    return {"status": "ok", "rows": rows, "version": release}


def run(search: bool = True, seq_len: int = SEQ_LEN, head_dim: int = HEAD_DIM) -> dict:
    """Both tools' estimates and the headline comparison (full-array binding, M x P)."""
    ours = einsim_estimates(seq_len, head_dim)
    theirs = zigzag_estimates(search, seq_len, head_dim)
    result = {"problem": {"gemm": "QK[m, p] = Q[e, p] * K[e, m]", "M": seq_len, "P": seq_len,
                          "E": head_dim, "word_bits": 16, "hardware": HARDWARE},
              "einsim": ours, "zigzag": theirs}
    if "M x P" in theirs["rows"]:
        a, b = ours["M x P"], theirs["rows"]["M x P"]
        result["headline"] = {"binding": "M x P",
                              "einsim_latency_cycles": a["latency_cycles"],
                              "zigzag_latency_cycles": b["latency_cycles"],
                              "latency_ratio": b["latency_cycles"] / a["latency_cycles"],
                              "einsim_energy_j": a["energy_j"], "zigzag_energy_j": b["energy_j"],
                              "energy_ratio": b["energy_j"] / a["energy_j"]}
    return result


def _spatial_text(row: dict) -> str:
    if row["tool"] == "einsim":
        return f"rows={row['spatial']['rows']}, cols={row['spatial']['cols']}"
    return ", ".join(f"{axis} " + " ".join(f"{dim}{factor:g}" for dim, factor in dims.items())
                     for axis, dims in row["spatial"].items())


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    problem = result["problem"]
    table = Table(title=f"QKᵀ GEMM, M = P = {problem['M']:,}, E = {problem['E']}, "
                        f"{problem['word_bits']}-bit, on {problem['hardware']}'s 256 x 256 array")
    for column in ("tool / binding", "spatial", "compute cyc", "latency cyc", "latency µs",
                   "MAC util", "energy µJ", "mapper s"):
        table.add_column(column, justify="left" if column in ("tool / binding", "spatial")
                         else "right")
    rows = [(f"einsim, {label}", row) for label, row in result["einsim"].items()]
    rows += [(f"ZigZag, {label}", row) for label, row in result["zigzag"]["rows"].items()]
    for name, row in rows:
        table.add_row(name, _spatial_text(row), f"{row['compute_cycles']:,.0f}",
                      f"{row['latency_cycles']:,.0f}", f"{row['latency_s'] * 1e6:,.1f}",
                      f"{row['utilization']:.1%}", f"{row['energy_j'] * 1e6:,.0f}",
                      f"{row['search_s']:.1f}" if "search_s" in row else "-")
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(table)
    if result["zigzag"]["status"] != "ok":
        console.print(result["zigzag"]["status"])
    if "headline" in result:
        h = result["headline"]
        console.print(f"M x P binding: ZigZag / einsim latency {h['latency_ratio']:.3f}, "
                      f"energy {h['energy_ratio']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-search", action="store_true",
                        help="Skip ZigZag's spatial-mapping search (pinned bindings only).")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    result = run(search=not options.no_search)
    if options.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print_table(result)


if __name__ == "__main__":
    main()
