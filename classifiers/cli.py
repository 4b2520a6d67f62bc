"""`curate classifier build-data | train | eval | build-default` (registered by curate/cli.py)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEFAULT_MODEL_NAME = "wiki_quality"


def _train_settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from curate.classifiers.config import FastTextTrainConfig

    given = {k: v for k, v in vars(args).items() if k in FastTextTrainConfig.model_fields and v is not None}
    try:
        return FastTextTrainConfig.model_validate(given)
    except ValidationError as err:
        raise SystemExit(f"invalid classifier settings:\n{err}") from None


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    from curate.classifiers.config import FastTextTrainConfig

    for name, field in FastTextTrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if name == "train_only_domains":
            p.add_argument(flag, dest=name, nargs="*", help=field.description)
        else:
            p.add_argument(flag, dest=name, type=type(field.default), help=f"{field.description or name} (default {field.default})")


# The search `build-default` runs by cross-validation on its training side (README): how much of
# the one big positive site (wikipedia.org, ~800 rows) the model sees. Small, since a fold trains
# for ~1 min on 2 shared cores; character n-grams (minn/maxn) are left out of it because with them
# a fold took ~5 min (quantization retraining the subwords) and scoring gets slower.
DEFAULT_CV_GRID = ("max_rows_per_domain=0,100,200",)
DEFAULT_CV_FOLDS = 4


def parse_grid(specs: list[str]) -> dict[str, list]:
    """`field=v1,v2` specs -> {field: [values]} typed by FastTextTrainConfig; errors name the field."""
    from curate.classifiers.config import FastTextTrainConfig

    grid: dict[str, list] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        field = FastTextTrainConfig.model_fields.get(name.strip())
        if field is None or not values or name.strip() == "train_only_domains":
            raise SystemExit(f"--grid {spec!r}: expected FIELD=V1,V2,... with FIELD a single-valued training setting "
                             f"({', '.join(n for n in FastTextTrainConfig.model_fields if n != 'train_only_domains')})")
        kind = type(field.default)
        parse = (lambda v: v.strip().lower() in ("1", "true", "yes")) if kind is bool else kind
        grid[name.strip()] = [parse(v) for v in values.split(",")]
    return grid


def _print_eval(evaluation: dict, out: Path) -> None:
    s = evaluation["split"]
    print(f"split by domain: {s['train_rows']} training rows ({s['train_domains']} domains, {s['train_positives']} positive), "
          f"{s['held_out_rows']} held-out rows ({s['held_out_domains']} domains)")
    for kind in ("bin", "ftz"):
        m = evaluation["held_out"][kind]
        print(f"held-out {kind}: ROC AUC {m['roc_auc']:.4f}  P {m['precision']:.4f}  R {m['recall']:.4f}  F1 {m['f1']:.4f}  "
              f"(n={m['n']}: {m['positives']} pos / {m['negatives']} neg, threshold {m['threshold']})")
    print(f"model sizes: .bin {evaluation['model_bytes']['bin']:,} B, .ftz {evaluation['model_bytes']['ftz']:,} B; "
          f"evaluation: {out / 'eval.json'}, histograms: {out / 'eval.png'}")


def train_command(args: argparse.Namespace) -> int:
    from curate.classifiers.model import read_labelled, train_classifier

    cfg = _train_settings(args)
    result = train_classifier(read_labelled(args.data), args.out, cfg, args.name)
    _print_eval(result.evaluation, Path(args.out))
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from curate.classifiers.model import evaluate_model, plot_histograms, read_labelled

    cfg = _train_settings(args)
    metrics = evaluate_model(args.model, read_labelled(args.data), cfg)
    out = Path(args.out) if args.out else Path(args.model).with_suffix(".eval.json")
    out.write_text(json.dumps(metrics, indent=2))
    plot_histograms(metrics, out.with_suffix(".png"), Path(args.model).name)
    print(f"ROC AUC {metrics['roc_auc']:.4f}  P {metrics['precision']:.4f}  R {metrics['recall']:.4f}  F1 {metrics['f1']:.4f}  "
          f"(n={metrics['n']}: {metrics['positives']} pos / {metrics['negatives']} neg) -> {out}")
    return 0


def _select(table, base, grid_specs: list[str], folds: int, out: Path | None):
    """The settings chosen by domain-grouped cross-validation on the training side, and the
    selection's record (written to `out` when given)."""
    from curate.classifiers.model import select_by_cv

    grid = parse_grid(grid_specs)
    print(f"model selection: {folds}-fold cross-validation by domain on the training side, grid {grid}")
    best, results = select_by_cv(table, base, grid, folds)
    record = {"folds": folds, "grid": grid, "chosen": {k: getattr(best, k) for k in grid}, "results": results}
    print(f"chosen: {record['chosen']} (mean fold ROC AUC {results[0]['mean_roc_auc']:.4f} ± {results[0]['sd_roc_auc']:.4f})")
    if out:
        out.write_text(json.dumps(record, indent=2))
    return best, record


def cv_command(args: argparse.Namespace) -> int:
    from curate.classifiers.model import read_labelled

    _select(read_labelled(args.data), _train_settings(args), args.grid or [], args.folds, Path(args.out) if args.out else None)
    return 0


def build_default_command(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from curate.classifiers.config import FastTextTrainConfig
    from curate.classifiers.default_data import WIKIPEDIA_DOMAIN, build_default_set
    from curate.classifiers.model import train_classifier

    out = Path(args.out)
    work = Path(args.work) if args.work else out / "build"
    work.mkdir(parents=True, exist_ok=True)
    if args.labelled:  # a set an earlier build-default wrote: skips the ~2 min of extraction
        table = pq.read_table(args.labelled)
        counts = json.loads((Path(args.labelled).parent / "labelled-counts.json").read_text())
    else:
        print(f"building the labelled set from {args.shared_data} ...")
        table, counts = build_default_set(args.shared_data)
        pq.write_table(table, work / "labelled.parquet")
        (work / "labelled-counts.json").write_text(json.dumps(counts, indent=2))
    print("labelled set: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    cfg = FastTextTrainConfig(train_only_domains=[WIKIPEDIA_DOMAIN], held_out_fraction=args.held_out_fraction, seed=args.seed)
    selection = None
    if args.folds:  # chosen before the held-out side is ever scored
        cfg, selection = _select(table, cfg, args.grid or list(DEFAULT_CV_GRID), args.folds, work / "model-selection.json")
    result = train_classifier(table, work, cfg, DEFAULT_MODEL_NAME)
    result.evaluation["labelled_set"] = counts
    result.evaluation["model_selection"] = selection
    result.eval_path.write_text(json.dumps(result.evaluation, indent=2))
    # The package ships the quantized model and its evaluation; the .bin stays in the work folder.
    shutil.copyfile(result.ftz_path, out / f"{DEFAULT_MODEL_NAME}.ftz")
    shutil.copyfile(result.eval_path, out / f"{DEFAULT_MODEL_NAME}.eval.json")
    shutil.copyfile(work / "eval.png", out / f"{DEFAULT_MODEL_NAME}.eval.png")
    _print_eval(result.evaluation, work)
    print(f"shipped: {out / (DEFAULT_MODEL_NAME + '.ftz')}")
    return 0


def add_subcommands(subparsers) -> None:
    from curate.classifiers.build_data_cli import add_build_data

    c = subparsers.add_parser("classifier", help="the quality classifiers: their data, training and evaluation")
    sub = c.add_subparsers(dest="classifier_command", required=True)
    add_build_data(sub)

    t = sub.add_parser("train", help="train on a labelled Parquet (text, label, url, domain, source), held out by domain")
    t.add_argument("data", help="labelled Parquet file")
    t.add_argument("--out", required=True, help="folder for <name>.bin, <name>.ftz, eval.json, eval.png")
    t.add_argument("--name", default="model")
    _add_train_flags(t)
    t.set_defaults(func=train_command)

    e = sub.add_parser("eval", help="evaluate a fastText model on a labelled Parquet")
    e.add_argument("model", help=".bin or .ftz")
    e.add_argument("data", help="labelled Parquet file")
    e.add_argument("--out", help="evaluation JSON (default: next to the model); the plot is written beside it")
    _add_train_flags(e)
    e.set_defaults(func=eval_command)

    v = sub.add_parser("cv", help="cross-validate settings by domain on the training side of the held-out split (never reads it)")
    v.add_argument("data", help="labelled Parquet file")
    v.add_argument("--folds", type=int, default=5)
    v.add_argument("--grid", action="append", metavar="FIELD=V1,V2", help="a setting to search (repeatable); none: the given settings only")
    v.add_argument("--out", help="JSON of every combination's cross-validated ROC AUC")
    _add_train_flags(v)
    v.set_defaults(func=cv_command)

    b = sub.add_parser("build-default", help="rebuild the shipped model offline from ../shared/data")
    b.add_argument("--shared-data", default="../shared/data")
    b.add_argument("--out", default=str(Path(__file__).resolve().parent / "models"))
    b.add_argument("--work", help="folder for the labelled set and the .bin (default <out>/build)")
    b.add_argument("--labelled", help="reuse the labelled.parquet of an earlier build (its --work folder)")
    b.add_argument("--held-out-fraction", type=float, default=0.4)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--folds", type=int, default=DEFAULT_CV_FOLDS, help="cross-validation folds of the settings search (0: no search, the defaults)")
    b.add_argument("--grid", action="append", metavar="FIELD=V1,V2",
                   help=f"settings searched (repeatable; default {' '.join(DEFAULT_CV_GRID)})")
    b.set_defaults(func=build_default_command)


def main(argv: list[str] | None = None) -> int:  # `python -m curate.classifiers.cli` before the CLI wiring
    p = argparse.ArgumentParser(prog="curate")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
