"""The roofline of a GPU or a spatial array with every variant of the mapping library: attained
FLOP/s against arithmetic intensity (FLOPs per byte of the backing store: HBM or DRAM), under
the machine's compute roofs and its bandwidth roof.

:func:`roofline_points` evaluates every mapping in ``mappings/`` that runs on the hardware
(its free parameters searched, as ``einsim evaluate`` does) on a workload's prefill; a mapping
that cannot hold the prefill (the decode trees keep every query of a head in one CTA) is
evaluated on the workload's decode step instead (one query per sequence against ``seq_len``
keys).  :func:`roofline_figure` draws them with any points you add.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from einsim.errors import EinsimError

_PALETTE = qualitative.D3
_LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=20, t=70, b=60))
FLOPS_PER_OP = {"mac": 2}
"""FLOPs per counted operation (a multiply-accumulate is two; every other operation one)."""


def roofs(hardware: str) -> dict:
    """The machine's roofs: ``compute`` [(name, FLOP/s)] and ``bandwidth`` [(name, B/s)],
    the first of each being the main one; ``name`` and ``kind``."""
    from einsim.cost.front_door import load_hardware

    machine = load_hardware(hardware)
    if machine.kind == "gpu_sm":
        return {"name": machine.name, "kind": machine.kind,
                "compute": [("tensor cores, dense FP16", machine.peak_flops("fp16")),
                            ("FP32 lanes", 2.0 * machine.fp32_per_clock_per_sm * machine.sms
                             * machine.clock_hz)],
                "bandwidth": [("HBM", machine.hbm_bandwidth_bytes_per_s),
                              ("L2 (assumed)", machine.l2_bandwidth)]}
    if machine.kind == "spatial_array":
        return {"name": machine.name, "kind": machine.kind,
                "compute": [("2D array (MACs)", 2.0 * machine.pe_count("array2d")
                             * machine.clock_hz),
                            ("1D array", float(machine.pe_count("array1d")) * machine.clock_hz)],
                "bandwidth": [("DRAM", machine.dram.bandwidth_bytes_per_s)]}
    raise EinsimError(f"roofline of {hardware}: expected a GPU or a spatial array, got "
                      f"{machine.kind}")


def report_point(report, name: str | None = None, backing: str | None = None) -> dict:
    """A roofline point of an evaluated Report: ``flops`` (its Einsums' operations, a MAC
    counting two), ``bytes`` moved to and from the backing store (``hbm`` or ``dram``) and
    ``seconds``."""
    from einsim.cost.front_door import load_hardware

    flops = sum(count * FLOPS_PER_OP.get(op, 1) for e in report.einsums
                for op, count in e.ops.items())
    level = backing or next((l for l in ("hbm", "dram") if l in report.traffic_by_level),
                            None)
    if level is None:
        raise EinsimError(f"report of {report.mapping}: no hbm or dram traffic to place it on "
                          "a roofline")
    machine = load_hardware(report.hardware)
    word = 2 if machine.kind == "gpu_sm" else machine.word_bytes
    words = sum(t["reads"] + t["writes"] for t in report.traffic_by_level[level].values())
    return {"name": name or report.mapping, "flops": float(flops),
            "bytes": float(words * word), "seconds": float(report.latency_s),
            "parameters": dict(report.parameters)}


def roofline_points(hardware: str, workload: str = "bert", seq_len: int | str = 8192,
                    mappings: Sequence[str] | None = None) -> list[dict]:
    """Every library mapping (or ``mappings``) that runs on ``hardware``'s kind, as roofline
    points (see :func:`report_point`) with ``mapping`` and ``shape`` (``prefill`` or
    ``decode``).  Mappings for another kind of hardware are left out; one that fits neither
    shape is a point with ``skipped`` set to the reason (the prefill's)."""
    from einsim.cost.evaluate import best_concrete, problem_of
    from einsim.cost.front_door import load_hardware
    from einsim.cost.tree import load_mapping_tree, mapping_names
    from einsim.workloads import load_workload

    kind = load_hardware(hardware).kind
    prefill = problem_of(load_workload(workload, seq_len))
    decode = problem_of(load_workload(workload, 1, kv_len=seq_len))
    points = []
    for name in mappings or mapping_names():
        try:
            tree = load_mapping_tree(name)
            if load_hardware(tree.hardware).kind != kind:
                continue
        except EinsimError:
            continue  # device groups and files of other kinds
        reason = ""
        for shape, problem in (("prefill", prefill), ("decode", decode)):
            try:
                found, _ = best_concrete(tree, problem, hardware, pareto=False)
            except EinsimError as error:
                reason = reason or str(error)
                continue
            point = report_point(found.best, f"{name} ({shape})")
            if point["flops"] == 0:  # a data movement (the token permute): no roofline place
                reason = "no arithmetic: a data movement kernel"
                continue
            points.append({**point, "mapping": name, "shape": shape})
            break
        else:
            points.append({"name": name, "mapping": name, "skipped": reason})
    return points


def roofline_figure(hardware: str, points: Sequence[dict] = (), variants: bool = True,
                    workload: str = "bert", seq_len: int | str = 8192,
                    mappings: Sequence[str] | None = None) -> go.Figure:
    """Attained FLOP/s against FLOPs per backing-store byte, under the roofs of ``hardware``.

    Parameters
    ----------
    hardware : str
        A GPU or spatial-array preset (or file).
    points : list of dict
        Extra points (diamonds): ``name``, ``flops``, ``bytes``, ``seconds``, e.g. decode
        estimates or :func:`report_point` of your own reports.
    variants : bool
        Also evaluate and draw the library's variants (:func:`roofline_points`).
    workload, seq_len, mappings
        As :func:`roofline_points`, when the variants are evaluated.
    """
    machine = roofs(hardware)
    given = list(points)
    variants = roofline_points(hardware, workload, seq_len, mappings) if variants else []
    drawn = [p for p in variants + given if not p.get("skipped")]
    skipped = [p for p in variants if p.get("skipped")]
    peak, peak_name = machine["compute"][0][1], machine["compute"][0][0]
    bandwidth, bandwidth_name = machine["bandwidth"][0][1], machine["bandwidth"][0][0]
    intensity = [p["flops"] / p["bytes"] for p in drawn if p["bytes"] > 0]
    ridge = peak / bandwidth
    low = 10 ** math.floor(math.log10(min(intensity + [ridge]) / 4))
    high = 10 ** math.ceil(math.log10(max(intensity + [ridge]) * 4))
    x = np.geomspace(low, high, 256)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=np.minimum(peak, bandwidth * x), mode="lines",
                             name=f"roof: {peak_name} {peak / 1e12:.4g} TFLOP/s, "
                                  f"{bandwidth_name} {bandwidth / 1e12:.3g} TB/s",
                             line=dict(color="black", width=2)))
    for name, value in machine["compute"][1:]:
        fig.add_trace(go.Scatter(x=x, y=np.minimum(value, bandwidth * x), mode="lines",
                                 name=f"{name} {value / 1e12:.4g} TFLOP/s",
                                 line=dict(color="#d62728", dash="dash", width=1)))
    for name, value in machine["bandwidth"][1:]:
        fig.add_trace(go.Scatter(x=x, y=np.minimum(peak, value * x), mode="lines",
                                 name=f"{name} {value / 1e12:.3g} TB/s",
                                 line=dict(color="#7f7f7f", dash="dot", width=1)))
    for k, p in enumerate(drawn):
        if p["bytes"] <= 0 or p["seconds"] <= 0:
            continue
        i, attained = p["flops"] / p["bytes"], p["flops"] / p["seconds"]
        bound = min(peak, bandwidth * i)
        fig.add_trace(go.Scatter(
            x=[i], y=[attained], mode="markers+text", name=p["name"], text=[p["name"]],
            textposition="top center",
            marker=dict(size=11, color=_PALETTE[k % len(_PALETTE)],
                        symbol="diamond" if p in given else "circle"),
            hovertemplate=f"{p['name']}<br>%{{x:.3g}} FLOP/B, %{{y:.3g}} FLOP/s<br>"
                          f"{attained / bound:.0%} of the roof here, {attained / peak:.0%} of "
                          f"peak<extra></extra>"))
    note = ("not drawn: " + "; ".join(f"{p['name']} ({p['skipped'].split(';')[0][:100]})"
                                      for p in skipped) if skipped else "")
    fig.update_layout(
        title=f"Roofline of {machine['name']} with attention variants"
              + (f" ({workload}, {seq_len} tokens)" if variants else "")
              + (f"<br><sup>{note}</sup>" if note else ""),
        xaxis=dict(title=f"arithmetic intensity (FLOP per {bandwidth_name} byte)", type="log"),
        yaxis=dict(title="attained FLOP/s", type="log"), **_LAYOUT)
    return fig


__all__ = ["roofs", "report_point", "roofline_points", "roofline_figure", "FLOPS_PER_OP"]
