"""report.html: one self-contained page (inline SVG drawn by inline JS, no network asset) with
what a run did: the funnel, drops by reason per stage, the language mix and score histograms of
the kept rows, duplicate cluster sizes, the mixture (before/after when a stage reweighted it),
shard sizes, time per stage and the inputs that failed.

Everything comes from the output folder (stats.json, manifest.json and single columns of the
shards), so `curate stats OUTPUT` renders the same page for any finished run.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import schema
from curate.pipeline.storage import LOCAL, Storage, join

BINS = 20
# Float columns of the kept rows drawn as histograms (those present in the shards).
_NOT_SCORES = {schema.WARC_OFFSET, schema.HTML_BYTES, schema.MINHASH_CLUSTER}


def _shard_files(out: str, manifest: dict, storage: Storage) -> list[pq.ParquetFile]:
    paths = [join(str(out), s["path"]) for s in manifest.get("shards", [])]
    return [pq.ParquetFile(storage.open(p)) for p in paths if storage.exists(p)]


def _columns(files: list[pq.ParquetFile], wanted: list[str]) -> dict[str, pa.ChunkedArray]:
    """Only these columns of the kept rows (never their text)."""
    if not files:
        return {}
    names = set(files[0].schema_arrow.names)
    cols = [c for c in wanted if c in names]
    if not cols:
        return {}
    table = pa.concat_tables([f.read(columns=cols) for f in files])
    return {c: table.column(c) for c in cols}


def _score_columns(files: list[pq.ParquetFile]) -> list[str]:
    if not files:
        return []
    return [f.name for f in files[0].schema_arrow if pa.types.is_floating(f.type) and f.name not in _NOT_SCORES]


def _histogram(values: pa.ChunkedArray) -> dict[str, Any] | None:
    arr = values.drop_null().to_numpy()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    counts, edges = np.histogram(arr, bins=BINS, range=(lo, hi if hi > lo else lo + 1))
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist(), "n": int(arr.size)}


def report_data(out: Path | str, stats: dict, manifest: dict, storage: Storage = LOCAL) -> dict[str, Any]:
    files = _shard_files(str(out), manifest, storage)
    scores = _score_columns(files)
    cols = _columns(files, [schema.LANG, *scores])
    langs = Counter()
    if schema.LANG in cols:
        langs = Counter({r["values"] or "none": r["counts"] for r in cols[schema.LANG].value_counts().to_pylist()})
    clusters = {name: g["cluster_size_histogram"] for name, g in stats.get("global", {}).items()
                if isinstance(g, dict) and "cluster_size_histogram" in g}
    mixture = manifest.get("mixture") or {}
    return {
        "title": f"curate run: {stats['read']:,} read, {stats['kept']:,} kept",
        "totals": {k: stats.get(k, 0) for k in ("read", "kept", "rejected", "errored", "inputs")},
        "funnel": [{"stage": f["stage"], "in": f["in"], "kept": f["kept"], "dropped": f["dropped"],
                    "seconds": f.get("seconds")} for f in stats["funnel"]],
        "languages": dict(langs.most_common(30)),
        "scores": {c: h for c in scores if (h := _histogram(cols[c])) is not None},
        "classifier_scores": stats.get("score_histograms", {}),
        "clusters": clusters,
        "mixture": {k: v for k, v in mixture.items() if k in ("column", "weights", "before", "after")},
        "shards": [{"path": s["path"], "rows": s["rows"], "bytes": s.get("bytes", 0)} for s in manifest.get("shards", [])],
        "seconds": stats.get("seconds_this_invocation", {}),
        "failed_inputs": stats.get("failed_inputs", []),
        "file_errors": stats.get("file_errors", {}),
        "ids_made_distinct": stats.get("ids_made_distinct", 0),
    }


def render(data: dict[str, Any]) -> str:
    # `</` is escaped so no value (a URL, a MIME type from a server) can close the script tag.
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    return _PAGE.replace("%TITLE%", html.escape(data["title"])).replace("%DATA%", payload)


def write_html(out: Path | str, stats: dict, manifest: dict, storage: Storage = LOCAL) -> str:
    path = join(str(out), "report.html")
    storage.write_text(path, render(report_data(out, stats, manifest, storage)))
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%TITLE%</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:#f4f6fa;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
svg{max-width:100%;height:auto} svg text{font-size:11px;fill:#333} .muted{color:#777} table{border-collapse:collapse} td,th{padding:2px 10px;text-align:left}
#errors{color:#b00}
</style></head><body>
<h1 id="title"></h1><div class="cards" id="cards"></div>
<h2>Funnel</h2><div id="funnel"></div>
<h2>Drops by reason, per stage</h2><div class="grid" id="reasons"></div>
<h2>Languages of the kept documents</h2><div id="languages"></div>
<h2>Classifier scores: kept and dropped documents</h2><div class="grid" id="classifier"></div>
<h2>Score histograms (kept documents)</h2><div class="grid" id="scores"></div>
<h2>Duplicate cluster sizes</h2><div class="grid" id="clusters"></div>
<h2>Mixture</h2><div id="mixture"></div>
<h2>Shard sizes</h2><div id="shards"></div>
<h2>Time per stage</h2><div id="time"></div>
<h2>Failed inputs</h2><div id="failed"></div>
<div id="errors"></div>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
window.onerror = function (msg) { document.getElementById("errors").textContent += "error: " + msg + "\\n"; };
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#3b7dd8", "#e07b39", "#4caf50", "#9c27b0", "#e91e63", "#00acc1", "#8d6e63", "#fbc02d"];
function el(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function fmt(n) { return typeof n === "number" ? n.toLocaleString("en-US", {maximumFractionDigits: 2}) : String(n); }
function note(id, text) { const p = document.createElement("p"); p.className = "muted"; p.textContent = text; document.getElementById(id).appendChild(p); }
function svgIn(id, w, h, name) {
  const box = document.createElement("div"); document.getElementById(id).appendChild(box);
  if (name) { const t = document.createElement("div"); t.textContent = name; t.style.fontWeight = "600"; box.appendChild(t); }
  return el("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, "data-chart": id}, box);
}
// Horizontal bars: rows of [label, [segment values...]] with a shared scale.
function hbars(id, rows, opts) {
  opts = opts || {};
  if (!rows.length) { note(id, opts.empty || "nothing to show"); return; }
  const labelW = opts.labelW || 200, w = opts.width || 760, rowH = 20, valueW = 90;
  const svg = svgIn(id, w, rows.length * rowH + 24, opts.name);
  const max = Math.max(1, ...rows.map(r => r[1].reduce((a, b) => a + b, 0)));
  const scale = (w - labelW - valueW) / max;
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    el("text", {x: labelW - 6, y: y + 13, "text-anchor": "end"}, svg, r[0].length > 34 ? r[0].slice(0, 33) + "…" : r[0]);
    let x = labelW;
    r[1].forEach((v, k) => {
      const rect = el("rect", {x: x, y: y, width: Math.max(v > 0 ? 1 : 0, v * scale), height: rowH - 6,
                               fill: (opts.colors || COLORS)[k % COLORS.length]}, svg);
      el("title", {}, rect, r[0] + ": " + fmt(v) + (opts.segments ? " " + opts.segments[k] : ""));
      x += v * scale;
    });
    el("text", {x: x + 4, y: y + 13}, svg, opts.value ? opts.value(r) : fmt(r[1].reduce((a, b) => a + b, 0)));
  });
  if (opts.segments) opts.segments.forEach((s, k) => {
    el("rect", {x: labelW + k * 110, y: rows.length * rowH + 10, width: 10, height: 10, fill: COLORS[k]}, svg);
    el("text", {x: labelW + k * 110 + 14, y: rows.length * rowH + 19}, svg, s);
  });
}
// Vertical histogram of {edges, counts}.
function histogram(id, name, h) {
  const w = 340, ht = 170, pad = 28, svg = svgIn(id, w, ht + 34, name + " (n=" + fmt(h.n) + ")");
  const max = Math.max(1, ...h.counts), bw = (w - 2 * pad) / h.counts.length;
  h.counts.forEach((c, i) => {
    const bh = c / max * ht;
    const r = el("rect", {x: pad + i * bw, y: ht - bh + 4, width: Math.max(1, bw - 1), height: bh, fill: COLORS[0]}, svg);
    el("title", {}, r, h.edges[i] + " – " + h.edges[i + 1] + ": " + c);
  });
  el("text", {x: pad, y: ht + 20}, svg, fmt(h.edges[0]));
  el("text", {x: w - pad, y: ht + 20, "text-anchor": "end"}, svg, fmt(h.edges[h.edges.length - 1]));
}
// Kept and dropped counts per bin of {edges, kept, dropped}, side by side in each bin.
function keptDropped(id, name, h) {
  const sum = a => a.reduce((x, y) => x + y, 0);
  const w = 340, ht = 170, pad = 28, svg = svgIn(id, w, ht + 50, name);
  const max = Math.max(1, ...h.kept, ...h.dropped), bw = (w - 2 * pad) / h.kept.length;
  [h.kept, h.dropped].forEach((counts, s) => counts.forEach((c, i) => {
    const bh = c / max * ht;
    const r = el("rect", {x: pad + i * bw + s * bw / 2, y: ht - bh + 4, width: Math.max(1, bw / 2 - 1), height: bh, fill: COLORS[s]}, svg);
    el("title", {}, r, ["kept", "dropped"][s] + " " + h.edges[i] + " – " + h.edges[i + 1] + ": " + c);
  }));
  el("text", {x: pad, y: ht + 20}, svg, fmt(h.edges[0]));
  el("text", {x: w - pad, y: ht + 20, "text-anchor": "end"}, svg, fmt(h.edges[h.edges.length - 1]));
  ["kept " + fmt(sum(h.kept)), "dropped after scoring " + fmt(sum(h.dropped))].forEach((label, s) => {
    el("rect", {x: pad + s * 120, y: ht + 32, width: 10, height: 10, fill: COLORS[s]}, svg);
    el("text", {x: pad + s * 120 + 14, y: ht + 41}, svg, label);
  });
}
function table(id, head, rows) {
  const t = document.createElement("table"), tr = t.insertRow();
  head.forEach(h => { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); });
  rows.forEach(r => { const row = t.insertRow(); r.forEach(v => { row.insertCell().textContent = fmt(v); }); });
  document.getElementById(id).appendChild(t);
}

document.getElementById("title").textContent = D.title;
for (const k in D.totals) {
  const c = document.createElement("div"); c.className = "card";
  const b = document.createElement("b"); b.textContent = fmt(D.totals[k]); c.appendChild(b);
  c.appendChild(document.createTextNode(k)); document.getElementById("cards").appendChild(c);
}
hbars("funnel", D.funnel.map(f => [f.stage, [f.kept, f.in - f.kept]]),
      {segments: ["kept", "dropped here"], value: r => fmt(r[1][0]) + " kept"});
D.funnel.filter(f => Object.keys(f.dropped).length).forEach(f =>
  hbars("reasons", Object.entries(f.dropped).slice(0, 12).map(([r, n]) => [r, [n]]), {name: f.stage, width: 520, labelW: 230}));
if (!document.getElementById("reasons").children.length) note("reasons", "no stage dropped anything");
hbars("languages", Object.entries(D.languages).map(([l, n]) => [l, [n]]), {empty: "no language column in the shards"});
Object.entries(D.classifier_scores).forEach(([c, h]) => keptDropped("classifier", c, h));
if (!Object.keys(D.classifier_scores).length) note("classifier", "no classifier scored this run");
Object.entries(D.scores).forEach(([c, h]) => histogram("scores", c, h));
if (!Object.keys(D.scores).length) note("scores", "no score columns in the shards");
Object.entries(D.clusters).forEach(([stage, hist]) =>
  hbars("clusters", Object.entries(hist).map(([size, n]) => ["size " + size, [n]]),
        {name: stage, width: 520, labelW: 90, empty: stage + ": no near-duplicate clusters"}));
if (!Object.keys(D.clusters).length) note("clusters", "no fuzzy dedup stage ran");
const mix = D.mixture, col = mix.column || "domain";
if (mix.before && mix.after) {
  const keys = Object.keys(Object.assign({}, mix.before, mix.after)).sort((a, b) => (mix.after[b] || 0) - (mix.after[a] || 0)).slice(0, 25);
  hbars("mixture", keys.map(k => [k, [mix.before[k] || 0, mix.after[k] || 0]]), {name: col + ": before / after", segments: ["before", "after"]});
} else if (mix.weights) {
  const top = Object.entries(mix.weights).sort((a, b) => b[1] - a[1]).slice(0, 25);
  hbars("mixture", top.map(([k, v]) => [k, [v]]), {name: col + " (share of kept tokens)"});
} else note("mixture", "no mixture in the manifest");
hbars("shards", D.shards.map(s => [s.path, [s.rows]]), {value: r => fmt(r[1][0]) + " rows", empty: "no shards"});
hbars("time", D.funnel.filter(f => typeof f.seconds === "number").map(f => [f.stage, [f.seconds]]), {value: r => fmt(r[1][0]) + " s"});
if (D.failed_inputs.length) table("failed", ["input", "error", "detail"], D.failed_inputs.map(f => [f.uri, f.error, f.detail || ""]));
else note("failed", "none" + (Object.keys(D.file_errors).length ? " (file errors: " + JSON.stringify(D.file_errors) + ")" : ""));
document.body.setAttribute("data-charts-drawn", document.querySelectorAll("svg[data-chart]").length);
</script></body></html>
"""
