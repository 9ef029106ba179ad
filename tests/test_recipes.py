"""Issue 10: every table's recipe against its authors' settings (one test per table, citing the file each
number is read from), the report statistic, the protocol card, the validation split and the compute plan."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import compose_cfg
from mixexp.config import validate


def point(experiment, *overrides):
    """One grid point of a preset, composed as the sweep composes it."""
    cfg = compose_cfg([f"experiment={experiment}", *overrides])
    validate(cfg)
    return cfg


def _sweep_params(experiment):
    from hydra import compose, initialize_config_dir

    from mixexp.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    return {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}


def assert_fb_recipe(cfg):
    # facebookresearch/mixup-cifar10 train.py: batch 128, SGD lr 0.1 momentum 0.9 decay 1e-4, alpha 1,
    # adjust_learning_rate (/10 once epoch >= 100, again >= 150, run after each epoch: first new lr at 101, 151)
    assert (cfg.trainer.batch_size, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert cfg.optim.nesterov is False and cfg.mixer.alpha == 1.0 and cfg.loss.form == "ce"
    assert list(cfg.sched.milestones) == [101, 151] and cfg.sched.gamma == 0.1 and cfg.sched.warmup_epochs == 0
    assert cfg.trainer.epochs == 400  # LaMix 3.1: "for 400 epochs"
    # fb models/resnet.py ResNet18 where the table has a PreActResNet18 column
    assert cfg.model.name != "preactresnet18" or cfg.model.variant == "fb"


def test_lamix_table1_fb_recipe_and_cutmix_authors_probability():
    assert _sweep_params("lamix/table1")["method"] == "erm,mixup,cutmix_prob05,lamix"
    assert _sweep_params("lamix/table1")["model"].startswith("preactresnet18_fb,")
    cfg = point("lamix/table1", "dataset=cifar10", "model=preactresnet18_fb", "method=cutmix_prob05")
    assert_fb_recipe(cfg)
    # clovaai/CutMix-PyTorch README CIFAR command: --beta 1.0 --cutmix_prob 0.5
    assert (cfg.mixer.name, cfg.mixer.alpha, cfg.mixer.prob, cfg.mixer.per_sample) == ("cutmix", 1.0, 0.5, False)
    mixup = point("lamix/table1", "dataset=cifar10", "model=preactresnet18_fb", "method=mixup")
    assert mixup.mixer.prob == 1.0  # fb's mixup mixes every batch


def test_lamix_table2_fb_recipe():
    assert _sweep_params("lamix/table2")["model"] == "lenet,wrn28_10,densenet121"
    assert_fb_recipe(point("lamix/table2", "dataset=cifar100", "model=densenet121", "method=cutmix_prob05"))


@pytest.mark.parametrize("table", ["table5", "table6", "table7", "table8", "fig4", "fig6"])
def test_lamix_tables_5_to_8_and_figures_use_the_fb_recipe(table):
    params = _sweep_params(f"lamix/{table}")
    assert params["model"].split(",")[0].split()[0] == "preactresnet18_fb"
    cfg = point(f"lamix/{table}", f"dataset={params['dataset'].split(',')[0]}", "model=preactresnet18_fb",
                f"method={params['method'].split(',')[0]}")
    assert_fb_recipe(cfg)
    assert "cutmix," not in params["method"] + ","  # CutMix rows (Table 6) run the authors' probability


def test_lamix_fb_scaled_is_the_named_alternative():
    cfg = point("lamix/table1", "recipe=lamix_fb_scaled", "dataset=cifar10", "model=preactresnet18_fb", "method=mixup")
    assert list(cfg.sched.milestones) == [200, 300] and cfg.trainer.epochs == 400 and cfg.optim.lr == 0.1


def test_lamix_table3_puzzlemix_recipe():
    params = _sweep_params("lamix/table3")
    assert params["method"] == "puzzlemix,lamix_puzzle"  # Vanilla comes from the Table 1 runs
    assert params["model"].split(",")[0] == "preactresnet18_puzzlemix"
    cfg = point("lamix/table3", "dataset=cifar100", "model=preactresnet18_puzzlemix", "method=puzzlemix")
    # snu-mllab/PuzzleMix README "Puzzle Mix with PreActResNet18 for 600 epochs" and main.py
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optim.lr, cfg.optim.weight_decay) == (600, 100, 0.2, 1e-4)
    assert cfg.optim.nesterov is True and cfg.optim.momentum == 0.9
    assert list(cfg.sched.milestones) == [350, 500] and cfg.dataset.crop_padding == 2  # load_data.py padding 2
    assert (cfg.mixer.alpha, cfg.mixer.t_size, cfg.mixer.clean_lam) == (1.0, 4, 0.0)
    assert (cfg.mixer.beta, cfg.mixer.gamma, cfg.mixer.eta, cfg.mixer.neigh_size, cfg.mixer.t_eps) == (1.2, 0.5, 0.2, 4, 0.8)
    assert cfg.loss.form == "bce_softmax" and cfg.model.variant == "puzzlemix"
    lamix = point("lamix/table3", "dataset=svhn", "model=resnet50", "method=lamix_puzzle")
    assert lamix.loss.form == "bce_softmax" and lamix.mixer.lamix_beta == 1.0
    assert (lamix.mixer.inputs.name, lamix.mixer.inputs.t_size, lamix.mixer.inputs.clean_lam) == ("puzzlemix", 4, 0.0)


def test_lamix_table4_official_tiny_imagenet_command():
    params = _sweep_params("lamix/table4")
    assert params["model"] == "preactresnet18_puzzlemix_stride2,resnet50_stride2"
    assert params["method"] == "puzzlemix_tiny,lamix_puzzle_tiny"
    cfg = point("lamix/table4", "dataset=tinyimagenet", "model=preactresnet18_puzzlemix_stride2", "method=lamix_puzzle_tiny")
    # PuzzleMix README Tiny-ImageNet 600 epochs: lr 0.2, --schedule 300 450, --clean_lam 1, no --t_size
    assert (cfg.trainer.epochs, cfg.optim.lr, list(cfg.sched.milestones)) == (600, 0.2, [300, 450])
    assert (cfg.mixer.inputs.t_size, cfg.mixer.inputs.clean_lam, cfg.label) == (-1, 1.0, "lamix_puzzle")
    puzzle = point("lamix/table4", "dataset=tinyimagenet", "model=resnet50_stride2", "method=puzzlemix_tiny")
    assert (puzzle.mixer.t_size, puzzle.mixer.clean_lam, puzzle.model.stem, puzzle.label) == (-1, 1.0, "stride2", "puzzlemix")
    # main.py: stride = 2 and mean = std = 0.5 for tiny-imagenet-200; load_data.py RandomCrop(64, padding=4)
    assert (cfg.model.stem, cfg.model.variant) == ("stride2", "puzzlemix")
    assert cfg.dataset.crop_padding == 4 and cfg.dataset.flip is True
    assert list(cfg.dataset.mean) == [0.5] * 3 and list(cfg.dataset.std) == [0.5] * 3
    assert cfg.loss.form == "bce_softmax" and cfg.trainer.batch_size == 100 and cfg.optim.nesterov is True


@pytest.mark.parametrize("table", ["table1", "table2", "table3"])
def test_sem_tables_recipe(table):
    cfg = point(f"sem/{table}", "dataset=cifar10", "model=wrn28_10", "method=cutmix_sem")
    # sem.txt: 200 epochs, SGD with step decay and weight decay; the rest is ours (protocols.yaml)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optim.lr, cfg.optim.weight_decay) == (200, 128, 0.1, 5e-4)
    assert list(cfg.sched.milestones) == [100, 150] and cfg.mixer.prob == 1.0 and cfg.loss.form == "ce"
    tiny = point("sem/table1", "dataset=tinyimagenet", "model=preactresnet18", "method=mixup")
    assert (tiny.model.stem, tiny.model.variant) == ("cifar", "preact")


def test_rescaled_imagenet_pwc_recipe():
    cfg = point("rescaled/imagenet", "method=mixup_rescaled")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optim.lr, list(cfg.sched.milestones)) == (90, 256, 0.1, [30, 60, 80])
    assert cfg.model.stem == "imagenet" and cfg.optim.bn_weight_decay is True


def test_rescaled_imagenet_ub_recipe():
    assert _sweep_params("rescaled/imagenet_ub")["method"] == "erm,mixup_rescaled_ub"
    cfg = point("rescaled/imagenet_ub", "method=mixup_rescaled_ub")
    # google/uncertainty-baselines baselines/imagenet/deterministic.py: 128 per core x 32 cores, base lr 0.1 per 256,
    # warmup_epochs=5, decay at (E*30)//90, (E*60)//90, (E*80)//90, Nesterov momentum 0.9, l2 1e-4 * sum(w^2) on
    # kernels and biases (torch weight_decay 2e-4), none on BatchNorm; README footnote 6: 200 epochs
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optim.lr) == (200, 4096, pytest.approx(0.1 * 4096 / 256))
    assert list(cfg.sched.milestones) == [200 * 30 // 90, 200 * 60 // 90, 200 * 80 // 90] and cfg.sched.warmup_epochs == 5
    assert cfg.optim.nesterov is True and cfg.optim.weight_decay == 2e-4 and cfg.optim.bn_weight_decay is False
    assert cfg.mixer.per_sample is True and cfg.eval.rescaled is True  # same_mix_weight_per_batch=False
    # ub's README columns; ImageNet-C through ub's ResNet preprocessing (crop 224/256 of each 224 px file again)
    assert list(cfg.eval.shift) == ["objectnet", "imagenet_v2", "imagenet_c"] and cfg.eval.imagenet_c_crop == "center"
    pwc = point("rescaled/imagenet", "method=mixup_rescaled")
    assert list(pwc.eval.shift) == ["objectnet"] and pwc.eval.imagenet_c_crop == "none"  # table rescaled-pwc


def test_sgd_groups_exclude_batchnorm_from_weight_decay_only_when_asked():
    from omegaconf import OmegaConf

    from mixexp.config import OptimConfig
    from mixexp.train_utils import build_sgd

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    cfg = OmegaConf.structured(OptimConfig(weight_decay=2e-4, bn_weight_decay=False))
    groups = build_sgd(cfg, [model], torch.device("cpu")).param_groups
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(3, 2e-4), (2, 0.0)]  # conv w, linear w+b | bn
    assert groups[1]["params"][0] is model[1].weight
    cfg.bn_weight_decay = True
    assert [(len(g["params"]), g["weight_decay"]) for g in build_sgd(cfg, [model], torch.device("cpu")).param_groups] == [(5, 2e-4)]


# ---- the report statistic, the protocol card, derived rows, borrowed rows ----

def _run(root, name, dataset, model, mixer, seed, metrics, **cfg_extra):
    import yaml

    folder = root / name
    folder.mkdir(parents=True)
    cfg = {"dataset": {"name": dataset, "crop_padding": 4, "flip": True, "mean": [0.5], "std": [0.5]},
           "model": {"name": model, "variant": "fb", "stem": "cifar"}, "seed": seed,
           "mixer": {"name": mixer, "alpha": 1.0, "prob": 1.0, "per_sample": False, "stop_fraction": None,
                     "stop_epoch": None, "lamix_inputs": "average", "lamix_original_batches": True,
                     "lamix_global_label": True},
           "regularizer": {"name": cfg_extra.pop("reg", "none")}, "loss": {"label_smoothing": 0.0, "form": "ce"},
           "trainer": {"epochs": 400, "batch_size": 128, "bf16": True},
           "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
           "sched": {"name": "multistep", "milestones": [101, 151], "gamma": 0.1, "warmup_epochs": 0}}
    for key, value in cfg_extra.items():
        group, leaf = key.split("__")
        cfg[group][leaf] = value
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _lines(text):
    return [l for l in text[text.index("\nours: "):].splitlines() if l.startswith("| ")]


def test_statistic_maps_to_the_per_epoch_accuracy_keys():
    from mixexp.protocols import stat_value

    m = {"test_acc": 80.0, "test_error": 20.0, "median10_test_acc": 79.5, "best_test_acc": 81.0, "test_nll": 0.7}
    assert [stat_value(m, "test_acc", s) for s in ("final", "median10", "best")] == [80.0, 79.5, 81.0]
    assert [stat_value(m, "test_error", s) for s in ("final", "median10", "best")] == [20.0, 20.5, 19.0]
    with pytest.raises(ValueError, match="--stat median10 is only defined for test_acc and test_error"):
        stat_value(m, "test_nll", "median10")


def test_lamix_table3_uses_median10_and_borrows_vanilla_from_table1_runs(tmp_path):
    from mixexp.report import build_paper_report

    puzzle, fb = tmp_path / "multirun" / "lamix" / "puzzle", tmp_path / "multirun" / "lamix" / "fb"
    for seed, (final, median) in enumerate([(96.0, 96.5), (97.0, 96.9)]):
        _run(puzzle, f"p{seed}", "cifar10", "preactresnet18", "puzzlemix", seed,
             {"test_acc": final, "test_error": 100 - final, "median10_test_acc": median})
    _run(fb, "erm0", "cifar10", "preactresnet18", "none", 0, {"test_acc": 95.0, "test_error": 5.0, "median10_test_acc": 94.0})
    text, rows = build_paper_report(puzzle, "lamix-table3")
    cell = next(r for r in rows if r["method"] == "puzzlemix" and r["dataset"] == "cifar10" and r["model"] == "preactresnet18")
    assert (cell["statistic"], cell["key"], cell["ours_mean"]) == ("median10", "median10_test_acc", pytest.approx(100 - 96.7))
    vanilla = next(r for r in rows if r["method"] == "erm" and r["dataset"] == "cifar10" and r["model"] == "preactresnet18")
    assert (vanilla["statistic"], vanilla["ours_mean"], vanilla["n"]) == ("final", 5.0, 1)  # Table 1's final-epoch error
    assert f"**row erm** (1 runs in {fb.resolve()}; statistic: the last epoch's test metrics)" in text
    assert "- CutMix probability" not in text and "| loss | BCE on softmax outputs" in text
    final = build_paper_report(puzzle, "lamix-table3", stat="final")[1]
    assert next(r for r in final if r["method"] == "puzzlemix" and r["n"])["ours_mean"] == pytest.approx(100 - 96.5)


def test_protocol_card_is_generated_from_the_runs_configs(tmp_path):
    from mixexp.report import build_paper_report

    _run(tmp_path, "c0", "cifar10", "preactresnet18", "cutmix", 0, {"test_error": 4.0}, mixer__prob=0.5)
    _run(tmp_path, "c1", "cifar10", "preactresnet18", "cutmix", 1, {"test_error": 4.2}, mixer__prob=0.5)
    text, _ = build_paper_report(tmp_path, "lamix-table1")
    card = text[: text.index("\nours: ")]
    for line in ["- epochs: 400", "- batch: 128", "- optimiser: SGD lr 0.1, momentum 0.9, weight decay 0.0001",
                 "- schedule: x0.1 at [101, 151]", "- alpha: cutmix: 1.0", "- CutMix probability: 0.5",
                 "- loss form: ce", "- architecture: preactresnet18 (variant fb, stem cifar)",
                 "- crop/flip: cifar10: padding 4, flip True", "- normalisation: cifar10: mean [0.5], std [0.5]",
                 "- precision: bf16 autocast on CUDA", "- seeds: 0, 1", "statistic: the last epoch's test metrics"]:
        assert line in card, line
    assert "| schedule | lr /10 at 0-based epochs 101 and 151 of 400 |" in card  # a deviation row, with its source


def test_sem_improvement_rows_are_computed(tmp_path):
    from mixexp.report import build_paper_report

    _run(tmp_path, "m", "cifar10", "preactresnet18", "mixup", 0, {"test_acc": 95.0})
    _run(tmp_path, "s", "cifar10", "preactresnet18", "mixup", 0, {"test_acc": 96.0}, reg="sem")
    lines = _lines(build_paper_report(tmp_path, "sem-table1")[0])
    names = [l.split(" | ")[0][2:] for l in lines]
    assert names[2:6] == ["mixup", "mixup+sem", "Improvement", "mixup+es"]
    improvement = lines[names.index("Improvement")].split(" | ")
    assert improvement[1:4] == ["+1.00", "+0.68", "+0.32"]  # ours 96 - 95; paper 96.45 - 95.77


def test_report_cli_stat_option(tmp_path):
    from conftest import run_cli

    _run(tmp_path, "a", "cifar10", "preactresnet18", "mixup", 0, {"test_acc": 90.0, "best_test_acc": 91.0})
    result = run_cli(["mixexp-report", str(tmp_path), "--metrics", "test_acc", "--stat", "best"])
    assert result.returncode == 0 and "| 91.00 |" in result.stdout and "best statistic" in result.stdout
    bad = run_cli(["mixexp-report", str(tmp_path), "--metrics", "test_nll", "--stat", "best"])
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --stat best is only defined for test_acc and test_error, not test_nll (use --stat final)")


# ---- the validation split ----

def test_validation_split_is_disjoint_stratified_and_fixed():
    from mixexp.data.split import stratified_split

    labels = torch.arange(10).repeat_interleave(torch.tensor([50, 60, 70, 80, 90, 100, 110, 120, 130, 140]))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(3))]
    train, val = stratified_split(labels, 0.1)
    assert len(set(train.tolist()) & set(val.tolist())) == 0 and len(train) + len(val) == len(labels)
    assert torch.bincount(labels[val]).tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # 10% of every class
    torch.manual_seed(123)  # the run seed does not move the split
    again = stratified_split(labels, 0.1)
    assert torch.equal(again[1], val) and not torch.equal(stratified_split(labels, 0.1, seed=1)[1], val)


def test_dataset_val_fraction_holds_out_part_of_the_training_set(fast_overrides):
    from mixexp.data import load_dataset

    cfg = compose_cfg([*fast_overrides, "dataset.train_size=200", "dataset.val_fraction=0.25"])
    validate(cfg)
    data = load_dataset(cfg.dataset, cfg.paths.data_dir)
    full = load_dataset(compose_cfg([*fast_overrides, "dataset.train_size=200"]).dataset, cfg.paths.data_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (150, 50, len(full.test))
    rows = lambda s: {tuple(x.flatten().tolist()) for x in s.images}  # noqa: E731
    assert rows(data.train) | rows(data.val) == rows(full.train) and not rows(data.train) & rows(data.val)
    assert torch.equal(data.test.images, full.test.images)  # the test set is untouched
    assert load_dataset(compose_cfg(fast_overrides).dataset, cfg.paths.data_dir).val is None


# ---- the compute plan ----

def test_plan_arithmetic_on_the_demo_grid(tmp_path):
    from mixexp.plan import MAX_IMAGES_PER_S, Throughput, format_plan, plan_target
    from mixexp.reproduce import Target

    target = Target("demo", "demo")
    throughput = Throughput(1e9, {"mixup": 1.0, "cutmix": 2.0}, "test")  # every model hits the ceiling
    (tmp_path / "demo" / "mixer=cutmix,seed=1").mkdir(parents=True)
    (tmp_path / "demo" / "mixer=cutmix,seed=1" / "metrics.json").write_text("{}")
    runs = plan_target("demo", target, tmp_path, [], throughput)
    assert len(runs) == 9 and [r.finished for r in runs].count(True) == 1
    n_train, n_test = 1797 - 360, 360  # scikit-learn digits, test_fraction 0.2 rounded up
    erm = next(r for r in runs if r.folder.name == "mixer=none,seed=0")
    assert (erm.epochs, erm.train_images, erm.eval_images) == (30, 30 * n_train, 30 * n_test)
    assert erm.gpu_hours == pytest.approx(30 * (n_train + n_test / 3) / MAX_IMAGES_PER_S / 3600)
    cutmix = next(r for r in runs if r.folder.name == "mixer=cutmix,seed=0")
    assert cutmix.gpu_hours == pytest.approx(2 * erm.gpu_hours)  # twice mixup's step time
    text = format_plan({"demo": runs, "again": runs[:3]}, "test")
    total = next(l for l in text.splitlines() if l.startswith("| **total**"))
    hours = 3 * 3 * erm.gpu_hours + 3 * erm.gpu_hours  # erm and mixup: 1x; cutmix: 2x (3 seeds each)
    left = hours - cutmix.gpu_hours
    assert total == (f"| **total** (distinct runs) | 9 | 1 | 30 | {9 * 30 * (n_train + n_test):,} | "
                     f"{hours:,.1f} | {left:,.1f} | 0.0 | {9 * erm.checkpoint_bytes / 1e9:,.1f} |")
    assert erm.checkpoint_bytes > 0 and {r.checkpoint_bytes for r in runs} == {erm.checkpoint_bytes}


def test_plan_counts_the_evaluation_sets_run_after_training():
    from mixexp.plan import final_eval_images

    ub = point("rescaled/imagenet_ub", "method=mixup_rescaled_ub")
    # ImageNet-C 15 x 5 x 50,000 + ImageNetV2 10,000 (+ ObjectNet, unknown until prepared), twice: rescaled too
    assert final_eval_images(ub) == 2 * (15 * 5 * 50_000 + 10_000)
    cifar = point("sem/table2", "method=mixup", "dataset=cifar10", "model=preactresnet18", "eval.ood=[svhn,lsun_crop]")
    assert list(cifar.eval.shift) == ["cifar10_c", "cifar10_1", "cifar10_2"] and not cifar.eval.rescaled
    # CIFAR-10-C 15 x 5 x 10,000, CIFAR-10.1 2,000, CIFAR-10.2 2,000, SVHN 26,032, LSUN-Crop 10,000
    assert final_eval_images(cifar) == 750_000 + 2_000 + 2_000 + 26_032 + 10_000
    assert final_eval_images(point("rescaled/imagenet_ub", "method=erm", "eval.severities=[1]",
                                   "eval.corruptions=[fog]", "eval.rescaled=false")) == 50_000 + 10_000


def test_sem_tune_presets_search_alpha_and_gamma_on_the_validation_split():
    from hydra import compose, initialize_config_dir

    from mixexp.config import CONF_DIR

    cfg = point("sem/tune")
    assert cfg.dataset.val_fraction == 0.1 and cfg.regularizer.name == "sem" and cfg.trainer.epochs == 200
    assert _sweep_params("sem/tune") == {"mixer.alpha": "0.2,0.5,1.0,2.0", "regularizer.gamma": "0.1,0.3,1.0,3.0", "seed": "0"}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = compose(config_name="config", overrides=["experiment=sem/tune_optuna"], return_hydra_config=True).hydra
    assert hydra.sweeper._target_.endswith("OptunaSweeper") and hydra.sweeper.direction == "maximize"
    assert hydra.sweeper.sampler.seed == 0 and hydra.sweeper.params["mixer.alpha"] == "interval(0.1, 2.0)"
    assert hydra.sweep.dir == "multirun/sem_tune_optuna"


def test_plain_reports_carry_a_protocol_card_too(tmp_path):
    from mixexp.report import folder_card

    _run(tmp_path, "l", "cifar100", "preactresnet18", "lamix", 0, {"test_error": 20.0})
    _run(tmp_path, "m", "cifar100", "preactresnet18", "mixup", 1, {"test_error": 21.0})
    card = folder_card("lamix-fig4", tmp_path, ["method=lamix"])
    assert card.startswith("### Protocol of lamix-fig4") and "(1 runs in" in card and "- seeds: 0\n" in card
    assert "| CutMix probability | 0.5 (method=cutmix_prob05) |" in card  # the fb recipe's deviations
