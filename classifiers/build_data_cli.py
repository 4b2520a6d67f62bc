"""`curate classifier build-data CONFIG` (the `classifier` group in classifiers/cli.py adds it)."""

from __future__ import annotations

import argparse


def add_build_data(sub) -> None:
    """Register `build-data` in the `classifier` group's subparsers."""
    b = sub.add_parser("build-data", help="labelled texts: pages Wikipedia cites (by CC index + HTTP Range) vs random pages of the crawl")
    b.add_argument("config", help="YAML with positives:, common_crawl:, output: (see examples/classifier-data.yaml)")
    b.add_argument("--fresh", action="store_true", help="forget finished chunks and the URL sample, build again")
    b.set_defaults(func=build_data_command)


def build_data_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from curate import session
    from curate.classifiers.build_data import DataBuilder, load_build_config, remove_work
    from curate.classifiers.externallinks import SqlDumpError
    from curate.config import ConfigError
    from curate.pipeline.sources import InputError

    console = Console(highlight=False)
    try:  # a bad config, an unreadable input or listing: one red line, no traceback
        cfg = load_build_config(args.config)
        if args.fresh:
            remove_work(cfg.output.path)
        sess = session.start(cfg.ray)
        console.print(sess.banner())
        result = DataBuilder(cfg, say=console.print).run()
    except (ConfigError, InputError, SqlDumpError, FileNotFoundError) as err:
        console.print(f"[red]{args.config}: {err}[/red]")
        return 2
    table = Table(title=f"{result.rows:,} labelled texts: {result.output / 'data.parquet'}", title_justify="left")
    for col in ("class", "asked", "found", "fetched", "after each step", "kept", "faults"):
        table.add_column(col, justify="left" if col in ("class", "after each step", "faults") else "right")
    for name in ("positives", "negatives"):
        c = result.counts.get(name, {})
        steps = " > ".join(f"{k} {v}" for k, v in c.get("steps", {}).items())
        faults = ", ".join(f"{k} {v}" for k, v in c.get("faults", {}).items())
        table.add_row(name, str(c.get("asked", 0)), str(c.get("found", 0)), str(c.get("fetched", 0)), steps,
                      str(c.get("kept", 0)), faults)
    console.print(table)
    console.print(f"counts: {result.output / 'counts.json'} ({result.chunks_run} chunks run, {result.chunks_reused} reused)")
    return 0
