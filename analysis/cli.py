"""`asyncbench report RUN_DIR [RUN_DIR ...]`: analyse run folders and write the report."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from asyncbench.paths import reports_dir

__all__ = ["make_report", "register"]


def _default_out(run_dirs: Sequence[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return reports_dir() / f"report-{stamp}"


def make_report(
    run_dirs: Sequence[Path],
    *,
    prices: Path | None = None,
    slo_p99_ms: float | None = None,
    error_threshold: float | None = None,
    delivery_tolerance: float | None = None,
    late_share_limit: float | None = None,
    late_after_ms: float | None = None,
    memory_limit: str | None = None,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Load, analyse and report the runs; returns the written index.html."""
    # Imported here, not at the top: pandas and matplotlib take seconds to import, and every
    # `asyncbench` command (even `local status`) builds the parser that registers this module.
    from analysis.analyze import Options, analyze_run
    from analysis.claims import judge_claims
    from analysis.load import load_prices, load_run
    from analysis.report import build_report, write_report
    from analysis.summary import build_summary
    from analysis.tune import analyze_tune, is_tune_run
    from analysis.tune_report import tune_blocks, tune_summary

    say = progress or (lambda _message: None)
    from analysis.capacity import Delivery

    delivery = Delivery()
    delivery = Delivery(
        rate_tolerance=delivery.rate_tolerance
        if delivery_tolerance is None
        else delivery_tolerance,
        late_share=delivery.late_share if late_share_limit is None else late_share_limit,
        late_after_ms=delivery.late_after_ms if late_after_ms is None else late_after_ms,
    )
    options = Options(
        prices=load_prices(prices),
        slo_p99_ms=slo_p99_ms,
        error_threshold=error_threshold,
        delivery=delivery,
        memory_limit=memory_limit,
    )
    analyses = []
    for run_dir in run_dirs:
        say(f"loading {run_dir}")
        run = load_run(run_dir)
        say(f"analysing {run.scenario_name} ({run.client_rows:,} client rows)")
        analyses.append(analyze_run(run, options))
    verdicts = judge_claims(analyses)
    summary = build_summary(analyses, verdicts)
    extra: list[Any] = []
    for analysis in analyses:
        if is_tune_run(analysis.run):
            say(f"tune tables of {analysis.run.run_id}")
            result = analyze_tune(analysis.run, options.prices)
            summary.setdefault("tune", {})[analysis.run.run_id] = tune_summary(analysis.run, result)
            extra += tune_blocks(analysis.run, result)
    report = build_report(
        analyses, verdicts, summary, tolerance=options.tolerance, progress=say, extra_blocks=extra
    )
    target = out or _default_out(list(run_dirs))
    say(f"writing {target}")
    return write_report(target, report)


def _local_folder(location: str, say: Callable[[str], None]) -> Path:
    """A RUN_DIR argument as a local folder: an ``s3://`` one is copied under reports/s3/."""
    from analysis.remote import fetch_run_folder, is_remote

    if not is_remote(location):
        return Path(location)
    say(f"copying {location} to {reports_dir() / 's3'}")
    return fetch_run_folder(location, reports_dir() / "s3", progress=say)


def _report(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        print(f"report: {message}", flush=True)

    index = make_report(
        [_local_folder(location, say) for location in args.run_dirs],
        prices=args.prices,
        slo_p99_ms=args.slo_p99_ms,
        error_threshold=args.error_threshold,
        delivery_tolerance=args.delivery_tolerance,
        late_share_limit=args.late_share_limit,
        late_after_ms=args.late_after_ms,
        memory_limit=args.memory_limit,
        out=args.out,
        progress=say,
    )
    print(index)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="analyse one run (or compare several) and write index.html, report.md, summary.json",
        description=(
            "Analyse run folders: latency with confidence intervals, stream lag, recovery, "
            "capacity and cost, and verdicts on the three claims. One run: the report goes into "
            "its folder; several: into reports/report-<stamp>/. Prints index.html's path last."
        ),
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run folder(s); an s3://BUCKET/PATH one is copied to reports/s3/ first",
    )
    parser.add_argument("--prices", type=Path, help="price table JSON (default: us-east-1)")
    parser.add_argument("--slo-p99-ms", type=float, help="p99 SLO for capacity (ms)")
    parser.add_argument(
        "--error-threshold", type=float, help="highest error share a capacity stage may have"
    )
    parser.add_argument(
        "--delivery-tolerance",
        type=float,
        help="a capacity stage is generator-limited when sends fall short of the offered rate by "
        "more than this share (default 0.05)",
    )
    parser.add_argument(
        "--late-share-limit",
        type=float,
        help="... or when at least this share of its sends left late (default 0.01)",
    )
    parser.add_argument(
        "--late-after-ms",
        type=float,
        help="a send is late this long after its intended time (default 100)",
    )
    parser.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory the analysis engine (DuckDB) may use before it spills to a temporary "
        "directory, e.g. 4GB (default: a quarter of this machine's memory, at most 1536MB)",
    )
    parser.add_argument("--out", type=Path, help="write the report here instead")
    parser.set_defaults(handler=_report)
