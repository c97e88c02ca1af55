"""`python -m diareval report`: one self-contained report.html (no external URL, every
figure of the registry, sections linked), and it opens in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from diareval.cli import main as cli_main
from diareval.report import write_report
from diareval.report.html import figure_registry, render_figures

from test_compare import CLEAN, HEAVY, make_recording, make_run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.html of two runs (clean and heavy oracle) on the same 3 recordings."""
    root = tmp_path_factory.mktemp("report")
    (root / "audio").mkdir()
    recordings = [make_recording(root / "audio", f"r{i}", 30.0, i) for i in range(3)]
    clean = make_run(root / "clean", recordings, CLEAN, {})
    heavy = make_run(root / "heavy", recordings, HEAVY, {"p_wrong_first": 0.6})
    path = write_report([clean, heavy], out=root / "out", n_boot=100)
    return path, clean, heavy


def test_page_is_self_contained(report):
    path, _, _ = report
    page = path.read_text()
    assert path.name == "report.html"
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"""src\s*=\s*["']?([^"'\s>]*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"url\(", page)


def test_page_has_every_section_and_figure(report):
    path, clean, _ = report
    page = path.read_text()
    ids = set(re.findall(r'id="([^"]+)"', page)) | set(re.findall(r"id=(\w+)", page))
    links = set(re.findall(r'href="#([^"]+)"', page))
    for section in ("summary", "differences", "figures", "configurations", "datasets",
                    "versions", "conventions", "sessions", "contents"):
        assert section in ids and section in links
    assert links <= ids, f"links without a target: {links - ids}"
    from diareval.report.comparison import compare_runs
    drawn, failed = render_figures(compare_runs([clean, report[2]], n_boot=50).scores)
    assert not failed
    assert len(drawn) >= 5 and len(drawn) <= len(figure_registry())
    import matplotlib.pyplot as plt
    for name, figure in drawn:
        assert f'id="figure-{name}"' in page
        plt.close(figure)
    assert page.count("<img ") >= len(drawn)  # (+ session timelines where they load)
    # the numbers: both configurations, the versions and the per-session rows
    assert page.count("universal-streaming-english__max-speakers-none__clean") >= 3
    assert "git_sha" in page and "abc" in page
    assert page.count("<td>r0</td>") == 2  # one per-session row per run


def test_cli_writes_report_in_run_dir(report, tmp_path, capsys):
    _, clean, _ = report
    run = tmp_path / "run"
    shutil.copytree(clean, run)
    assert cli_main(["report", str(run), "--n-boot", "50"]) == 0
    assert (run / "report.html").exists()
    assert str(run / "report.html") in capsys.readouterr().out


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,2000"]


def test_report_opens_in_headless_chromium(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium with apt-get)")
    path = report[0]
    shot = tmp_path / "shot.png"
    try:
        done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p1'}",
                               f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
                               path.as_uri()], capture_output=True, text=True, timeout=120)
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p2'}",
                              "--dump-dom", path.as_uri()], capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 120 s on this machine")
    if not shot.exists():
        pytest.skip(f"chromium cannot run here: {done.stderr[-500:]}")
    assert not [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert 'id="summary"' in dom.stdout and "<img" in dom.stdout
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20, "the screenshot is blank"
    # the summary table (header cells #f3f3f3) near the top, and the first figure
    # (matplotlib's first line colour #1f77b4) on the same screen
    header = np.all(pixels == (243, 243, 243), axis=2)
    rows = np.nonzero(header.sum(axis=1) > 100)[0]
    assert len(rows) and rows[0] < 600, "no table header in the first 600 px"
    blue = np.all(np.abs(pixels - (31, 119, 180)) <= 8, axis=2)
    assert blue.sum() > 200, "no figure in the screenshot"
