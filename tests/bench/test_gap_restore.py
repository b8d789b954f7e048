"""--restore-from takes every finished row of a results.csv: ok, done before, resumed, scored; not a failed or a
not-run one."""

import csv

from lods.bench.gap import COLUMNS
from lods.bench.gap_restore import read_finished


def test_every_finished_status_is_restored_and_no_other(tmp_path):
    statuses = ["ok", "done before", "resumed", "scored", "failed: RuntimeError: boom", "not run"]
    with (tmp_path / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for seed, status in enumerate(statuses):
            w.writerow({**{c: "" for c in COLUMNS}, "dims": "3d", "method": "sds@7.5", "backbone": "gs",
                        "seed": seed, "prompt": "a cube", "steps": 400, "status": status})
    finished = read_finished(tmp_path / "results.csv")
    assert sorted(key[2] for key in finished) == [0, 1, 2, 3]
