"""Disk: a finished run may keep its weights only (trainer.final_checkpoint), --plan says what the runs keep
on disk, and `mixexp-reproduce all --smoke` holds one runs folder's checkpoints at a time."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FAST, compose_cfg
from mixexp.checkpoint import RESUME_STATE, load_checkpoint
from mixexp.config import ConfigError, validate
from mixexp.trainer import Trainer


def trainer(run_dir, *overrides):
    cfg = compose_cfg(FAST + ["mixer=mixup", "sched=multistep", *overrides])  # multistep: epochs may grow
    validate(cfg)
    return Trainer(cfg, run_dir)


def test_a_weights_only_final_checkpoint_is_evaluated_again_but_never_trained_further(tmp_path):
    run = tmp_path / "run"
    trainer(run, "trainer.final_checkpoint=weights").fit(until_epoch=1)
    assert set(RESUME_STATE) <= set(load_checkpoint(run / "last.pt"))  # unfinished: everything to resume
    first = trainer(run, "trainer.final_checkpoint=weights", "resume=true")
    metrics = first.fit()
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and not set(RESUME_STATE) & set(state)
    assert torch.equal(state["model"]["classifier.weight"], first.model.state_dict()["classifier.weight"])
    again = trainer(run, "trainer.final_checkpoint=weights", "resume=true", "eval.rescaled=true")
    for name, value in first.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], value), name  # the final weights, restored
    assert "rescaled_test_acc" in again.fit() and "rescaled_test_acc" not in metrics  # a result added
    config = (run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"last.pt holds the final weights only \(trained with "
                                          r"trainer.final_checkpoint=weights\): the run can be evaluated again, "
                                          r"not trained past its 2 epochs \(trainer.epochs=3\)"):
        trainer(run, "trainer.final_checkpoint=weights", "resume=true", "trainer.epochs=3")
    assert (run / "config.yaml").read_bytes() == config  # the refused resume changed nothing


def test_a_full_final_checkpoint_keeps_what_training_further_needs(tmp_path):
    trainer(tmp_path / "run").fit()
    assert set(RESUME_STATE) <= set(load_checkpoint(tmp_path / "run" / "last.pt"))
    longer = trainer(tmp_path / "run", "resume=true", "trainer.epochs=3").fit()
    assert longer["epochs"] == 3


def test_a_finished_run_whose_checkpoint_is_gone_is_kept_as_it_is_never_trained_again(tmp_path):
    run = tmp_path / "run"
    trainer(run).fit()
    (run / "last.pt").unlink()  # trainer.checkpoint=false, or mixexp-reproduce all --smoke removed it
    files = {name: (run / name).read_bytes() for name in ("metrics.json", "history.csv", "config.yaml")}
    kept = trainer(run, "resume=true").fit()
    assert kept == json.loads(files["metrics.json"])
    with pytest.raises(ConfigError, match=r"run finished without a checkpoint to evaluate again \(last.pt is absent: "
                                          r"trainer.checkpoint=false, or removed\), so it cannot add rescaled test; "
                                          r"train the run again in another hydra.run.dir"):
        trainer(run, "resume=true", "eval.rescaled=true")
    assert {name: (run / name).read_bytes() for name in files} == files


def test_an_unknown_final_checkpoint_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"trainer.final_checkpoint='half' is not allowed: choose one of full, weights"):
        validate(compose_cfg(FAST + ["trainer.final_checkpoint=half"]))


@pytest.mark.parametrize("keep", ["full", "weights"])
def test_the_plan_disk_estimate_is_the_size_of_the_written_checkpoint(tmp_path, keep):
    from omegaconf import OmegaConf

    from mixexp.plan import checkpoint_bytes, model_cost

    # a paper model (the framing and history are a small share of its file, as in the tables' runs)
    overrides = ["model=preactresnet18", "dataset.image_size=32", "dataset.train_size=4", "dataset.test_size=2",
                 "trainer.batch_size=2", "trainer.eval_batch_size=2", "trainer.epochs=1", f"trainer.final_checkpoint={keep}",
                 "trainer.snapshot_epochs=[1]"]
    cfg = compose_cfg([o for o in FAST if not o.startswith("model.width")] + overrides)
    validate(cfg)
    Trainer(cfg, tmp_path / "run").fit()
    _, params, state = model_cost(OmegaConf.to_yaml(cfg.model, resolve=True), 32, 3, 10)
    written = sum(p.stat().st_size for p in (tmp_path / "run").rglob("*.pt"))
    assert written == pytest.approx(checkpoint_bytes(cfg, params, state), rel=0.01)
    assert checkpoint_bytes(cfg, params, state) == 4 * (2 * state + (params if keep == "full" else 0))


def test_reproduce_all_smoke_runs_a_folder_s_targets_together_then_removes_their_checkpoints(tmp_path, monkeypatch,
                                                                                             capsys):
    from mixexp import reproduce

    order, present = [], {}

    def fake(name, smoke, logger, extra, root):  # a target's sweep: a checkpoint per table in its folder
        folder = reproduce.output_folder(root, "multirun", smoke) / reproduce.TARGETS[name].runs
        (folder / name / "snapshots").mkdir(parents=True, exist_ok=True)
        for path in (folder / name / "last.pt", folder / name / "snapshots" / "epoch_0001.pt"):
            path.write_bytes(b"x" * 1000)
        (folder / name / "metrics.json").write_text("{}")
        order.append(name)
        present[name] = sorted(p.parent.name for p in reproduce.output_folder(root, "multirun", smoke).rglob("last.pt"))
        return []

    monkeypatch.setattr(reproduce, "reproduce", fake)
    reproduce.cli(["all", "--smoke", "--root", str(tmp_path)])
    assert sorted(order) == sorted(reproduce.TARGETS)
    folders = [reproduce.TARGETS[n].runs for n in order]
    assert folders == sorted(folders, key=folders.index)  # each folder's targets one after another
    fb = [n for n in order if reproduce.TARGETS[n].runs == "lamix/fb"]
    assert fb == ["lamix-table1", "lamix-table2", "lamix-table5", "lamix-table6", "lamix-table7", "lamix-table8",
                  "lamix-fig6"]
    assert present["lamix-fig6"] == sorted(fb)  # the folder's checkpoints live until its last target ...
    assert present["lamix-table3"] == ["lamix-table3"]  # ... and are gone when the next folder starts
    smoke = tmp_path / "multirun" / "smoke"
    assert not list(smoke.rglob("*.pt")) and len(list(smoke.rglob("metrics.json"))) == len(order)
    assert "removed the checkpoints of " + str(smoke / "lamix" / "fb") + " (0.00 GB)" in capsys.readouterr().out
    reproduce.cli(["sem-table1", "--smoke", "--root", str(tmp_path)])  # one target: its runs stay whole
    assert (smoke / "sem" / "sem-table1" / "last.pt").is_file()


def test_model_cost_of_a_model_whose_last_feature_map_is_one_pixel():
    from mixexp.plan import model_cost

    # ResNet-50's ImageNet stem at 32 px (a smoke plan of the ImageNet tables) ends in 1x1 maps: BatchNorm in
    # training mode would refuse the single image that the count runs
    macs, params, state = model_cost("name: resnet50\nstem: imagenet\n", 32, 3, 10)
    assert params == 23_528_522 and state == params + 53_120  # + BatchNorm's running means and variances
    assert macs == pytest.approx(83_431_424)


def test_final_checkpoint_does_not_name_run_folders(tmp_path):
    # a table relaunched with trainer.final_checkpoint=weights finds the runs it already has
    from mixexp.plan import REFERENCE, Throughput, plan_target
    from mixexp.reproduce import Target

    throughput = Throughput(1e9, REFERENCE["method_step_time_vs_mixup"], "test")
    plain = plan_target("demo", Target("demo", "demo"), tmp_path, [], throughput)
    weights = plan_target("demo", Target("demo", "demo"), tmp_path, ["trainer.final_checkpoint=weights"], throughput)
    assert [r.folder for r in weights] == [r.folder for r in plain] and len(plain) == 9
    assert all(w.checkpoint_bytes < p.checkpoint_bytes for w, p in zip(weights, plain))
