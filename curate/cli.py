"""`curate run CONFIG`, `curate stats OUTPUT`, `curate train CONFIG`, `curate generate MODEL_DIR`,
`curate classifier ...`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from curate import __version__

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _short_reason(reason: str) -> str:
    """Under its stage's row the namespace is implied: `lang:zh` -> `zh`,
    `error:warc:truncated_record` -> `error:truncated_record`."""
    head, _, rest = reason.partition(":")
    if head == "error":
        return "error:" + rest.rpartition(":")[2] if rest else reason
    return rest or reason


def _print_funnel(console, stats: dict) -> None:
    """The funnel as a table that fits 80 columns (a log file, CI) without cutting a reason:
    one reason per line, folded if it is longer than its column."""
    from rich import box
    from rich.table import Table

    t = Table(title=f"funnel: {stats['read']:,} read -> {stats['kept']:,} kept, {stats['rejected']:,} rejected, "
                    f"{stats['errored']:,} errored", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("stage", "left"), ("in", "right"), ("dropped", "right"), ("%", "right"), ("s", "right")):
        t.add_column(col, justify=justify, no_wrap=True)
    t.add_column("top reasons", overflow="fold", ratio=1, min_width=24)
    for f in stats["funnel"]:
        dropped = f["in"] - f["kept"]
        top = [f"{_short_reason(r)} {n:,}" for r, n in list(f["dropped"].items())[:3]]
        more = len(f["dropped"]) - 3
        if more > 0:
            top.append(f"(+{more} more)")
        pct = f"{100 * dropped / f['in']:.1f}" if f["in"] else ""
        secs = f.get("seconds")
        t.add_row(f["stage"], f"{f['in']:,}", f"{dropped:,}", pct,
                  f"{secs:.1f}" if isinstance(secs, (int, float)) else "", "\n".join(top))
    console.print(t)


def _within_failure_budget(console, stats: dict, max_fraction: float) -> bool:
    """Show every input that failed for good; False when they are more than the budget allows."""
    failed, total = stats.get("failed_inputs", []), stats["inputs"]
    if not failed:
        return True
    console.print(f"{len(failed)} of {total} inputs failed:")
    for f in failed:
        console.print(f"  {f['uri']}: {f['error']}" + (f" ({f['detail'][:160]})" if f.get("detail") else ""), markup=False)
    if len(failed) <= max_fraction * total:
        return True
    console.print(f"[red]run failed: {len(failed)} of {total} inputs failed for good, more than "
                  f"input.max_failed_fraction ({max_fraction:g}) allows[/red]")
    return False


def cmd_run(args: argparse.Namespace) -> int:
    from curate import session
    from curate.config import ConfigError, load_config
    console = _console()
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        console.print(f"[red]{args.config}: {err}[/red]", soft_wrap=True)
        return 2
    if args.output:
        cfg.output.path = args.output
    from curate.preflight import PreflightError, check

    try:
        check(cfg)
    except PreflightError as err:
        console.print(f"[red]{args.config}: {err}[/red]", soft_wrap=True)
        return 2
    try:
        sess = session.start(cfg.ray)
    except ValueError as err:
        console.print(f"[red]{err}[/red]")
        return 2
    console.print(sess.banner())
    import ray.data

    from curate.pipeline.runner import Runner
    from curate.pipeline.sources import InputError
    from curate.pipeline.storage import join

    # Our own progress lines say what a user needs; Ray Data's per-operator bars (and its INFO
    # log of every execution plan) live in the dashboard instead of cluttering the terminal.
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled": on purpose
    try:
        result = Runner(cfg, progress=not args.no_progress, console=console).run(sess.num_cpus, sess.dashboard_url)
    except InputError as err:
        console.print(f"[red]{err}[/red]")
        return 2
    _print_funnel(console, result.stats)
    console.print(f"{result.manifest['rows']:,} documents in {len(result.manifest['shards'])} shards: {join(str(result.output), 'shards')}")
    console.print(f"report: {join(str(result.output), 'report.html')} (and report.md, funnel.png)", soft_wrap=True)
    if not _within_failure_budget(console, result.stats, cfg.input.max_failed_fraction):
        return 1
    if cfg.train is not None and not args.no_train:
        from curate.train import run_training

        model_dir = run_training(cfg)
        console.print(f"trained model: {model_dir}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from curate.pipeline.report_html import write_html
    from curate.pipeline.storage import Storage, join

    # No config here: an object store is reached through its client's usual chain (env, profile,
    # role; AWS_ENDPOINT_URL for an S3-compatible one).
    storage = Storage()
    stats = storage.read_json(join(args.output, "stats.json"))
    console = _console()
    _print_funnel(console, stats)
    manifest = storage.read_json(join(args.output, "manifest.json"))
    console.print(f"report: {write_html(args.output, stats, manifest, storage)}", soft_wrap=True)
    return 0


def cmd_fetch_example(args: argparse.Namespace) -> int:
    from curate.pipeline.example_data import fetch_example
    from curate.pipeline.sources import InputError, TransferError

    try:
        path = fetch_example(Path(args.cache), crawl=args.crawl, records=args.records, seed=args.seed)
    except (InputError, TransferError, OSError) as err:
        _console().print(f"[red]cannot fetch the example records: {err}[/red]", soft_wrap=True)
        return 1
    _console().print(f"example records: {path}", soft_wrap=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="Pretraining-data curation on Ray: WARCs in, Parquet shards and a model out.")
    p.add_argument("--version", action="version", version=f"curate {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="curate the inputs of CONFIG into shards (and train if it has a train: section)")
    r.add_argument("config", help="YAML run config, e.g. examples/sample.yaml")
    r.add_argument("--output", help="override output.path")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    r.add_argument("--no-train", action="store_true", help="skip the train: section")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("stats", help="print the funnel of a finished run")
    s.add_argument("output", help="the run's output folder or URL (s3://...)")
    s.set_defaults(func=cmd_stats)
    f = sub.add_parser("fetch-example", help="fetch a few hundred real Common Crawl records for the example (once, cached)")
    f.add_argument("--cache", default=".cache/example", help="folder for the sample WARC")
    f.add_argument("--crawl", default="CC-MAIN-2024-22")
    f.add_argument("--records", type=int, default=300)
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_fetch_example)
    from curate.classifiers.cli import add_subcommands as add_classifier_subcommands

    add_classifier_subcommands(sub)
    from curate.classifiers.topics_head import add_subcommands as add_topics_subcommands

    add_topics_subcommands(sub)
    try:
        from curate.train.cli import add_subcommands
    except ImportError:  # pragma: no cover -- torch missing in a slim install
        pass
    else:
        add_subcommands(sub)
        from curate.train.mix_search import add_subcommands as add_mix_subcommands

        add_mix_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("CURATE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # One line, not Ray's and our tracebacks; a second Ctrl-C must not interrupt the shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
