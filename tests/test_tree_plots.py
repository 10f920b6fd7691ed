"""Figures of loop trees (einsim.plots.trees): one box per node, edges parent → child, and
traffic bars that add up to the report's ``traffic_by_level``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("plotly")

from einsim.cost.evaluate import evaluate_tree  # noqa: E402
from einsim.cost.tree import load_mapping_tree, mapping_from_document  # noqa: E402
from einsim.plots.trees import traffic_by_level_figure, tree_figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TREE_FILES = sorted(p for p in (ROOT / "mappings").glob("*.yaml")
                    if isinstance(yaml.safe_load(p.read_text()), dict)
                    and "tree" in yaml.safe_load(p.read_text()))
KINDS = ("loop", "spatial", "keep", "sequence", "pipeline", "run")


def document_nodes(chain: list, prefix: str = "tree") -> list[tuple[str, dict]]:
    """(path, node) for every node of a YAML tree, walked here independently of einsim."""
    found = []
    for position, item in enumerate(chain):
        path = f"{prefix}[{position}]"
        found.append((path, item))
        for kind in ("sequence", "pipeline"):
            if kind in item:
                for k, branch in enumerate(item[kind]):
                    found += document_nodes(branch, f"{path}.{kind}[{k}]")
    return found


def kind_of(node: dict) -> str:
    (kind,) = [k for k in KINDS if k in node]
    return kind


def boxes(figure) -> dict:
    return {a.name: a for a in figure.layout.annotations}


def test_there_are_tree_mappings() -> None:
    names = {p.stem for p in TREE_FILES}
    assert {"fusemax", "flat", "unfused"} <= names


@pytest.mark.parametrize("path", TREE_FILES, ids=[p.stem for p in TREE_FILES])
def test_tree_figure_has_one_box_per_node(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    expected = document_nodes(document["tree"])
    figure = tree_figure(load_mapping_tree(str(path)))
    drawn = boxes(figure)
    assert len(figure.layout.annotations) == len(expected)  # boxes are the only annotations
    assert set(drawn) == {p for p, _ in expected}
    for node_path, node in expected:
        text = drawn[node_path].text
        kind = kind_of(node)
        if kind == "loop":
            assert f"loop {node['loop']}" in text
            if "tile" in node:
                assert "tile" in text
        elif kind == "spatial":
            for axis, variable in node["spatial"].items():
                assert f"{axis}: {variable}" in text
        elif kind == "keep":
            (level, tensors), = node["keep"].items()
            assert f"keep @ {level}" in text
            for entry in tensors:
                assert entry in text
        elif kind in ("sequence", "pipeline"):
            assert kind in text and f"({len(node[kind])})" in text
        else:
            unit = node.get("on", node.get(True, node.get("unit")))
            unit = " + ".join(unit) if isinstance(unit, list) else unit  # split over units
            assert f"on {unit}" in text
            for einsum in ([node["run"]] if isinstance(node["run"], str) else node["run"]):
                assert einsum in text
    figure.to_json()  # plain data throughout


@pytest.mark.parametrize("path", TREE_FILES, ids=[p.stem for p in TREE_FILES])
def test_tree_figure_layout_is_a_tree(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    expected = document_nodes(document["tree"])
    figure = tree_figure(load_mapping_tree(str(path)))
    drawn = boxes(figure)
    # One elbow edge per node but the root: a tree has n - 1 edges.
    (edges,) = [t for t in figure.data if t.meta == "edges"]
    assert list(edges.x).count(None) == len(expected) - 1
    # Depth increases by one from a chain's node to the next, and from a branch node to the
    # first node of each of its branches; leaves each get their own column.
    depth = {p: -drawn[p].y for p, _ in expected}
    for node_path, node in expected:
        kind = kind_of(node)
        if kind in ("sequence", "pipeline"):
            for k in range(len(node[kind])):
                assert depth[f"{node_path}.{kind}[{k}][0]"] == depth[node_path] + 1
    runs = [drawn[p].x for p, node in expected if kind_of(node) == "run"]
    assert len(set(runs)) == len(runs)
    # The hover markers sit on the boxes.
    (markers,) = [t for t in figure.data if t.meta == "nodes"]
    assert sorted(markers.text) == sorted(p for p, _ in expected)


def test_tree_figure_takes_a_name_and_shows_an_edit() -> None:
    by_name = tree_figure("fusemax")
    document = yaml.safe_load((ROOT / "mappings" / "fusemax.yaml").read_text())
    assert len(boxes(by_name)) == len(document_nodes(document["tree"]))
    # Drop the inner sequence around AV: one node fewer, and its run moves up a level.
    document["tree"][3]["sequence"][1] = [{"loop": "p", "tile": "P0"},
                                          {"run": "AV", "on": "array1d"}]
    edited = tree_figure(mapping_from_document(document))
    assert len(boxes(edited)) == len(boxes(by_name)) - 1
    assert "tree[3].sequence[1][2]" in boxes(by_name)
    assert "tree[3].sequence[1][2]" not in boxes(edited)
    assert "run AV" in boxes(edited)["tree[3].sequence[1][1]"].text


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    """Each library tree at 4K tokens; the decode trees (one CTA holds all of a head's query
    rows) for 8 query rows against a 4K-token KV cache."""
    decode = tmp_path_factory.mktemp("decode") / "decode.yaml"
    decode.write_text(yaml.safe_dump({"name": "decode", "batch": 4, "heads": 8, "head_dim": 128,
                                      "model_dim": 1024, "ffn_dim": 4096, "seq_len": 8,
                                      "kv_len": 4096}))
    def workload(stem: str) -> tuple[str, int | None]:
        if stem in DECODE:
            return str(decode), None
        return GRIDS.get(stem, "bert"), None if stem in GRIDS else 4096

    return {p.stem: evaluate_tree(str(p), workload=workload(p.stem)[0],
                                  seq_len=workload(p.stem)[1]).best for p in TREE_FILES}


DECODE = {"decode-fa2", "flash-decoding", "lean-attention"}
GRIDS = {"fna-2d": "flux-4k", "fna-3d": "hunyuan-video"}  # image and video token grids


@pytest.mark.parametrize("name", [p.stem for p in TREE_FILES])
def test_traffic_bars_add_up_to_the_report(name: str, reports) -> None:
    report = reports[name]
    figure = traffic_by_level_figure(report)
    bars = [t for t in figure.data if t.type == "bar"]
    traffic = report.traffic_by_level
    assert {b.name for b in bars} == {t for level in traffic.values() for t in level}
    totals: dict[str, float] = {}
    for bar in bars:
        for level, value in zip(bar.x, bar.y):
            counts = traffic[level][bar.name]
            assert value == counts["reads"] + counts["writes"]
            totals[level] = totals.get(level, 0.0) + value
    expected = {level: sum(c["reads"] + c["writes"] for c in tensors.values())
                for level, tensors in traffic.items()}
    assert totals.keys() == expected.keys()
    for level in expected:
        assert totals[level] == pytest.approx(expected[level], rel=1e-12)
    (labels,) = [t for t in figure.data if t.meta == "totals"]
    assert list(labels.x) == [level for level in labels.x if level in expected]
    assert figure.layout.barmode == "stack"
    assert "words" in figure.layout.yaxis.title.text
    # the backing store (the tree's first keep) first, the innermost level last
    root = yaml.safe_load((ROOT / "mappings" / f"{name}.yaml").read_text())["tree"][0]["keep"]
    assert list(labels.x)[0] == next(iter(root))
    assert len(set(labels.x)) == len(labels.x)
    figure.to_json()


def test_traffic_figure_units_and_log_scale(reports) -> None:
    report = reports["fusemax"]
    words = traffic_by_level_figure(report)
    in_bytes = traffic_by_level_figure(report, bytes_per_word=2, log_y=True)
    assert "bytes" in in_bytes.layout.yaxis.title.text
    assert in_bytes.layout.yaxis.type == "log"
    assert words.layout.yaxis.type != "log"
    for a, b in zip([t for t in words.data if t.type == "bar"],
                    [t for t in in_bytes.data if t.type == "bar"]):
        assert a.name == b.name
        assert [2 * v for v in a.y] == list(b.y)
    # DRAM words of FuseMax: Q and AV once, K and V once per block of P1 * P0 queries.
    dram = {t: sum(c.values()) for t, c in report.traffic_by_level["dram"].items()}
    (labels,) = [t for t in words.data if t.meta == "totals"]
    assert labels.y[list(labels.x).index("dram")] == pytest.approx(sum(dram.values()))


def test_traffic_figure_on_a_hand_made_report(reports) -> None:
    traffic = {"global_buffer": {"A": {"reads": 5.0, "writes": 1.0}},
               "dram": {"A": {"reads": 2.0, "writes": 0.0}, "B": {"reads": 3.0, "writes": 4.0}}}
    report = reports["fusemax"].model_copy(update={"traffic_by_level": traffic,
                                                   "accesses_by_level": {}})
    figure = traffic_by_level_figure(report)
    bars = {t.name: dict(zip(t.x, t.y)) for t in figure.data if t.type == "bar"}
    assert bars == {"A": {"dram": 2.0, "global_buffer": 6.0}, "B": {"dram": 7.0}}
    (labels,) = [t for t in figure.data if t.meta == "totals"]
    assert list(labels.x) == ["dram", "global_buffer"]
    assert list(labels.y) == [9.0, 6.0]


def test_utilization_of_a_pe_dim_sweep_is_plotted_against_pe_dim():
    from einsim.plots.cost import utilization_figure
    from einsim.search.tree_sweep import vectorized_points

    rows = vectorized_points("fusemax", "bert", [262144], {"pe_dim": [16, 64, 256]})
    figure = utilization_figure(rows)
    assert list(figure.data[0].x) == [16, 64, 256]
    assert figure.layout.xaxis.title.text == "pe_dim"
    assert [round(y, 3) for y in figure.data[0].y] == [
        round(r["utilization"]["array2d"], 3) for r in rows]
