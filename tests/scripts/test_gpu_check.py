"""scripts/gpu_check.py in its tiny CPU mode: every section runs and lands in the report, so the GPU check cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_tiny_mode_writes_every_section(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    sections = report["sections"]
    assert len(sections) == 6
    for name, body in sections.items():
        assert "error" not in body, f"{name}: {body.get('error')}"
    by_number = {name.split(".")[0]: body for name, body in sections.items()}
    assert by_number["1"]["skipped"].startswith("no CUDA")
    speed = by_number["2"]["raw"]["sections"]
    assert {"sds", "lods-embedding", "lods-embedding+shared_draw"} <= set(speed[0]["methods"])
    assert all("median_ms" in e for s in speed for e in s["methods"].values())
    assert by_number["3"]["steps_run"] == 3 and by_number["3"]["projected_full_run_min"] > 0
    assert by_number["4"]["cosine_scaled"] >= 0.99
    cpu = by_number["5"]["cpu"]
    assert cpu["exit_code"] == 0 and {"psnr", "iou"} <= set(cpu["ground_truth"])
    assert "# GPU check" in (out / "report.md").read_text()
