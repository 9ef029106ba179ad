"""Structured-config schemas for every config group, and the checks types alone cannot express.

Each group under ``conf/`` (dataset, model, mixer, ...) is merged onto the dataclass of the same name
below, so a misspelt key or a wrong type fails while Hydra composes the config. Ranges (alpha >= 0,
epochs > 0, probabilities in [0, 1], names known to a registry) are checked by :func:`validate`
before anything runs. Both kinds of failure reach the user as a single line (see ``mixexp.cli``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from mixexp.errors import ConfigError  # noqa: F401 - re-exported for older imports
from mixexp.paths import CONF_DIR  # noqa: F401


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


@dataclass
class ModelConfig:
    name: str = MISSING
    # Wide ResNet
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0
    # DenseNet
    growth_rate: int = 32
    # ResNet-50: "cifar" (3x3 conv, no max-pool) or "imagenet" (7x7 stride-2 conv and max-pool);
    # "stride2": the 3x3 first conv with stride 2, as PuzzleMix main.py builds its nets for 64 px Tiny-ImageNet.
    stem: str = "cifar"
    # PreActResNet18: "preact" (ours, final BN+ReLU), "fb" (facebookresearch/mixup-cifar10 models/resnet.py
    # ResNet18), "puzzlemix" (snu-mllab/PuzzleMix models/preresnet.py: no stem BN, no final BN).
    variant: str = "preact"
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
    # ES: stop mixing (and every term that needs a mixed batch) for the last part of training and
    # train plain ERM from epoch stop_epoch on, or from round(stop_fraction * epochs). null: never.
    stop_fraction: Optional[float] = None
    stop_epoch: Optional[int] = None
    # LaMix: target = beta * local label + (1 - beta) * global soft label.
    lamix_beta: float = 0.5
    # LaMix: alternate mini-batches of original and mixed inputs (false: mixed only, Table 7).
    lamix_original_batches: bool = True
    # LaMix: use the global soft label (false: local label only, Table 8).
    lamix_global_label: bool = True
    # LaMix: how the input pair is mixed: "average" (0.5 x_i + 0.5 x_j) or "puzzlemix" (at lambda = 0.5).
    lamix_inputs: str = "average"
    # PuzzleMix (official CIFAR values in conf/mixer/puzzlemix.yaml). Grid sizes n (blocks per side)
    # drawn uniformly per batch; sizes that do not tile the image (n > H, or H, W not divisible) are skipped.
    block_sizes: List[int] = field(default_factory=lambda: [2, 4, 8, 16])
    # Graph cut: label smoothness beta, data-local smoothness gamma, prior eta, cells of the
    # smoothness pooling, number of mask values (3: {1, 0.5, 0}).
    beta: float = 1.2
    gamma: float = 0.5
    eta: float = 0.2
    neigh_size: int = 4
    n_labels: int = 3
    # Transport of salient blocks: cost weight t_eps of the move distance, block size t_size in pixels
    # (-1: the cut's blocks), solver "auto" (approx on an accelerator, exact on the CPU), "approx", "exact".
    transport: bool = True
    t_eps: float = 0.8
    t_size: int = -1
    t_solver: str = "auto"
    # The clean loss times clean_lam is added to the loss (0: the saliency pass runs in eval mode, no gradient).
    clean_lam: float = 0.0
    # Adversarial PuzzleMix: FGSM step of adv_eps/255 pixel units with probability adv_p per example.
    adv_p: float = 0.0
    adv_eps: float = 10.0
    # Per-channel std of the input normalisation (pixel units), for adv_eps and the smoothness term;
    # empty: the inputs are taken as pixel values.
    pixel_std: List[float] = field(default_factory=list)
    # Threads that run the graph cuts (0: os.cpu_count(); 1: the calling thread).
    workers: int = 0


@dataclass
class RegularizerConfig:
    name: str = "none"
    # SEM: loss += gamma * D(g(x~), lam * g(x_i) + (1 - lam) * g(x_j)), g = model.features
    gamma: float = 1.0
    # D: "mse" (mean squared error over feature dimensions), "cosine" (1 - cosine similarity),
    # "nmse" (mean squared error between L2-normalised vectors)
    distance: str = "mse"
    # Stop the gradient through the target lam * g(x_i) + (1 - lam) * g(x_j) (the clean pass is then
    # forward-only: about 1.3x a mixup step instead of about 2x)
    detach_target: bool = True


@dataclass
class LossConfig:
    # Uniform label smoothing epsilon: target = (1 - eps) * (mixed) one-hot + eps / num_classes.
    label_smoothing: float = 0.0
    # "ce": cross-entropy against the (mixed) target; "bce_softmax": PuzzleMix main.py's loss for every
    # method, binary cross-entropy of the softmax outputs against the soft target (mean over batch x classes).
    form: str = "ce"


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
    # torch.compile the model's feature extractor (every forward goes through it); pays off on GPU.
    compile: bool = False
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
class EvalConfig:
    # Distribution-shift sets evaluated after training (cifar10_c, cifar100_c, cifar10_1, cifar10_2, objectnet).
    shift: List[str] = field(default_factory=list)
    # Out-of-distribution sets scored by max softmax probability (svhn, lsun_crop).
    ood: List[str] = field(default_factory=list)
    # CIFAR-C: severities and corruptions to evaluate (empty corruptions: the 15 benchmark ones).
    severities: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    corruptions: List[str] = field(default_factory=list)
    # Test-time rescaling (Carratino et al.) of a mixup-trained model: adds rescaled_test_* metrics.
    rescaled: bool = False


@dataclass
class PathsConfig:
    data_dir: str = MISSING


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Experiment name: groups a sweep's runs (W&B group, run directory).
    name: str = "default"
    seed: int = 0
    resume: bool = False


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; ``conf/config.yaml`` lists ``schema`` first in its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)


from mixexp.errors import require as _require  # noqa: E402


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
    one_of("model.stem", cfg.model.stem, ("cifar", "imagenet", "stride2"))
    one_of("model.variant", cfg.model.variant, ("preact", "fb", "puzzlemix"))
    one_of("loss.form", cfg.loss.form, ("ce", "bce_softmax"))
    one_of("trainer.progress", cfg.trainer.progress, ("auto", "bar", "log"))

    t = cfg.trainer
    _require(t.epochs > 0, "trainer.epochs", t.epochs, "must be a whole number > 0")
    _require(t.batch_size > 0, "trainer.batch_size", t.batch_size, "must be a whole number > 0")
    _require(t.eval_batch_size > 0, "trainer.eval_batch_size", t.eval_batch_size, "must be a whole number > 0")
    _require(t.num_threads >= 0, "trainer.num_threads", t.num_threads, "must be >= 0 (0: torch's default)")
    _require(
        t.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", t.device) is not None,
        "trainer.device", t.device, "use auto, cpu, cuda or cuda:N",
    )

    m = cfg.mixer
    _require(m.alpha >= 0, "mixer.alpha", m.alpha, "must be >= 0 (0 turns mixing off)")
    _require(0.0 <= m.prob <= 1.0, "mixer.prob", m.prob, "must be a probability in [0, 1]")
    _require(m.stop_fraction is None or 0.0 < m.stop_fraction <= 1.0, "mixer.stop_fraction", m.stop_fraction,
             "must lie in (0, 1] or be null")
    _require(m.stop_epoch is None or 0 <= m.stop_epoch <= t.epochs, "mixer.stop_epoch", m.stop_epoch,
             f"must lie in [0, trainer.epochs={t.epochs}] or be null")
    _require(m.stop_epoch is None or m.stop_fraction is None, "mixer.stop_epoch", m.stop_epoch,
             "set either mixer.stop_epoch or mixer.stop_fraction, not both")
    _require(0.0 <= m.lamix_beta <= 1.0, "mixer.lamix_beta", m.lamix_beta, "must lie in [0, 1]")
    one_of("mixer.lamix_inputs", m.lamix_inputs, ("average", "puzzlemix"))
    _require(len(m.block_sizes) > 0 and all(n > 0 for n in m.block_sizes), "mixer.block_sizes",
             list(m.block_sizes), "must be a non-empty list of grid sizes > 0")
    _require(m.beta >= 0, "mixer.beta", m.beta, "must be >= 0")
    _require(m.gamma >= 0, "mixer.gamma", m.gamma, "must be >= 0")
    _require(m.eta >= 0, "mixer.eta", m.eta, "must be >= 0")
    _require(m.neigh_size > 0, "mixer.neigh_size", m.neigh_size, "must be a whole number > 0")
    _require(m.n_labels >= 2, "mixer.n_labels", m.n_labels, "must be a whole number >= 2")
    _require(m.t_eps >= 0, "mixer.t_eps", m.t_eps, "must be >= 0")
    _require(m.t_size == -1 or m.t_size > 0, "mixer.t_size", m.t_size, "must be > 0 or -1 (the cut's blocks)")
    one_of("mixer.t_solver", m.t_solver, ("auto", "approx", "exact"))
    _require(m.clean_lam >= 0, "mixer.clean_lam", m.clean_lam, "must be >= 0")
    _require(0.0 <= m.adv_p <= 1.0, "mixer.adv_p", m.adv_p, "must be a probability in [0, 1]")
    _require(m.adv_eps >= 0, "mixer.adv_eps", m.adv_eps, "must be >= 0 (pixel units / 255)")
    _require(all(s > 0 for s in m.pixel_std), "mixer.pixel_std", list(m.pixel_std), "every value must be > 0")
    _require(m.workers >= 0, "mixer.workers", m.workers, "must be >= 0 (0: one per CPU core)")

    r = cfg.regularizer
    _require(r.gamma >= 0, "regularizer.gamma", r.gamma, "must be >= 0")
    one_of("regularizer.distance", r.distance, ("mse", "cosine", "nmse"))
    _require(r.name != "sem" or m.name in ("mixup", "cutmix", "puzzlemix"), "regularizer", r.name,
             f"sem needs a mixer whose lambda is the input mixing ratio (mixup, cutmix, puzzlemix), not mixer={m.name}")

    _require(not cfg.eval.rescaled or m.name == "mixup", "eval.rescaled", cfg.eval.rescaled,
             f"needs a mixup-trained run (mixer=mixup), not mixer={m.name}")

    ls = cfg.loss.label_smoothing
    _require(0.0 <= ls < 1.0, "loss.label_smoothing", ls, "must lie in [0, 1)")
    _require(ls == 0.0 or m.name != "lamix", "loss.label_smoothing", ls,
             "is not defined for mixer=lamix (its target already has a global soft label); use 0")

    d = cfg.dataset
    _require(0.0 <= d.val_fraction < 1.0, "dataset.val_fraction", d.val_fraction, "must lie in [0, 1) (0: no split)")
    _require(0.0 < d.test_fraction < 1.0, "dataset.test_fraction", d.test_fraction, "must lie in (0, 1)")
    _require(d.channels in (None, 1, 3), "dataset.channels", d.channels, "use 1, 3 or null (the dataset's own)")
    _require(d.resize is None or d.resize > 0, "dataset.resize", d.resize, "must be > 0 or null")
    _require(d.crop_padding >= 0, "dataset.crop_padding", d.crop_padding, "must be >= 0")
    _require(len(d.mean) == len(d.std), "dataset.std", list(d.std), "needs one value per entry of dataset.mean")
    _require(all(s > 0 for s in d.std), "dataset.std", list(d.std), "every value must be > 0")
    _require(d.num_classes >= 2, "dataset.num_classes", d.num_classes, "must be >= 2")
    _require(d.image_size > 0 and d.train_size > 0 and d.test_size > 0,
             "dataset.image_size/train_size/test_size", (d.image_size, d.train_size, d.test_size), "must be > 0")
    _require(d.num_workers >= 0, "dataset.num_workers", d.num_workers, "must be >= 0 (0 decodes in the main process)")

    from mixexp.data.evalsets import CORRUPTIONS, EVAL_SETS, SEVERITIES

    ev = cfg.eval
    for kind in ("shift", "ood"):
        for name in ev[kind]:
            one_of(f"eval.{kind}", name, [n for n, s in EVAL_SETS.items() if s.kind == kind])
            base = EVAL_SETS[name].base
            _require(base is None or base == d.name, f"eval.{kind}", name,
                     f"{name} is labelled with the classes of {base}; train with dataset={base}")
    _require(len(ev.severities) > 0 and all(v in SEVERITIES for v in ev.severities), "eval.severities",
             list(ev.severities), "use severities from 1..5")
    for name in ev.corruptions:
        one_of("eval.corruptions", name, CORRUPTIONS)

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
