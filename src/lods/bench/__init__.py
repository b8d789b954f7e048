"""Benchmarks and batches: suites of runs driven through the pipelines, and their statistics and reports.

quality.py (the driver) plans jobs (jobs.py), runs them (runner.py: here or in worker processes; ray.py: on Ray),
and writes results.csv (results.py), summary.md (report.py, stats.py, hardware.py) and plots/ (plots.py); cfg.py is
the CFG sweep, speed.py (+ memory.py) the speed benchmark, batch.py `lods generate --prompts`, suites.py the
prompt suites, t3bench.py T3Bench's prior check and ImageReward.
"""
