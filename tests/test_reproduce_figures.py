"""Issue 13: mixexp-reproduce draws the papers' figures from a target's runs; a figure whose runs are
missing is skipped with one line; the CSV beside each figure holds the plotted numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from mixexp.plots.paper import PAPER_FIGURES, MissingRuns, pick_runs
from mixexp.reproduce import TARGETS, draw_figures


def rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fake_run(folder: Path, method: str, dataset: str, model: str, seed: int, finished: bool = True) -> Path:
    run = folder / f"{method}_{dataset}_{model}_{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"label": method, "seed": seed, "dataset": {"name": dataset},
                                                     "model": {"name": model}}))
    if finished:
        (run / "metrics.json").write_text(json.dumps({"test_acc": 50.0}))
    return run


def test_pick_runs_takes_one_finished_run_per_method_of_the_preferred_dataset_and_model(tmp_path):
    for dataset in ("cifar100", "cifar10"):
        for method in ("erm", "mixup"):
            for seed in (1, 0):
                fake_run(tmp_path, method, dataset, "preactresnet18", seed)
    fake_run(tmp_path, "lamix", "cifar100", "preactresnet18", 0)
    fake_run(tmp_path, "lamix", "svhn", "resnet50", 0, finished=False)
    picked = pick_runs(tmp_path, ("erm", "mixup"), ("cifar10", "preactresnet18"))
    assert {m: r.path.name for m, r in picked.items()} == {"erm": "erm_cifar10_preactresnet18_0",
                                                          "mixup": "mixup_cifar10_preactresnet18_0"}
    # the preferred pair lacks LaMix: the pair that has every method is taken
    picked = pick_runs(tmp_path, ("erm", "lamix"), ("cifar10", "preactresnet18"))
    assert picked["lamix"].path.name == "lamix_cifar100_preactresnet18_0"
    with pytest.raises(MissingRuns, match="has a finished run of each of erm, cutmix"):
        pick_runs(tmp_path, ("erm", "cutmix"), ("cifar10", "preactresnet18"))


def test_a_figure_whose_runs_are_missing_is_skipped_with_one_line(tmp_path, capsys):
    # both methods finished, but their last.pt is gone (trainer.checkpoint=false, or reproduce all --smoke)
    fake_run(tmp_path / "rescaled-cifar", "erm", "cifar10", "preactresnet18", 0)
    fake_run(tmp_path / "rescaled-cifar", "mixup", "cifar10", "preactresnet18", 0)
    for name in ("lamix-fig8", "rescaled-cifar", "lamix-fig5"):
        (tmp_path / name).mkdir(exist_ok=True)
        assert draw_figures(name, TARGETS[name], tmp_path / name, tmp_path / "reports") == []
    gone = "(last.pt is gone under trainer.checkpoint=false, and after `mixexp-reproduce all --smoke` has written the tables)"
    assert capsys.readouterr().out.splitlines() == [
        f"lamix-fig8: figure bottleneck skipped: no dataset and model below {tmp_path / 'lamix-fig8'} has a "
        f"finished run with its last.pt of each of erm, mixup, lamix {gone}",
        f"rescaled-cifar: figure rescaled_reliability skipped: no dataset and model below {tmp_path / 'rescaled-cifar'} "
        f"has a finished run with its last.pt of each of erm, mixup {gone}",
        f"lamix-fig5: figure training_curves skipped: no run below {tmp_path / 'lamix-fig5'} has a history.csv"]
    assert not (tmp_path / "reports").exists()


def test_every_paper_figure_belongs_to_a_target():
    assert set(PAPER_FIGURES) <= set(TARGETS)
    assert {"lamix-fig5", "lamix-fig8"} <= set(TARGETS)


@pytest.mark.slow
def test_smoke_targets_write_their_figures_with_the_plotted_numbers(tmp_path):
    for target in ("lamix-fig5", "rescaled-cifar"):
        result = run_cli(["mixexp-reproduce", target, "--smoke", "--root", str(tmp_path)], cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    figures = tmp_path / "reports" / "smoke" / "figures"
    for stem in ("lamix_fig5", "rescaled_reliability"):
        assert all((figures / f"{stem}.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))

    # Fig 5: one curve per method, each exactly its run's history.csv (one seed: std 0)
    plotted = rows(figures / "lamix_fig5.csv")
    runs = {yaml.safe_load((p.parent / "config.yaml").read_text())["label"]: rows(p)
            for p in (tmp_path / "multirun" / "smoke" / "lamix" / "fig5").rglob("history.csv")}
    assert sorted(runs) == ["cutmix", "lamix", "mixup"]
    for method, history in runs.items():
        for metric in ("train_loss", "test_acc"):
            mine = [r for r in plotted if r["config"] == method and r["metric"] == metric]
            assert [float(r["mean"]) for r in mine] == pytest.approx([float(h[metric]) for h in history], rel=1e-9)
            assert [int(r["epoch"]) for r in mine] == [int(float(h["epoch"])) for h in history]

    # reliability: ERM, mixup, mixup rescaled; 15 bins each; the legend's ECE is the run's own metrics.json
    plotted = rows(figures / "rescaled_reliability.csv")
    models = {r["model"] for r in plotted}
    assert models == {"erm", "mixup", "mixup + test-time rescaling"}
    folder = tmp_path / "multirun" / "smoke" / "rescaled" / "cifar"
    for path in folder.rglob("metrics.json"):
        config = yaml.safe_load((path.parent / "config.yaml").read_text())
        if config["dataset"]["name"] != "cifar10":
            continue
        metrics = json.loads(path.read_text())
        mine = [r for r in plotted if r["model"] == config["label"]]
        assert len(mine) == 15 and float(mine[0]["ece"]) == pytest.approx(metrics["test_ece"], abs=1e-6)
        if config["label"] == "mixup":
            rescaled = [r for r in plotted if r["model"] == "mixup + test-time rescaling"]
            assert float(rescaled[0]["ece"]) == pytest.approx(metrics["rescaled_test_ece"], abs=1e-6)
            assert sum(int(r["count"]) for r in rescaled) == sum(int(r["count"]) for r in mine)
