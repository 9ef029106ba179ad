"""Structured-config schemas for every config group, and the checks types alone cannot express.

Each group under ``conf/`` (dataset, model, mixer, ...) is merged onto the dataclass of the same name
below, so a misspelt key or a wrong type fails while Hydra composes the config. Ranges (alpha >= 0,
epochs > 0, probabilities in [0, 1], names known to a registry) are checked by :func:`validate`
before anything runs. Both kinds of failure reach the user as a single line (see ``mixexp.cli``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A config value that is outside what is allowed; the message names the key and the allowed values."""


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
    # ``digits``: share of the 1797 images held out for testing (stratified, fixed seed).
    test_fraction: float = 0.2
    # ``synthetic``: class-conditional random images.
    num_classes: int = 10
    image_size: int = 32
    train_size: int = 256
    test_size: int = 128
    noise: float = 0.25


@dataclass
class ModelConfig:
    name: str = MISSING
    # Wide ResNet
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0
    # DenseNet
    growth_rate: int = 32
    # ResNet-50: "cifar" (3x3 conv, no max-pool) or "imagenet" (7x7 stride-2 conv and max-pool)
    stem: str = "cifar"
    # SimpleCNN: channels of the first stage
    width: int = 32


@dataclass
class MixerConfig:
    name: str = "none"
    # lambda ~ Beta(alpha, alpha); alpha = 0 turns mixing off (lambda = 1).
    alpha: float = 1.0
    # One lambda (and, for CutMix, one box) per batch as in the papers, or one per example.
    per_sample: bool = False
    # Probability that a batch is mixed at all (CutMix's "cutmix_prob").
    prob: float = 1.0


@dataclass
class RegularizerConfig:
    name: str = "none"


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4


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


@dataclass
class TrainerConfig:
    epochs: int = 200
    batch_size: int = 128
    eval_batch_size: int = 1000
    # "auto" takes CUDA when present; or "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    # bf16 autocast and channels_last memory format, used on CUDA only (CPU trains in float32).
    bf16: bool = True
    channels_last: bool = True
    # Bit-exact repeatability on CUDA (cuDNN deterministic kernels, no benchmark autotuning).
    deterministic: bool = False
    # Progress bar: "auto" draws one when stderr is a terminal, else plain log lines.
    progress: str = "auto"
    # Save last.pt every epoch (atomically), so that resume=true can continue.
    checkpoint: bool = True
    # CPU threads for torch (0 leaves torch's default).
    num_threads: int = 0


@dataclass
class LoggerConfig:
    name: str = "none"
    project: str = "mixexp"
    entity: Optional[str] = None
    # W&B mode when WANDB_MODE is not set: "offline" never needs an account.
    mode: str = "offline"


@dataclass
class PathsConfig:
    data_dir: str = MISSING


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Experiment name: groups a sweep's runs (W&B group, run directory).
    name: str = "default"
    seed: int = 0
    resume: bool = False


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; ``conf/config.yaml`` lists ``schema`` first in its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


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


def validate(cfg: DictConfig) -> None:
    """Check keys, ranges and registry names; raise :class:`ConfigError` naming the first bad key."""
    check_keys(cfg)
    from mixexp.data import DATASETS
    from mixexp.mixers import MIXERS
    from mixexp.models import MODELS
    from mixexp.regularizers import REGULARIZERS
    from mixexp.train_utils import OPTIMIZERS, SCHEDULERS

    def one_of(key: str, value: Any, names) -> None:
        _require(value in names, key, value, "choose one of " + ", ".join(sorted(names)))

    one_of("dataset.name", cfg.dataset.name, DATASETS)
    one_of("model.name", cfg.model.name, MODELS)
    one_of("mixer.name", cfg.mixer.name, MIXERS)
    one_of("regularizer.name", cfg.regularizer.name, REGULARIZERS)
    one_of("optim.name", cfg.optim.name, OPTIMIZERS)
    one_of("sched.name", cfg.sched.name, SCHEDULERS)
    one_of("logger.name", cfg.logger.name, ("none", "wandb"))
    one_of("logger.mode", cfg.logger.mode, ("offline", "online", "disabled"))
    one_of("model.stem", cfg.model.stem, ("cifar", "imagenet"))
    one_of("trainer.progress", cfg.trainer.progress, ("auto", "bar", "log"))

    t = cfg.trainer
    _require(t.epochs > 0, "trainer.epochs", t.epochs, "must be a whole number > 0")
    _require(t.batch_size > 0, "trainer.batch_size", t.batch_size, "must be a whole number > 0")
    _require(t.eval_batch_size > 0, "trainer.eval_batch_size", t.eval_batch_size, "must be a whole number > 0")
    _require(t.num_threads >= 0, "trainer.num_threads", t.num_threads, "must be >= 0 (0: torch's default)")
    _require(
        t.device in ("auto", "cpu") or t.device == "cuda" or t.device.startswith("cuda:"),
        "trainer.device", t.device, "use auto, cpu, cuda or cuda:N",
    )

    m = cfg.mixer
    _require(m.alpha >= 0, "mixer.alpha", m.alpha, "must be >= 0 (0 turns mixing off)")
    _require(0.0 <= m.prob <= 1.0, "mixer.prob", m.prob, "must be a probability in [0, 1]")

    d = cfg.dataset
    _require(0.0 < d.test_fraction < 1.0, "dataset.test_fraction", d.test_fraction, "must lie in (0, 1)")
    _require(d.channels in (None, 1, 3), "dataset.channels", d.channels, "use 1, 3 or null (the dataset's own)")
    _require(d.resize is None or d.resize > 0, "dataset.resize", d.resize, "must be > 0 or null")
    _require(d.crop_padding >= 0, "dataset.crop_padding", d.crop_padding, "must be >= 0")
    _require(len(d.mean) == len(d.std), "dataset.std", list(d.std), "needs one value per entry of dataset.mean")
    _require(all(s > 0 for s in d.std), "dataset.std", list(d.std), "every value must be > 0")
    _require(d.num_classes >= 2, "dataset.num_classes", d.num_classes, "must be >= 2")
    _require(d.image_size > 0 and d.train_size > 0 and d.test_size > 0,
             "dataset.image_size/train_size/test_size", (d.image_size, d.train_size, d.test_size), "must be > 0")

    o = cfg.optim
    _require(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    _require(0.0 <= o.momentum < 1.0, "optim.momentum", o.momentum, "must lie in [0, 1)")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _require(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "needs optim.momentum > 0")

    s = cfg.sched
    _require(0.0 < s.gamma <= 1.0, "sched.gamma", s.gamma, "must lie in (0, 1]")
    _require(list(s.milestones) == sorted(s.milestones) and all(x > 0 for x in s.milestones),
             "sched.milestones", list(s.milestones), "must be increasing epochs > 0")
    _require(s.min_lr >= 0, "sched.min_lr", s.min_lr, "must be >= 0")
    _require(0 <= s.warmup_epochs < t.epochs, "sched.warmup_epochs", s.warmup_epochs,
             f"must lie in [0, trainer.epochs={t.epochs})")

    md = cfg.model
    _require(0.0 <= md.dropout < 1.0, "model.dropout", md.dropout, "must be a probability in [0, 1)")
    _require((md.depth - 4) % 6 == 0 and md.depth >= 10, "model.depth", md.depth, "Wide ResNet depth must be 6n+4 (e.g. 16, 22, 28, 40)")
    _require(md.widen_factor > 0 and md.growth_rate > 0 and md.width > 0,
             "model.widen_factor/growth_rate/width", (md.widen_factor, md.growth_rate, md.width), "must be > 0")
