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


# The composed recipes against the authors' settings: tests/test_fidelity.py (every grid point of every preset).


def test_lamix_fb_scaled_is_the_named_alternative():
    cfg = point("lamix/table1", "recipe=lamix_fb_scaled", "dataset=cifar10", "model=preactresnet18_fb", "method=mixup")
    assert list(cfg.sched.milestones) == [200, 300] and cfg.trainer.epochs == 400 and cfg.optim.lr == 0.1
    # the per-dataset settings of recipe=lamix_fb follow: fb's CIFAR-10 constants (train.py l.58-59)
    assert list(cfg.dataset.std) == [0.2023, 0.1994, 0.2010] and cfg.dataset.flip is True


def test_recipe_dataset_settings_follow_the_recipe_and_the_dataset():
    # conf/recipe_dataset/<recipe>_<dataset>.yaml, chosen by the defaults list's ${recipe}_${dataset}
    fb_svhn = point("lamix/table1", "dataset=svhn", "model=resnet50", "method=erm")
    assert list(fb_svhn.dataset.mean) == [0.4914, 0.4822, 0.4465] and fb_svhn.dataset.flip is True
    fb_mnist = point("lamix/table1", "dataset=mnist", "model=resnet50", "method=erm")
    assert list(fb_mnist.dataset.mean) == [0.1307] and fb_mnist.dataset.flip is True  # grey: its own statistics
    tiny = point("lamix/table4", "dataset=tinyimagenet", "model=resnet50_stride2", "method=puzzlemix_tiny")
    assert (list(tiny.dataset.mean), tiny.dataset.crop_padding) == ([0.5] * 3, 4)
    plain = compose_cfg(["dataset=cifar10"])  # no recipe: the dataset's own statistics
    assert list(plain.dataset.std) == [0.2470, 0.2435, 0.2616]


def test_rescaled_pwc_is_reproduced_by_the_ub_mixup_run_in_the_ub_runs_folder():
    from mixexp.reproduce import TARGETS

    assert _sweep_params("rescaled/imagenet") == {"method": "mixup_rescaled_ub", "seed": "0"}
    assert TARGETS["rescaled-imagenet"].runs == TARGETS["rescaled-imagenet-ub"].runs == "rescaled/imagenet_ub"
    pwc, ub = point("rescaled/imagenet", "method=mixup_rescaled_ub"), point("rescaled/imagenet_ub", "method=mixup_rescaled_ub")
    assert pwc == ub  # one training serves both tables


def test_ub_schedule_scales_with_the_run_length_as_ub_does():
    from mixexp.train_utils import build_scheduler, effective_schedule

    erm, mixup = point("rescaled/imagenet_ub", "method=erm"), point("rescaled/imagenet_ub", "method=mixup_rescaled_ub")
    assert effective_schedule(erm.sched, erm.trainer.epochs) == ([30, 60, 80], 5)
    assert effective_schedule(mixup.sched, mixup.trainer.epochs) == ([66, 133, 177], 11)  # (m * 200) // 90
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.6)
    sched = build_scheduler(mixup.sched, opt, mixup.trainer.epochs, 1.6)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[10] < 1.6 and lrs[11] == pytest.approx(1.6) and lrs[65] == pytest.approx(1.6)
    assert lrs[66] == pytest.approx(0.16) and lrs[133] == pytest.approx(0.016) and lrs[177] == pytest.approx(0.0016)


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
    cfg = {"dataset": {"name": dataset, "channels": 3, "crop_padding": 4, "flip": True, "mean": [0.5], "std": [0.5]},
           "model": {"name": model, "variant": "fb", "stem": "cifar"}, "seed": seed,
           "mixer": {"name": mixer, "alpha": 1.0, "prob": 1.0, "per_sample": False, "stop_fraction": None,
                     "stop_epoch": None, "lamix_beta": 0.5, "lamix_original_batches": True,
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
    assert "- CutMix probability" not in text
    # these runs (written above with cross-entropy, lr 0.1, 400 epochs) against PuzzleMix's settings
    assert "| loss.form | ce | bce_softmax | puzzle main.py l.292, 328, 394" in text
    assert ("| optim.lr (dataset.name cifar10/mnist/fashion_mnist/svhn) | 0.1 | silent (the recipe chose 0.2) | puzzle README "
            "| not this recipe's value") in text
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
    # rows: these runs against fb's settings, each with its source and why (the normalisation was written as 0.5)
    assert ("| dataset.mean (dataset.name cifar10) | [0.5] | [0.4914, 0.4822, 0.4465] | fb train.py l.58 | "
            "not this recipe's value") in card
    assert "| trainer.bf16 | True | False | fb train.py trains in float32" in card  # a listed deviation
    assert "| seeds | 2 | 5 | lamix.txt 3.1: 'the mean of five runs' |" in card
    assert "| statistic | final | silent (the recipe chose final) |" in card and "| seeding |" in card  # a choice, a note
    assert "| lr_drops |" not in card and "| mixer.prob (mixer.name cutmix) |" not in card  # equal: no row
    assert "| trained by mixexp |" not in card  # these runs carry no provenance


def test_the_card_flags_runs_of_an_older_mixexp_that_computed_another_function(tmp_path):
    from mixexp.report import build_paper_report

    _run(tmp_path, "old", "cifar10", "preactresnet18", "mixup", 0, {"test_error": 4.0, "provenance": {"mixexp_version": "0.1.0"}})
    _run(tmp_path, "new", "cifar10", "preactresnet18", "mixup", 1, {"test_error": 4.0, "provenance": {"mixexp_version": "0.2.0"}})
    card = build_paper_report(tmp_path, "lamix-table1")[0]
    assert ("| trained by mixexp | 0.1.0 | >= 0.2.0 | mixexp's changelog | before 0.2.0, model.variant=fb added x "
            "instead of relu(bn1(x)) on the identity path: train these runs again |") in card


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
    assert "| trainer.bf16 | True | False |" in card and "| CutMix |" in card  # the fb recipe's deviation and notes
    assert "| mixer.lamix_beta" not in card  # beta 0.5 is one of Fig. 4's sweep: no difference


def test_a_derived_recipe_keeps_its_bases_per_dataset_settings():
    # conf/recipe_dataset/<recipe>_<dataset>.yaml is found by the recipe's own name: a recipe that builds on
    # another (defaults: [- lamix_fb]) needs its own file for each dataset its base has one for, or it silently
    # loses them (fb's normalisation, PuzzleMix's crop)
    from omegaconf import OmegaConf

    from mixexp.config import CONF_DIR
    from mixexp.data import DATASETS

    files = {p.stem for p in (CONF_DIR / "recipe_dataset").glob("*.yaml")}
    for path in (CONF_DIR / "recipe").glob("*.yaml"):
        bases = [d for d in OmegaConf.load(path).get("defaults", []) if isinstance(d, str) and d != "_self_"]
        for base in bases:
            for dataset in DATASETS:
                if f"{base}_{dataset}" in files:
                    assert f"{path.stem}_{dataset}" in files, f"recipe {path.stem} loses recipe_dataset/{base}_{dataset}"
                    ours, theirs = (compose_cfg([f"recipe={r}", f"dataset={dataset}"]).dataset for r in (path.stem, base))
                    assert ours == theirs, f"recipe {path.stem} on {dataset}"
