"""Every notebook in notebooks/ executes top to bottom; the plotting helpers work on the library."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import einsim

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture
def kernel_pythonpath():
    """Let the kernel import einsim from this checkout, installed or not; restore afterwards."""
    previous = os.environ.get("PYTHONPATH")
    parts = [str(ROOT)] + ([previous] if previous else [])
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    yield
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, kernel_pythonpath) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}")
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"


def test_notebooks_are_committed_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.parametrize("name", einsim.library.names())
def test_dependency_graph_figure_draws_every_tensor(name: str) -> None:
    pytest.importorskip("plotly")
    from einsim.plots.cascades import dependency_graph_figure

    cascade = einsim.library.get(name)
    figure = dependency_graph_figure(cascade)
    assert len(figure.data) >= 1
    drawn = [n for trace in figure.data if trace.meta == "nodes" for n in trace.text]
    assert sorted(drawn) == sorted(einsim.dependency_graph(cascade).nodes)
    assert name in figure.layout.title.text
    figure.to_json()  # serialisable: every value is plain data


def test_pass_bars_figure_counts_passes() -> None:
    pytest.importorskip("plotly")
    from einsim.plots.cascades import pass_bars_figure

    names = einsim.library.names()
    figure = pass_bars_figure(names, ranks=("m", "seq"))
    assert len(figure.data) == 2
    over_m, over_sequence = (list(trace.y) for trace in figure.data)
    assert over_m[names.index("attention-3pass")] == 3
    assert over_m[names.index("fusemax")] == 1
    assert over_m[names.index("gna-2d")] is None  # gna-2d has no rank m
    assert over_sequence[names.index("gna-2d")] == 1
