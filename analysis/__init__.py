"""Analysis of run folders and the comparison report.

``load`` is the only module that reads files (run folders through ``reports.schema``, price
tables); ``report`` writes the report. Everything in between is pure functions over DataFrames:
``latency``, ``lag``, ``accounting`` (every request in one class), ``recovery``, ``capacity``,
``cost`` (with ``metrics``), ``compare`` and ``stats``; ``analyze`` bundles one run's tables,
``claims`` judges the three claims, ``summary`` shapes summary.json, ``report_tables`` shapes
the report's tables, ``plots`` returns plot data and ``render`` draws it with matplotlib's Agg.
``synthetic`` builds runs with known answers for tests and the benchmark; ``coverage``
simulates the intervals' coverage (``scripts/coverage.py`` prints it).
"""
