"""`curate classifier ...`: the quality classifier's commands (registered by curate/cli.py)."""

from __future__ import annotations


def add_subcommands(subparsers) -> None:
    from curate.classifiers.build_data_cli import add_build_data

    c = subparsers.add_parser("classifier", help="the Wikipedia-reference quality classifier: its data, training and evaluation")
    sub = c.add_subparsers(dest="classifier_command", required=True)
    add_build_data(sub)
