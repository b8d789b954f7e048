"""The guidance-gap benchmark's results.csv: written atomically, and kept current while the benchmark runs, so a
benchmark killed with its machine leaves a csv that `--restore-from` continues from."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> Path:
    from .results import write_csv

    return write_csv(path, rows, columns)


def row_key(row: dict) -> tuple:
    return (row["dims"], row["method"], row["backbone"], str(row["seed"]), row["prompt"])


def keep_current(path: Path, rows: list[dict], columns: list[str],
                 on_row: Callable[[dict, int, int], None] | None) -> Callable[[dict, int, int], None]:
    """Write `rows` (every job's row as it stands: pending ones "not run") now, and return an on_row that puts each
    finished row in its place and rewrites the csv before calling `on_row`."""
    rows = list(rows)
    where = {row_key(r): i for i, r in enumerate(rows)}
    write_rows(path, rows, columns)

    def landed(row: dict, done: int, total: int) -> None:
        rows[where[row_key(row)]] = row
        write_rows(path, rows, columns)
        if on_row:
            on_row(row, done, total)

    return landed
