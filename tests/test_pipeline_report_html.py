"""report.html is one self-contained page that headless Chromium renders with every chart drawn
and no error on its console, with no request leaving the machine; `curate stats OUTPUT` writes
the same page for a finished run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from curate import cli, schema
from curate.config import parse_config
from curate.pipeline.report import write_report
from curate.pipeline.domain_counts import DomainCounts
from curate.pipeline.shards import plan_shards, write_shard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "warc:not_html:</script><script>alert(1)</script>"


def finished_run(tmp_path: Path) -> Path:
    """An output folder as a run leaves it: shards, rejected/, stats.json, manifest.json."""
    rng = np.random.default_rng(0)
    rows = [{schema.ID: f"d{i}", schema.WARC_PATH: "/data/a.warc.gz", schema.WARC_OFFSET: i, schema.TEXT: f"text {i} " * 20,
             schema.DOMAIN: f"site{i % 7}.org", schema.LANG: ["en", "de", "fr"][i % 3], schema.LANG_SCORE: float(rng.uniform(0.5, 1)),
             schema.WIKI_SCORE: float(rng.beta(2, 5)), schema.DROP_REASON: None if i % 4 else "gopher_quality:short"}
            for i in range(200)]
    import pyarrow.parquet as pq

    pq.write_table(schema.from_rows(rows), tmp_path / "part.parquet")
    out = tmp_path / "out"
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = plan_shards([str(tmp_path / "part.parquet")], out, 40, "zstd", True)
    written = [write_shard(s) for s in plan.kept + plan.rejected]
    kept, rejected = written[: len(plan.kept)], written[len(plan.kept):]
    tokens = DomainCounts()
    for entry in written:
        tokens.merge(entry.pop("domain_tokens"))
    stats = {
        "read": 210, "kept": 150, "rejected": 55, "errored": 5, "inputs": 3, "rows_written": 210,
        "funnel": [
            {"stage": "read", "in": 210, "kept": 205, "dropped": {"error:warc:truncated_record": 5, HOSTILE: 5}, "seconds": 1.5},
            {"stage": "gopher_quality", "in": 200, "kept": 150, "dropped": {"gopher_quality:short": 50}, "seconds": 0.7},
            {"stage": "dedup_minhash", "in": 150, "kept": 150, "dropped": {}, "seconds": 2.0},
        ],
        "global": {"dedup_minhash": {"cluster_size_histogram": {"2": 7, "3": 2}}},
        "failed_inputs": [{"uri": "https://data.example/x.warc.gz", "error": "warc:transfer_failed", "detail": "gave up"}],
        "file_errors": {"warc:transfer_failed": 1}, "seconds_this_invocation": {"total": 9.0},
    }
    cfg = parse_config({"input": {"paths": ["/data/a.warc.gz"]}, "output": {"path": str(out)},
                        "classifiers": {"wiki_quality": {"enabled": True}}})
    write_report(cfg, out, stats, [], kept, rejected, tokens)
    return out


def render(page: Path, tmp_path: Path) -> tuple[str, str]:
    """(DOM after the scripts ran, browser log) from headless Chromium, every host unresolvable."""
    assert CHROMIUM is not None, "Chromium is installed by `make setup` (Debian package chromium)"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_report_renders_every_chart_without_console_errors(tmp_path):
    out = finished_run(tmp_path)
    page = (out / "report.html").read_text()
    # Self-contained: no script, style, image or font is fetched from anywhere.
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=""", page)
    assert "url(" not in page and "@import" not in page
    dom, log = render(out / "report.html", tmp_path)
    drawn = int(re.search(r'data-charts-drawn="(\d+)"', dom).group(1))
    charts = re.findall(r'<svg[^>]*data-chart="([a-z]+)"', dom)
    for section in ("funnel", "reasons", "languages", "classifier", "scores", "clusters", "mixture", "shards", "time"):
        assert section in charts, section
    assert drawn == len(charts) >= 10
    assert dom.count("<rect") > 50 and "https://data.example/x.warc.gz" in dom  # bars, and the failed input
    assert '<div id="errors"></div>' in dom  # window.onerror saw nothing
    assert not re.search(r"CONSOLE[:(]|Uncaught", log), log[-2000:]  # nothing logged to the console at all
    assert "alert(1)" in dom and "<script>alert(1)" not in dom.split('id="data"')[0]  # shown as text, never run


def test_curate_stats_writes_the_report_of_a_finished_run(tmp_path, capsys):
    out = finished_run(tmp_path)
    (out / "report.html").unlink()
    assert cli.main(["stats", str(out)]) == 0
    assert (out / "report.html").is_file() and "report.html" in capsys.readouterr().out


def test_the_report_shows_each_classifier_score_over_kept_and_dropped_rows(tmp_path):
    import pyarrow.parquet as pq

    out = finished_run(tmp_path)
    rows = pq.read_table(tmp_path / "part.parquet", columns=[schema.WIKI_SCORE, schema.DROP_REASON]).to_pylist()
    edges = np.linspace(0, 1, 21)
    expect = {side: np.histogram([r[schema.WIKI_SCORE] for r in rows if (r[schema.DROP_REASON] is None) == (side == "kept")],
                                 edges)[0].tolist() for side in ("kept", "dropped")}
    import json

    hist = json.loads((out / "stats.json").read_text())["score_histograms"]
    assert list(hist) == ["wiki_score"]  # only the enabled classifier's column
    assert hist["wiki_score"]["kept"] == expect["kept"] and hist["wiki_score"]["dropped"] == expect["dropped"]
    assert sum(expect["kept"]) == 150 and sum(expect["dropped"]) == 50
    report = (out / "report.md").read_text()
    assert "![score histograms](scores.png)" in report and "| wiki_score | 150 |" in report
    assert (out / "scores.png").read_bytes().startswith(b"\x89PNG")
    dom, _ = render(out / "report.html", tmp_path)
    chart = re.search(r'<svg[^>]*data-chart="classifier".*?</svg>', dom, re.S).group(0)
    bars = re.findall(r"<title>(kept|dropped) [^<]*: (\d+)</title>", chart)
    assert sum(int(n) for side, n in bars if side == "kept") == 150
    assert sum(int(n) for side, n in bars if side == "dropped") == 50
