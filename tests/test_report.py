"""``einsim report``: self-contained HTML pages whose figures draw in headless Chromium.

Every kind of report is written through :func:`einsim.cli.main`, checked to inline plotly.js
exactly once and to load nothing from the network, then opened in headless Chromium with a
probe script that counts the figures that drew and collects script errors into the page title.
CI installs Chromium (``.ci/run`` installs Debian's ``chromium`` when it is missing).  Where no
Chromium is installed the same assertions run on a static check instead of a browser: every
figure div must have exactly one ``Plotly.newPlot`` call whose data, layout and config are valid
JSON that plotly's own figure validation accepts (:func:`_static_probe`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from einsim.cli import main

REPORTS = {
    "evaluate": ["--seq-len", "16K"],  # no --mapping: FuseMax against FLAT
    "sweep": ["--seq-len", "1K,16K", "--param", "pe_dim=64,256"],
    "gna": ["--shape", "64", "64", "--window", "16", "16", "--q-tile", "16", "8",
            "--kv-tile", "16", "8", "--hw", "h100", "--find-stride"],
    "decode": ["--hw", "a100", "--batch", "4", "--context", "8K"],
    "offload": ["--model", "llama3-8b", "--context", "16K"],
}
FIGURES = {"evaluate": 6, "sweep": 2, "gna": 2, "decode": 1, "offload": 2}

# Installed first thing in <body>, so errors of the figure scripts are caught too.
_ERROR_HOOK = """<script>
window.__reportErrors = [];
window.onerror = function (message, source, line) {
  window.__reportErrors.push(String(message) + " at " + source + ":" + line);
};
window.addEventListener("unhandledrejection", function (event) {
  window.__reportErrors.push("unhandled rejection: " + String(event.reason));
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__reportErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
</script>"""
# Appended at the end of <body>: after load, FIGURES:<divs>:<divs with an svg.main-svg>.
_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var divs = document.querySelectorAll(".plotly-graph-div"), drawn = 0;
    divs.forEach(function (div) { if (div.querySelector("svg.main-svg")) drawn++; });
    var errors = window.__reportErrors || [];
    document.title = "FIGURES:" + divs.length + ":" + drawn
      + (errors.length ? ":ERRORS:" + errors.join(" | ") : "");
  }, 500);
});
</script>"""


def _chromium() -> str | None:
    """The Chromium binary, or None where none is installed (then the static probe runs)."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


class _Figures(HTMLParser):
    """Ids of ``div.plotly-graph-div`` elements and the text of every inline script."""

    def __init__(self):
        super().__init__()
        self.divs: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "div" and "plotly-graph-div" in (attributes.get("class") or "").split():
            self.divs.append(attributes.get("id") or "")
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _static_probe(page: Path) -> str:
    """The probe's title computed without a browser: FIGURES:<divs>:<valid figures>[:ERRORS:..].

    A figure counts when its div has one ``Plotly.newPlot("<id>", data, layout, config)`` call
    whose three arguments are JSON and make a figure plotly validates.
    """
    parser = _Figures()
    parser.feed(page.read_text(encoding="utf-8"))
    decoder, valid, errors = json.JSONDecoder(), 0, []
    code = "\n".join(parser.scripts)
    for div in parser.divs:
        calls = [m.end() for m in re.finditer(r"Plotly\.newPlot\(\s*" + re.escape(json.dumps(div))
                                              + r"\s*,\s*", code)]
        if len(calls) != 1:
            errors.append(f"{div}: {len(calls)} Plotly.newPlot calls")
            continue
        try:
            position, arguments = calls[0], []
            for _ in range(3):
                value, position = decoder.raw_decode(code, position)
                arguments.append(value)
                position = re.compile(r"\s*,?\s*").match(code, position).end()
            data, layout, config = arguments
            assert isinstance(data, list) and data and isinstance(config, dict)
            go.Figure(data=data, layout=layout)  # raises on unknown trace types or properties
            valid += 1
        except (ValueError, AssertionError) as error:
            errors.append(f"{div}: {str(error)[:200]}")
    if "Plotly.newPlot" in code and get_plotlyjs()[:200] not in code:
        errors.append("plotly.js is not inlined")
    return f"FIGURES:{len(parser.divs)}:{valid}" + (f":ERRORS:{' | '.join(errors)}"
                                                    if errors else "")


def _probe_copy(page: Path) -> Path:
    text = page.read_text(encoding="utf-8")
    text, hooked = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + _ERROR_HOOK, text, count=1)
    assert hooked == 1 and text.count("</body>") == 1
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    return probe


def _start(chromium: str, page: Path, profile: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
         "--dump-dom", page.resolve().as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """Every kind of report written, then rendered: kind -> (page, probe title)."""
    chromium = _chromium()
    root = tmp_path_factory.mktemp("reports")
    pages = {}
    for kind, options in REPORTS.items():
        pages[kind] = root / f"{kind}.html"
        status = main(["report", kind, *options, "--out", str(pages[kind])])
        assert status == 0, f"einsim report {kind} exited with {status}"
    if chromium is None:
        return {kind: (pages[kind], _static_probe(pages[kind])) for kind in REPORTS}
    waiting, running, titles = list(pages), {}, {}
    while waiting or running:  # as many Chromiums at a time as there are CPUs
        while waiting and len(running) < max(1, os.cpu_count() or 1):
            kind = waiting.pop(0)
            running[kind] = _start(chromium, _probe_copy(pages[kind]), root / f"profile-{kind}")
        kind, process = next(iter(running.items()))
        del running[kind]
        try:
            dom, log = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            dom, log = process.communicate()
        match = re.search(r"<title>(.*?)</title>", dom, re.S)
        titles[kind] = match.group(1) if match else f"NO TITLE (chromium stderr: {log[-800:]})"
    return {kind: (pages[kind], titles[kind]) for kind in REPORTS}


@pytest.mark.parametrize("kind", list(REPORTS))
def test_report_is_self_contained(rendered, kind):
    page, _ = rendered[kind]
    text = page.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()) == 1  # the bundle inlined exactly once
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", text)
    assert '<script src="http' not in text
    assert text.count('class="einsim-figure"') == FIGURES[kind]
    assert "<h2>Inputs</h2>" in text and f"einsim report {kind}" in text
    assert "<table" in text


@pytest.mark.parametrize("kind", list(REPORTS))
def test_report_figures_draw_without_errors(rendered, kind):
    _, title = rendered[kind]
    match = re.fullmatch(r"FIGURES:(\d+):(\d+)(:ERRORS:.*)?", title.strip(), re.S)
    assert match, f"the probe did not report: {title!r}"
    figures, drawn, errors = int(match.group(1)), int(match.group(2)), match.group(3)
    assert errors is None, f"script errors: {errors}"
    assert figures == FIGURES[kind] and drawn == figures


def test_report_inputs_and_results(rendered):
    text = rendered["evaluate"][0].read_text(encoding="utf-8")
    assert "flat" in text and "fusemax" in text and "speedup" in text
    assert "--seq-len 16K" in text  # the command line that produced it
    text = rendered["decode"][0].read_text(encoding="utf-8")
    assert all(schedule in text for schedule in ("fa2", "flash-decoding", "lean"))


@pytest.mark.parametrize("args, message", [
    (["report", "gna", "--shape", "8", "--window", "16", "--q-tile", "4", "--kv-tile", "4",
      "--out", "{tmp}/gna.html"], "window"),
    (["report", "decode", "--schedule", "nope", "--out", "{tmp}/d.html"], "schedule"),
    (["report", "offload", "--out", "{tmp}/missing/o.html"], "--out"),
    (["report", "sweep"], "--out"),
])
def test_report_errors_are_one_line_with_status_2(capsys, tmp_path, args, message):
    status = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("einsim: error:") and message in err
    assert not list(tmp_path.glob("*.html"))
