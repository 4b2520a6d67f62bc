"""bench_pipeline's job in NeMo Curator (run with NeMo Curator's own venv, not curate's):

    /work/nemo-venv/bin/python benchmarks/nemo_job.py --input-dir IN --output-dir OUT --workers 2 \
        --lid-model .../lid.176.ftz [--extractor same|nemo]

WARC (NeMo's CommonCrawlWarcIterator on local files) -> trafilatura -> fastText LID `en` >= 0.65 ->
Gopher repetition -> Gopher quality -> C4 (no terminal-punctuation rule) -> FineWeb -> PII (e-mail,
public IPv4) -> zstd Parquet, on a local Ray of `--workers` CPUs with NeMo's RayDataExecutor
(`--executor`: NeMo's default, Cosmos-Xenna, refuses streaming on few cores; see EXECUTORS). Where NeMo Curator ships a step it is used; where it ships none (C4's line
rules, FineWeb, PII) the smallest custom DocumentModifier / DocumentFilter does it, written here
from the rules' published definitions. `STEP_NOTES` lists every difference from datatrove's job;
the benchmark prints it.

Prints `job start <epoch>` first; the extractor writes `<output>/_first_doc.<pid>` with the epoch
of its first page, so the caller can time start-up as spawn until the first page is extracted.
"""

from __future__ import annotations

import time

print("job start", time.time(), flush=True)

import argparse  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import ray  # noqa: E402
from nemo_curator.backends.ray_data import RayDataExecutor  # noqa: E402
from nemo_curator.backends.xenna import XennaExecutor  # noqa: E402
import trafilatura  # noqa: E402
from nemo_curator.pipeline import Pipeline  # noqa: E402
from nemo_curator.stages.file_partitioning import FilePartitioningStage  # noqa: E402
from nemo_curator.stages.text.download import DocumentExtractor  # noqa: E402
from nemo_curator.stages.text.download.base.iterator import DocumentIterateExtractStage  # noqa: E402
from nemo_curator.stages.text.download.common_crawl.extract import CommonCrawlHTMLExtractor  # noqa: E402
from nemo_curator.stages.text.download.common_crawl.warc_iterator import CommonCrawlWarcIterator  # noqa: E402
from nemo_curator.stages.text.download.utils import decode_html  # noqa: E402
from nemo_curator.stages.text.filters.doc_filter import DocumentFilter  # noqa: E402
from nemo_curator.stages.text.filters.fasttext.fasttext_filters import FastTextLangId  # noqa: E402
from nemo_curator.stages.text.filters.heuristic import repetition as rep  # noqa: E402
from nemo_curator.stages.text.filters.heuristic import string as gq  # noqa: E402
from nemo_curator.stages.text.filters.score_filter import ScoreFilter  # noqa: E402
from nemo_curator.stages.text.io.writer.parquet import ParquetWriter  # noqa: E402
from nemo_curator.stages.text.modifiers.doc_modifier import DocumentModifier  # noqa: E402
from nemo_curator.stages.text.modifiers.modifier import Modify  # noqa: E402
from nemo_curator.stages.text.utils.constants import end_marks, policy_substrings  # noqa: E402

STEP_NOTES = {
    "read": "NeMo's CommonCrawlWarcIterator (warcio): every `response` record, no content-type check "
            "(datatrove: fastwarc, HTML payloads only)",
    "extract": "`same`: a 12-line DocumentExtractor calling trafilatura.extract(favor_precision=True, "
               "include_comments=False, deduplicate=False) on NeMo's decode_html, no timeout (NeMo has no "
               "per-page timeout; datatrove: 10 s). `nemo`: NeMo's own CommonCrawlHTMLExtractor('trafilatura'), "
               "which extracts only pages pycld2 calls a stop-list language, drops paragraphs under 0.32 "
               "stop-word density and joins paragraphs with blank lines. NeMo's text_cpu extra pins "
               "trafilatura==2.0.0; `make nemo-venv` puts curate's 2.3.1 on top (the version printed above)",
    "language": "NeMo's FastTextLangId(lid.176.ftz, min 0.65, 'en'): keeps score >= 0.65 (datatrove: > 0.65)",
    "gopher_repetition": "NeMo's RepeatedLines/Paragraphs(ByChar) 0.7/0.7/0.8/0.8 (= datatrove's 0.3/0.3/0.2/0.2 "
                         "as kept fractions), RepeatingTopNGrams 2/3/4 at 0.2/0.18/0.16, RepeatingDuplicateNGrams "
                         "5..10 at 0.15..0.10; words split on whitespace (datatrove: spaCy tokens without "
                         "punctuation), paragraphs split on '\\n\\n' (datatrove: '\\n{2,}')",
    "gopher_quality": "NeMo's WordCount 50..100000, MeanWordLength 3..10, SymbolsToWords 0.1, Bullets 0.9, "
                      "Ellipsis 0.3, WordsWithoutAlphabets 0.8, CommonEnglishWords 2 (the same 8 stop words); "
                      "whitespace words (datatrove: spaCy tokens)",
    "c4": "custom (NeMo has only BoilerPlateString, which drops policy paragraphs at the top/bottom only): "
          "per line drop words > 1000 chars, citations, < 3 words, 'javascript', policy phrases; drop the "
          "page on 'lorem ipsum' or '{' or < 5 sentences; sentences counted by a terminal-punctuation regex "
          "(datatrove: spaCy's sentencizer)",
    "fineweb": "custom (NeMo has none): line punctuation >= 0.12 with NeMo's end_marks (datatrove: its "
               "larger TERMINAL_PUNCTUATION set), short lines <= 30 chars at most 0.67, duplicate-line chars "
               "<= 0.01, newlines per whitespace word <= 0.3 (datatrove: per spaCy token)",
    "pii": "custom (NeMo 1.x has no PII modifier): e-mail regex to <EMAIL>, IPv4 with ipaddress.is_global "
           "to <IP> (datatrove: its own e-mail regex, IPv4 and IPv6)",
    "write": "NeMo's ParquetWriter, compression zstd, one file per input file",
}


class FirstPageStamp:
    """Writes `<stamp_dir>/_first_doc.<pid>` with the epoch of the first page this process extracts."""

    def __init__(self, stamp_dir: str):
        self.stamp_dir = stamp_dir
        self._stamped = False

    def stamp(self) -> None:
        if not self._stamped:
            Path(self.stamp_dir, f"_first_doc.{os.getpid()}").write_text(str(time.time()))
            self._stamped = True


class Trafilatura(DocumentExtractor):
    """trafilatura on every page as datatrove calls it."""

    def __init__(self, stamp_dir: str):
        self.first_page = FirstPageStamp(stamp_dir)

    def extract(self, record: dict[str, Any]) -> dict[str, Any] | None:
        self.first_page.stamp()
        html = decode_html(record["content"]) if record.get("content") else None
        text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=False) if html else None
        if not text:
            return None
        return {"url": record["url"], "warc_id": record["warc_id"], "source_id": record["source_id"], "text": text}

    def input_columns(self) -> list[str]:
        return ["url", "warc_id", "source_id", "content"]

    def output_columns(self) -> list[str]:
        return ["url", "warc_id", "source_id", "text"]


class StampedNemoExtractor(CommonCrawlHTMLExtractor):
    """NeMo's own Common Crawl extractor, with the same first-page stamp."""

    def __init__(self, stamp_dir: str):
        super().__init__("trafilatura", {"favor_precision": True, "include_comments": False, "deduplicate": False})
        self.first_page = FirstPageStamp(stamp_dir)

    def extract(self, record: dict[str, Any]) -> dict[str, Any] | None:
        self.first_page.stamp()
        return super().extract(record)


_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


class C4Lines(DocumentModifier):
    """C4's line rules without the terminal-punctuation one; an emptied text marks a dropped page."""

    def modify_document(self, text: str) -> str:
        kept, sentences = [], 0
        for raw in text.splitlines():
            line = raw.strip()
            words = line.split()
            if any(len(w) > 1000 for w in words):
                continue
            line = _CITATION.sub("", line)
            if len(words) < 3:
                continue
            lower = line.lower()
            if "lorem ipsum" in lower or "{" in line:
                return ""
            if "javascript" in lower or any(p in lower for p in policy_substrings):
                continue
            # A line without terminal punctuation still counts as one sentence.
            sentences += max(1, len(_SENTENCE_END.findall(line)))
            kept.append(line)
        return "\n".join(kept).strip() if sentences >= 5 else ""


class NonEmpty(DocumentFilter):
    def score_document(self, text: str) -> float:
        return float(bool(text and text.strip()))

    def keep_document(self, score: float) -> bool:
        return score > 0


class FineWeb(DocumentFilter):
    """FineWeb's four line rules with their published thresholds."""

    def score_document(self, text: str) -> float:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return 0.0
        if sum(line.endswith(end_marks) for line in lines) / len(lines) < 0.12:
            return 0.0
        if sum(len(line) <= 30 for line in lines) / len(lines) > 0.67:
            return 0.0
        seen, dup_chars = set(), 0
        for line in lines:
            if line in seen:
                dup_chars += len(line)
            seen.add(line)
        if dup_chars / max(len(text.replace("\n", "")), 1) > 0.01:
            return 0.0
        return float(text.count("\n") / max(len(text.split()), 1) <= 0.3)

    def keep_document(self, score: float) -> bool:
        return score > 0


_EMAIL = re.compile(r"\b[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def _public_ip(match: re.Match) -> str:
    try:
        return "<IP>" if ipaddress.ip_address(match.group(0)).is_global else match.group(0)
    except ValueError:
        return match.group(0)


class Pii(DocumentModifier):
    def modify_document(self, text: str) -> str:
        return _IPV4.sub(_public_ip, _EMAIL.sub("<EMAIL>", text))


def gopher_repetition() -> list[DocumentFilter]:
    return [rep.RepeatedLinesFilter(0.7), rep.RepeatedParagraphsFilter(0.7), rep.RepeatedLinesByCharFilter(0.8),
            rep.RepeatedParagraphsByCharFilter(0.8),
            *(rep.RepeatingTopNGramsFilter(n, r) for n, r in ((2, 0.2), (3, 0.18), (4, 0.16))),
            *(rep.RepeatingDuplicateNGramsFilter(n, r) for n, r in zip(range(5, 11), (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)))]


def gopher_quality() -> list[DocumentFilter]:
    return [gq.WordCountFilter(50, 100000), gq.MeanWordLengthFilter(3, 10), gq.SymbolsToWordsFilter(0.1),
            gq.BulletsFilter(0.9), gq.EllipsisFilter(0.3), gq.WordsWithoutAlphabetsFilter(0.8),
            gq.CommonEnglishWordsFilter(2)]


def build(input_dir: str, output_dir: str, lid_model: str, extractor: str) -> Pipeline:
    stamp = StampedNemoExtractor(output_dir) if extractor == "nemo" else Trafilatura(output_dir)
    stages = [
        FilePartitioningStage(file_paths=input_dir, files_per_partition=1, file_extensions=[".gz"]),  # NeMo matches the last suffix only
        DocumentIterateExtractStage(iterator=CommonCrawlWarcIterator(), extractor=stamp, add_filename_column=False),
        # verbose: each filter logs "<name> batch <id> retained <kept>/<in> rows", the per-step drop counts
        # (with_ names the stage: ScoreFilter derives its own name from its filters).
        ScoreFilter(FastTextLangId(model_path=lid_model, min_langid_score=0.65, lang="en"), verbose=True).with_(name="language"),
        ScoreFilter(gopher_repetition(), verbose=True).with_(name="gopher_repetition"),
        ScoreFilter(gopher_quality(), verbose=True).with_(name="gopher_quality"),
        Modify(C4Lines()).with_(name="c4_lines"),
        ScoreFilter(NonEmpty(), verbose=True).with_(name="c4"),
        ScoreFilter(FineWeb(), verbose=True).with_(name="fineweb"),
        Modify(Pii()).with_(name="pii"),
        ParquetWriter(path=str(Path(output_dir, "parquet")), write_kwargs={"compression": "zstd"}),
    ]
    return Pipeline(name="bench_pipeline", stages=stages)


# Xenna's streaming mode (NeMo's default) needs a CPU per stage at once (9.5 here), so on a few cores
# it refuses to start and suggests batch mode: one stage after another, each on every core.
EXECUTORS = {
    # Its progress log asks Ray's state API (the dashboard) for actors and fails the run when the
    # dashboard does not answer, as on a loaded machine; a log interval past the run asks only once.
    "xenna-batch": ("NeMo's default XennaExecutor in batch mode (streaming refuses: it needs one CPU per stage, "
                    "9.5 for this job); progress log off", lambda: XennaExecutor({"execution_mode": "batch", "logging_interval": 10**9})),
    "xenna-streaming": ("XennaExecutor, streaming (NeMo's default; needs >= 10 CPUs for this job)", XennaExecutor),
    "ray-data": ("NeMo's RayDataExecutor: Ray Data streams the stages, fusing the ones without a model "
                 "into one task", RayDataExecutor),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input-dir", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lid-model", required=True)
    ap.add_argument("--extractor", choices=["same", "nemo"], default="same")
    ap.add_argument("--executor", choices=sorted(EXECUTORS), default="ray-data")
    args = ap.parse_args()
    os.setsid()  # a session of its own: see end_leftovers
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    print("versions:", json.dumps({name: version(name) for name in ("nemo-curator", "cosmos-xenna", "ray", "trafilatura", "torch")}),
          flush=True)
    notes = dict(STEP_NOTES, executor=f"{args.executor}: {EXECUTORS[args.executor][0]}; local Ray, num_cpus={args.workers}",
                 extract_mode=args.extractor)
    print("settings:", json.dumps(notes), flush=True)
    pipeline = build(args.input_dir, args.output_dir, args.lid_model, args.extractor)
    # A local Ray of exactly --workers CPUs; the executor's own ray.init then joins it.
    # Xenna lists actors through Ray's state API, which the dashboard serves; Ray Data needs no dashboard.
    # RAY_ADDRESS: NeMo's and Xenna's own ray.init calls and state queries find this Ray, not
    # another one running on the machine.
    context = ray.init(num_cpus=args.workers, include_dashboard=args.executor.startswith("xenna"))
    os.environ["RAY_ADDRESS"] = context.address_info["gcs_address"]
    try:
        pipeline.run(EXECUTORS[args.executor][1]())
    finally:
        end_leftovers()
    print("job end", time.time(), flush=True)


def end_leftovers() -> None:
    """Xenna leaves some of its Ray actors (NodeResourceMonitor, a StageWorker) running after
    ray.shutdown(); this job leads its own session, so they are the session's other processes."""
    sid = os.getsid(0)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.getsid(int(entry.name)) == sid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue


if __name__ == "__main__":
    main()
