"""The console scripts as a user runs them: a multirun sweep, then the report."""

from __future__ import annotations

import csv
import json
import statistics

from conftest import FAST, run_cli
from mixexp.report import build_report


def test_multirun_sweep_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["mixexp-train", "-m", *FAST, "mixer=none,mixup", "seed=0,1", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = {p.parent.name: p.parent for p in sweep.rglob("metrics.json")}
    assert len(runs) == 4
    assert not any("trainer.device" in name or "trainer.progress" in name for name in runs)  # they change nothing
    # each job's folder is named by its overrides, so a relaunch of the sweep finds it again
    job = {(m, s): next(d for n, d in runs.items() if f"mixer={m}" in n and f"seed={s}" in n)
           for m in ("none", "mixup") for s in (0, 1)}

    report = run_cli(["mixexp-report", str(sweep)], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0] == "| method | n | test_acc | test_nll | test_ece |"
    accs = [json.loads((job["mixup", s] / "metrics.json").read_text())["test_acc"] for s in (0, 1)]
    expected = f"| mixup | 2 | {statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} |"
    assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert (sweep / "report.md").read_text().splitlines()[0] == lines[0]
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["method"] for r in rows] == ["erm", "mixup"]
    assert float(rows[1]["test_acc_mean"]) == statistics.fmean(accs)


def test_report_counts_unfinished_runs_and_never_shows_them_as_zero(tmp_path):
    for seed, acc in [(0, 90.0), (1, 92.0)]:
        run = tmp_path / f"seed={seed}"
        run.mkdir()
        (run / "config.yaml").write_text(f"mixer:\n  name: mixup\nseed: {seed}\n")
        (run / "metrics.json").write_text(json.dumps({"test_acc": acc}))
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "config.yaml").write_text("mixer:\n  name: cutmix\nseed: 0\n")
    text, rows, unfinished = build_report(tmp_path, ["test_acc"])
    assert unfinished == 1
    assert "| mixup | 2 | 91.00 ± 1.41 |" in text
    assert "cutmix" not in text.split("\n\n")[0]
    assert "1 run(s)" in text


def test_report_on_an_empty_folder_is_a_one_line_error(tmp_path):
    result = run_cli(["mixexp-report", str(tmp_path)])
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no runs below {tmp_path} (a run folder holds config.yaml and metrics.json)"


def test_python_dash_m_entrypoint_works_from_another_directory(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mixexp.train", *FAST, "trainer.epochs=1", f"hydra.run.dir={tmp_path}/r"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"] == 1


def test_method_names_follow_the_papers_spelling():
    from mixexp.report import method_name

    base = {"mixer.name": "mixup", "regularizer.name": "none", "mixer.stop_fraction": None,
            "mixer.stop_epoch": None, "loss.label_smoothing": 0.0}
    assert method_name({**base, "mixer.name": "none"}) == "erm"
    assert method_name({**base, "regularizer.name": "sem", "mixer.stop_fraction": 0.9}) == "mixup+es+sem"
    assert method_name({**base, "mixer.name": "cutmix", "mixer.stop_epoch": 180}) == "cutmix+es"
    assert method_name({**base, "loss.label_smoothing": 0.2}) == "mixup+ls0.2"
    lamix = {**base, "mixer.name": "lamix", "mixer.lamix_inputs": "average", "mixer.lamix_original_batches": False,
             "mixer.lamix_global_label": True}
    assert method_name(lamix) == "lamix-no_original"
    assert method_name({**lamix, "mixer.lamix_inputs": "puzzlemix", "mixer.lamix_original_batches": True}) == "lamix_puzzle"
