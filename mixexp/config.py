"""Structured-config schemas for the config groups, and the checks types alone cannot express.

Groups with one shape (dataset, optim, sched, trainer, logger, eval, paths) have their dataclass here.
Groups whose options differ in their keys (mixer, regularizer, model) have one dataclass per option,
beside its code (e.g. :class:`mixexp.mixers.PuzzleMixConfig`), stored in Hydra's ConfigStore as
``schema/<group>/<option>`` and extended by ``conf/<group>/<option>.yaml``; so ``--cfg job`` shows only the
keys of the chosen options, a misspelt key fails while Hydra composes, and each option's defaults and
range checks are written once, beside its code. :func:`validate` runs every check before anything runs;
failures reach the user as one line (see ``mixexp.cli``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mixexp.checkpoint import FINAL_CHECKPOINTS
from mixexp.errors import FINITE, ConfigError, finite, one_of, require
from mixexp.data import DATASETS
from mixexp.losses import LossConfig
from mixexp.mixers import MIXERS
from mixexp.models import MODELS
from mixexp.paths import CONF_DIR  # noqa: F401 - re-exported
from mixexp.regularizers import REGULARIZERS

# The groups whose options each have their own schema, and the registries that hold them.
OPTION_GROUPS = {"mixer": MIXERS, "regularizer": REGULARIZERS, "model": MODELS}


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Channels the model sees: 1 keeps grey images grey, 3 replicates them (RGB sets must stay 3).
    channels: Optional[int] = None
    # Resize every image once, at load time, to this square size (None keeps the released size).
    resize: Optional[int] = None
    # Train augmentation, applied to whole batches on the training device.
    crop_padding: int = 0
    flip: bool = False
    # Per-channel normalisation, in [0, 1] pixel units; one value per channel the dataset has.
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)
    # The standard distribution-shift and OOD benchmarks of this training set (used by eval=standard).
    shift_sets: List[str] = field(default_factory=list)
    ood_sets: List[str] = field(default_factory=list)
    # ``digits``: share of the 1797 images held out for testing (stratified, fixed seed).
    test_fraction: float = 0.2
    # ``synthetic``: class-conditional random images.
    num_classes: int = 10
    image_size: int = 32
    train_size: int = 256
    test_size: int = 128
    noise: float = 0.25
    # Released datasets (cifar10, ..., imagenet): fetch and convert on first use when missing
    # (``mixexp-data prepare NAME`` does it ahead of time). ImageNet/ObjectNet cannot be downloaded.
    download: bool = False
    # Streamed datasets (imagenet, objectnet): DataLoader worker processes that decode images (0: none).
    num_workers: int = 8
    # Share of the training set held out as a validation split (0: none): fixed, stratified, seeded by
    # a constant independent of the run seed (mixexp.data.split); its metrics are reported as val_*.
    val_fraction: float = 0.0
    # Train and test on these classes only (e.g. [3, 4, 5]: LaMix Fig 8's cat, deer, dog of CIFAR-10),
    # relabelled 0..k-1 in the order given; empty: every class.
    classes: List[int] = field(default_factory=list)


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    # false: no weight decay on normalisation layers' scale and shift (uncertainty-baselines decays only
    # kernels and biases); true: every parameter, as torch.optim.SGD(model.parameters()) does.
    bn_weight_decay: bool = True


@dataclass
class SchedConfig:
    name: str = "multistep"
    # multistep: multiply the lr by gamma at each milestone epoch
    milestones: List[int] = field(default_factory=lambda: [100, 150])
    gamma: float = 0.1
    # cosine: anneal to min_lr over the run
    min_lr: float = 0.0
    # linear warm-up over the first warmup_epochs epochs (0: none)
    warmup_epochs: int = 0
    # null: milestones and warmup_epochs are epochs of this run. N: they are written for an N-epoch run and
    # scaled to trainer.epochs as floor(m * epochs / N) (uncertainty-baselines' ImageNet schedule, N = 90)
    reference_epochs: Optional[int] = None


@dataclass
class TrainerConfig:
    epochs: int = 200
    batch_size: int = 128
    eval_batch_size: int = 1000
    # "auto" takes CUDA when present; or "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    # bf16 autocast and channels_last memory format, used on CUDA only (CPU trains in float32).
    # Evaluation always runs in float32: bf16 logits would quantise NLL/ECE and tie AUROC scores.
    bf16: bool = True
    channels_last: bool = True
    # Bit-exact repeatability on CUDA (cuDNN deterministic kernels, no benchmark autotuning).
    deterministic: bool = False
    # torch.compile the model's feature extractor (every forward goes through it); pays off on GPU.
    compile: bool = False
    # Progress bar: "auto" draws one when stderr is a terminal, else plain log lines.
    progress: str = "auto"
    # Save last.pt every epoch (atomically), so that resume=true can continue.
    checkpoint: bool = True
    # What last.pt keeps once the last epoch is done. "full": also the optimiser, scheduler and RNG states,
    # so that the run can be extended (trainer.epochs raised, where the schedule allows it). "weights": the
    # weights, method state, rescaling statistics and history only: enough to evaluate it again and draw
    # figures, about half the disk with SGD momentum (budget=smoke uses it).
    final_checkpoint: str = "full"
    # CPU threads for torch (0 leaves torch's default).
    num_threads: int = 0
    # Stop a run after this many epochs in a row with a non-finite training loss (0: never), keeping the
    # last finite checkpoint; metrics.json then says diverged: true (its non-finite values are null).
    stop_on_divergence: int = 3
    # Also keep the model's weights after these epochs (snapshots/epoch_<N>.pt; LaMix Fig 8 draws them).
    snapshot_epochs: List[int] = field(default_factory=list)
    # Under torchrun: BatchNorm statistics over all ranks' shards (SyncBatchNorm; CUDA only).
    sync_bn: bool = False
    # BatchNorm statistics over fixed groups of this many consecutive examples of a (per-rank) batch, as
    # data-parallel training with this per-device batch computes them ("ghost" BatchNorm); 0: the whole batch.
    bn_group_size: int = 0


@dataclass
class LoggerConfig:
    name: str = "none"
    project: str = "mixexp"
    entity: Optional[str] = None
    # W&B mode when WANDB_MODE is not set: "offline" never needs an account.
    mode: str = "offline"
    # also upload last.pt in the run's artifact (metrics.json, history.csv and config.yaml always go)
    log_checkpoint: bool = False
    # log the training loss every N optimiser steps (0 = per epoch only)
    log_every_steps: int = 0


@dataclass
class EvalConfig:
    # Distribution-shift sets evaluated after training (cifar10_c, cifar100_c, cifar10_1, cifar10_2, objectnet,
    # imagenet_v2, imagenet_c).
    shift: List[str] = field(default_factory=list)
    # Out-of-distribution sets scored by max softmax probability (svhn, lsun_crop).
    ood: List[str] = field(default_factory=list)
    # CIFAR-C / ImageNet-C: severities and corruptions to evaluate (empty corruptions: the 15 benchmark ones).
    severities: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    corruptions: List[str] = field(default_factory=list)
    # ImageNet-C's files are 224 px centre crops already. "none": evaluate them as released (Hendrycks &
    # Dietterich); "center": Resize(256) + CenterCrop(224) again, as uncertainty-baselines' preprocessing does.
    imagenet_c_crop: str = "none"
    # Test-time rescaling (Carratino et al.) of a mixup-trained model: adds rescaled_test_* metrics.
    rescaled: bool = False
    # The rescaling's mean image x_bar: "unaugmented" (the training images as the test set is seen) or
    # "augmented" (one pass of the training pipeline's crops and flips, as uncertainty-baselines computes it)
    rescaling_mean: str = "unaugmented"


@dataclass
class PathsConfig:
    data_dir: str = MISSING


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: Any = MISSING
    mixer: Any = MISSING
    regularizer: Any = MISSING
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Experiment name: groups a sweep's runs (W&B group, run directory).
    name: str = "default"
    # The method's name as the papers spell it (set by conf/method/*; null: derived from the options).
    label: Optional[str] = None
    seed: int = 0
    # true: continue the run in hydra.run.dir; false: start (refused if the folder holds a run); auto: continue
    # when the folder holds a run, else start; null (default): auto for the jobs of a sweep (-m), false otherwise.
    resume: Any = None
    # Caps a budget preset puts on options that have the key (budget=smoke: wrn_widen_factor), read by
    # those options' yaml with oc.select; empty for real runs.
    budget_limits: Dict[str, Any] = field(default_factory=dict)


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; ``conf/config.yaml`` lists ``schema`` first in its defaults
    and each ``conf/<group>/<option>.yaml`` of an option group extends ``schema/<group>/<option>``."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    for group, registry in OPTION_GROUPS.items():
        for name, schema in registry.items():
            cs.store(group=f"schema/{group}", name=name, node=schema)


def option(cfg: DictConfig, group: str):
    """The schema object (e.g. a :class:`~mixexp.mixers.MixupConfig`) of ``cfg.<group>``: its dataclass is
    the registry's entry for its ``name``, so a run's resolved config.yaml (untyped) reads back the same.
    A nested node of the same group (LaMix's ``mixer.inputs``) becomes its own schema object too."""
    return _as_schema(OPTION_GROUPS[group], group, OmegaConf.to_container(cfg[group], resolve=True))


def _as_schema(registry, key: str, node: dict):
    one_of(f"{key}.name", node.get("name"), registry)
    nested = {k: _as_schema(registry, f"{key}.{k}", v) for k, v in node.items() if isinstance(v, dict) and "name" in v}
    plain = {k: v for k, v in node.items() if k not in nested}
    fields = [f.name for f in dataclasses.fields(registry[node["name"]])]
    unknown = [k for k in plain if k not in fields]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a key of {key}; allowed keys: {', '.join(fields)}")
    schema = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(registry[node["name"]]), plain))
    for k, v in nested.items():
        setattr(schema, k, v)
    return schema


def check_keys(cfg: DictConfig, schema=Config, prefix: str = "") -> None:
    """Reject keys the schema does not have (``+key=value`` on the command line adds them)."""
    names = [f.name for f in dataclasses.fields(schema)]
    for key in cfg.keys():
        full = f"{prefix}{key}"
        if key not in names:
            where = f" of {prefix[:-1]}" if prefix else ""
            raise ConfigError(f"{full} is not a key{where}; allowed keys: {', '.join(names)}")
        sub = schema.__dataclass_fields__[key].default_factory if key in schema.__dataclass_fields__ else None
        if dataclasses.is_dataclass(sub) and isinstance(cfg[key], DictConfig):
            check_keys(cfg[key], sub, full + ".")


def check_trainer(t) -> None:
    for key in ("epochs", "batch_size", "eval_batch_size"):
        require(t[key] > 0, f"trainer.{key}", t[key], "must be a whole number > 0")
    require(t.num_threads >= 0, "trainer.num_threads", t.num_threads, "must be >= 0 (0: torch's default)")
    require(t.stop_on_divergence >= 0, "trainer.stop_on_divergence", t.stop_on_divergence, "must be >= 0 (0: never)")
    require(t.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", t.device) is not None,
            "trainer.device", t.device, "use auto, cpu, cuda or cuda:N")
    one_of("trainer.progress", t.progress, ("auto", "bar", "log"))
    one_of("trainer.final_checkpoint", t.final_checkpoint, FINAL_CHECKPOINTS)
    require(t.bn_group_size >= 0, "trainer.bn_group_size", t.bn_group_size, "must be >= 0 (0: the whole batch)")
    require(not (t.bn_group_size and t.sync_bn), "trainer.bn_group_size", t.bn_group_size,
            "cannot be combined with trainer.sync_bn=true (statistics over groups, or over every rank: choose one)")


def check_dataset(d) -> None:
    require(0.0 <= d.val_fraction < 1.0, "dataset.val_fraction", d.val_fraction, "must lie in [0, 1) (0: no split)")
    require(0.0 < d.test_fraction < 1.0, "dataset.test_fraction", d.test_fraction, "must lie in (0, 1)")
    require(d.channels in (None, 1, 3), "dataset.channels", d.channels, "use 1, 3 or null (the dataset's own)")
    require(d.resize is None or d.resize > 0, "dataset.resize", d.resize, "must be > 0 or null")
    require(d.crop_padding >= 0, "dataset.crop_padding", d.crop_padding, "must be >= 0")
    require(len(d.mean) == len(d.std), "dataset.std", list(d.std), "needs one value per entry of dataset.mean")
    require(all(finite(s) and s > 0 for s in d.std), "dataset.std", list(d.std), "every value must be > 0")
    require(all(finite(m) for m in d.mean), "dataset.mean", list(d.mean), "every value must be finite")
    require(finite(d.noise), "dataset.noise", d.noise, FINITE)
    require(d.noise >= 0, "dataset.noise", d.noise, "must be >= 0 (the standard deviation of the synthetic noise)")
    require(d.num_classes >= 2, "dataset.num_classes", d.num_classes, "must be >= 2")
    require(d.image_size > 0 and d.test_size > 0, "dataset.image_size/test_size", (d.image_size, d.test_size),
            "must be > 0")
    require(d.train_size >= 2, "dataset.train_size", d.train_size, "must be >= 2 (a training batch needs two images)")
    require(d.num_workers >= 0, "dataset.num_workers", d.num_workers, "must be >= 0 (0 decodes in the main process)")
    classes = list(d.classes)
    require(not classes or (len(classes) >= 2 and len(set(classes)) == len(classes) and min(classes) >= 0),
            "dataset.classes", classes, "must be empty (every class) or >= 2 distinct class indices >= 0")


def check_optim(o, s, epochs: int) -> None:
    one_of("optim.name", o.name, ("sgd",))
    require(finite(o.lr), "optim.lr", o.lr, FINITE)
    require(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    require(0.0 <= o.momentum < 1.0, "optim.momentum", o.momentum, "must lie in [0, 1)")
    require(finite(o.weight_decay), "optim.weight_decay", o.weight_decay, FINITE)
    require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    require(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "needs optim.momentum > 0")
    one_of("sched.name", s.name, ("multistep", "cosine"))
    require(0.0 < s.gamma <= 1.0, "sched.gamma", s.gamma, "must lie in (0, 1]")
    require(list(s.milestones) == sorted(s.milestones) and all(x > 0 for x in s.milestones),
            "sched.milestones", list(s.milestones), "must be increasing epochs > 0")
    require(finite(s.min_lr), "sched.min_lr", s.min_lr, FINITE)
    require(s.min_lr >= 0, "sched.min_lr", s.min_lr, "must be >= 0")
    require(s.reference_epochs is None or s.reference_epochs > 0, "sched.reference_epochs", s.reference_epochs,
            "must be a whole number > 0 or null")
    from mixexp.train_utils import effective_schedule

    warmup = effective_schedule(s, epochs)[1]
    require(0 <= warmup < epochs, "sched.warmup_epochs", s.warmup_epochs,
            f"must give a warm-up in [0, trainer.epochs={epochs}) epochs (here {warmup})")


def validate(cfg: DictConfig) -> None:
    """Check keys, ranges and names of the whole config; raise :class:`ConfigError` naming the first bad key."""
    from mixexp.evaluation.checks import check_eval

    check_keys(cfg)
    require(0 <= cfg.seed < 2**63, "seed", cfg.seed, "must be a whole number in [0, 2^63)")
    require(cfg.resume in (None, True, False, "auto"), "resume", cfg.resume, "use true, false, auto or null")
    one_of("logger.name", cfg.logger.name, ("none", "wandb"))
    one_of("logger.mode", cfg.logger.mode, ("offline", "online", "disabled"))
    require(cfg.logger.log_every_steps >= 0, "logger.log_every_steps", cfg.logger.log_every_steps, "must be >= 0 (0 = off)")
    one_of("dataset.name", cfg.dataset.name, DATASETS)
    check_trainer(cfg.trainer)
    check_dataset(cfg.dataset)
    check_optim(cfg.optim, cfg.sched, cfg.trainer.epochs)
    LossConfig(**cfg.loss).check(cfg)
    mixer = option(cfg, "mixer")
    mixer.check(cfg)
    option(cfg, "regularizer").check(cfg, mixer)
    option(cfg, "model").check(cfg)
    check_eval(cfg)
    require(not cfg.dataset.classes or not (cfg.eval.shift or cfg.eval.ood), "dataset.classes", list(cfg.dataset.classes),
            "cannot be combined with eval.shift or eval.ood (those sets are labelled with every class)")
