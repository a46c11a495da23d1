"""Print the coverage table of the report's 95% quantile intervals (see analysis/coverage.py).

.venv/bin/python scripts/coverage.py [--repetitions 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.coverage import coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    started = time.monotonic()
    print("| n per variant | trials | drift | quantile | pooled only | with trials | runs |")
    print("|---|---|---|---|---|---|---|")
    for n in (500, 50_000):
        for drift in (0.0, 0.05):
            for row in coverage(
                n, args.trials, drift, (0.5, 0.99, 0.999), repetitions=args.repetitions
            ):
                print(
                    f"| {row.n:,} | {row.trials} | {row.drift:.0%} | p{row.q * 100:g} | "
                    f"{row.pooled:.1%} | {row.with_trials:.1%} | {row.repetitions} |"
                )
    print(f"({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
