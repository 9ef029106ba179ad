"""Every config file composes and is checked against its schema; bad values fail with one line."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_cfg, run_cli
from mixexp.config import CONF_DIR, ConfigError, option, validate
from mixexp.data import DATASETS

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
# every file, sub-folders included (experiment/sem/table1 is option "sem/table1" of group experiment)
OPTIONS = [(g, f.relative_to(CONF_DIR / g).with_suffix("").as_posix()) for g in GROUPS
           for f in sorted((CONF_DIR / g).rglob("*.yaml"))]


def test_every_table_preset_is_composed_here():
    assert {"sem/table1", "sem/table3", "lamix/table8", "lamix/fig4", "rescaled/imagenet"} <= {
        o for g, o in OPTIONS if g == "experiment"}


def test_groups_are_the_documented_ones():
    for group in ["dataset", "model", "mixer", "regularizer", "optim", "sched", "trainer", "logger", "experiment"]:
        assert group in GROUPS


def _needs(group: str, option: str):
    """Options that only make sense with others: SEM needs a mixer; a recipe's per-dataset settings
    (recipe_dataset/<recipe>_<dataset>) are chosen by that recipe and dataset."""
    if group == "recipe_dataset":
        dataset = max((d for d in DATASETS if option.endswith("_" + d)), key=len)
        return [f"recipe={option[: -len(dataset) - 1]}", f"dataset={dataset}"]
    return {("regularizer", "sem"): ["mixer=mixup"]}.get((group, option), [f"{group}={option}"])


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_config_file_composes_and_validates(group, option):
    cfg = compose_cfg(_needs(group, option) + ([f"{group}={option}"] if group == "regularizer" else []))
    if group == "experiment":
        assert cfg.name == option.split("/")[0] or cfg.name.startswith(option.split("/")[0])
    elif group in ("dataset", "model", "mixer", "regularizer", "optim", "sched", "logger"):
        # an option may be another's with other values (model=preactresnet18_fb is a preactresnet18)
        assert option.startswith(cfg[group].name)
    validate(cfg)


def test_defaults_give_a_runnable_config():
    cfg = compose_cfg()
    validate(cfg)
    assert (cfg.dataset.name, cfg.model.name, cfg.mixer.name) == ("digits", "simplecnn", "none")
    assert OmegaConf.is_missing(cfg, "paths") is False


@pytest.mark.parametrize(
    "override,message",
    [
        ("mixer.alpha=-1", "mixer.alpha=-1.0 is not allowed: must be >= 0"),
        ("mixer.alpha=inf", "mixer.alpha=inf is not allowed: must be a finite number"),
        ("optim.lr=inf", "optim.lr=inf is not allowed: must be a finite number"),
        ("sched.min_lr=inf", "sched.min_lr=inf is not allowed: must be a finite number"),
        ("seed=9223372036854775808", "seed=9223372036854775808 is not allowed: must be a whole number in [0, 2^63)"),
        ("dataset.train_size=1", "dataset.train_size=1 is not allowed: must be >= 2"),
        ("trainer.epochs=0", "trainer.epochs=0 is not allowed: must be a whole number > 0"),
        ("trainer.batch_size=-2", "trainer.batch_size=-2 is not allowed"),
        ("mixer.prob=1.5", "mixer.prob=1.5 is not allowed: must be a probability in [0, 1]"),
        ("mixer.prob=-0.1", "mixer.prob=-0.1 is not allowed"),
        ("optim.momentum=1.0", "optim.momentum=1.0 is not allowed"),
        ("dataset.channels=2", "dataset.channels=2 is not allowed"),
        ("sched.milestones=[150,100]", "sched.milestones=[150, 100] is not allowed"),
    ],
)
def test_validation_names_key_and_allowed_values(override, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["mixer=mixup", override]))
    assert message in str(info.value)


@pytest.mark.parametrize(
    "args,line",
    [
        (["mixer=bogus"], "error: mixer=bogus is not allowed: choose one of "
         + ", ".join(sorted(p.stem for p in (CONF_DIR / "mixer").glob("*.yaml")))),
        (["mixer.alpha=-1"], "error: mixer.alpha=-1.0 is not allowed: must be >= 0 (0 turns mixing off)"),
        (["mixer=mixup", "mixer.alph=1"], "error: mixer.alph is not a key of mixer; allowed keys: name, alpha, "
         "stop_fraction, stop_epoch, per_sample, prob"),
        (["mixer=mixup", "+mixer.alhpa=1"], "error: mixer.alhpa is not a key of mixer; allowed keys: name, alpha,"),
        (["experiment=sem/table9"], "error: experiment=sem/table9 is not allowed: choose one of demo, lamix/fig4,"),
        (["-m", "mixer=mixup,bogus"], "error: mixer=bogus is not allowed: choose one of cutmix,"),
        (["trainer.batch_size=0"], "error: trainer.batch_size=0 is not allowed: must be a whole number > 0"),
        (["mixer.alpha=abc"], "error: mixer.alpha: Value 'abc' of type 'str' could not be converted to Float"),
        (["dataset=nope"], "error: dataset=nope is not allowed: choose one of"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, line):
    result = run_cli(["mixexp-train", *args, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(line)
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_cfg_job_shows_only_the_chosen_options_keys():
    mixup = run_cli(["mixexp-train", "--cfg", "job", "mixer=mixup"])
    assert mixup.returncode == 0, mixup.stderr
    job = OmegaConf.create(mixup.stdout)
    assert sorted(job.mixer) == ["alpha", "name", "pairing", "per_sample", "prob", "stop_epoch", "stop_fraction",
                                 "truncated"]
    puzzle = OmegaConf.create(run_cli(["mixexp-train", "--cfg", "job", "mixer=puzzlemix"]).stdout)
    assert {"block_sizes", "t_eps", "clean_lam"} <= set(puzzle.mixer) and "block_sizes" not in mixup.stdout


def test_lamix_puzzle_nests_puzzlemix_options_under_mixer_inputs():
    cfg = compose_cfg(["method=lamix_puzzle", "dataset=synthetic", "mixer.inputs.beta=0.7"])
    validate(cfg)
    schema = option(cfg, "mixer")
    assert (schema.name, schema.lamix_beta, schema.inputs.name, schema.inputs.beta) == ("lamix", 1.0, "puzzlemix", 0.7)
    assert schema.label() == "lamix_puzzle" and cfg.label == "lamix_puzzle"
