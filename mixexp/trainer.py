"""The training loop: build everything from the config, train epoch by epoch, evaluate, checkpoint.

Read top to bottom: ``Trainer.__init__`` builds data, model, optimiser, schedule and mixer;
``fit`` runs the epochs; ``train_epoch`` is the hot loop, which keeps its running sums on the device
so that the host waits for the device only once per epoch (and when a progress bar is redrawn).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import OmegaConf

from mixexp.errors import ConfigError
from mixexp.data import build_loader, load_dataset
from mixexp.io import save_torch, write_csv, write_json, write_text
from mixexp.loggers import NoLogger, build_logger
from mixexp.losses import mixed_correct
from mixexp.metrics import accuracy_percent, classification_metrics, predict_logits
from mixexp.mixers import build_mixer, mixing_stop_epoch
from mixexp.models import build_model
from mixexp.regularizers import build_regularizer
from mixexp.rescaling import Rescaling
from mixexp.train_utils import (
    OPTIMIZERS, DistEnv, build_scheduler, resolve_device, rng_state, seed_everything, set_rng_state,
)

log = logging.getLogger("mixexp")

CHECKPOINT = "last.pt"
# Progress bars are redrawn this many times per epoch; each redraw reads the running loss (one sync).
BAR_UPDATES = 20


class Trainer:
    def __init__(self, cfg, run_dir) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = DistEnv()
        checkpoint = self.run_dir / CHECKPOINT
        if checkpoint.exists() and not cfg.resume:
            raise ConfigError(
                f"{self.run_dir} already holds a run ({CHECKPOINT}): pass resume=true to continue it, "
                "or choose another hydra.run.dir"
            )
        t = cfg.trainer
        try:
            self.device = resolve_device(t.device)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = not t.deterministic
            torch.backends.cudnn.deterministic = t.deterministic
        self.autocast_dtype = torch.bfloat16 if cuda and t.bf16 else None
        channels_last = cuda and t.channels_last
        seed_everything(cfg.seed)

        data = load_dataset(cfg.dataset, cfg.paths.data_dir)
        self.num_classes = data.num_classes
        common = dict(device=self.device, mean=data.mean, std=data.std, channels_last=channels_last)
        self.train_loader = build_loader(
            data.train, t.batch_size, train=True, crop_padding=cfg.dataset.crop_padding, flip=cfg.dataset.flip,
            rank=self.dist.rank, world_size=self.dist.world_size, **common,
        )
        self.test_loader = build_loader(data.test, t.eval_batch_size, train=False, **common)
        self.data_stats = (data.mean, data.std, data.image_shape)  # for the evaluation sets
        if cfg.eval.shift or cfg.eval.ood:
            from mixexp.data.evalsets import require_eval_sets

            require_eval_sets(cfg, cfg.paths.data_dir)  # fail now, not after training, if one is missing
        self.rescaling = None  # test-time rescaling statistics, restored from last.pt or computed below

        channels, size = data.image_shape[0], data.image_shape[1]
        try:
            self.model = build_model(cfg.model, data.num_classes, channels, size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.model.to(self.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        if t.compile:
            # compile the feature extractor, not the module: every path (forward, SEM's clean pass,
            # PuzzleMix's saliency pass) goes through it, and the state_dict keeps its plain keys
            self.model.features = torch.compile(self.model.features)
        eps = cfg.loss.label_smoothing
        self.mixer = build_mixer(cfg.mixer, self.model.feature_dim, data.num_classes, eps).to(self.device)
        try:
            self.mixer.check_input_shape(data.image_shape)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        # ES: from this epoch on, plain ERM (no mixing, no term that needs a mixed batch)
        self.stop_epoch = mixing_stop_epoch(cfg.mixer, t.epochs)
        self.erm = build_mixer(OmegaConf.create({"name": "none"}), label_smoothing=eps)
        params = [self.model, self.mixer]  # modules: a mixer may own a head (LaMix); BatchNorm found by build_sgd
        self.optimizer = OPTIMIZERS[cfg.optim.name](cfg.optim, params, self.device)
        self.scheduler = build_scheduler(cfg.sched, self.optimizer, t.epochs, cfg.optim.lr)
        self.regularizer = build_regularizer(cfg.regularizer)

        self.epoch = 0
        self.history: List[Dict[str, Any]] = []
        self.elapsed = 0.0  # wall seconds of earlier sessions of this run (resume)
        if checkpoint.exists():
            self._load_checkpoint(checkpoint)
            log.info("resumed %s at epoch %d/%d", checkpoint, self.epoch, t.epochs)
        if cfg.eval.rescaled and self.rescaling is None:
            # x_bar (per-pixel mean of the normalised, un-augmented training inputs) and y_bar (class
            # frequencies), stored in the checkpoint; computed in a forked RNG so that the run's own
            # random stream (and so its initial weights and batches) is the same with or without it
            with torch.random.fork_rng(devices=[self.device] if cuda else []):
                stats_loader = build_loader(data.train, t.eval_batch_size, train=False, **common)
                self.rescaling = Rescaling.from_training_set(cfg.mixer.alpha, stats_loader, data.num_classes)
        if self.dist.is_main:
            write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))

    # -------------------------------------------------------------------------------- checkpoint

    def _checkpoint_state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "mixer": self.mixer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "elapsed": self.elapsed + (time.perf_counter() - self._session_start),
            "rescaling": self.rescaling.state_dict() if self.rescaling is not None else None,
        }

    def _load_checkpoint(self, path: Path) -> None:
        try:
            # to the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
            state = torch.load(path, map_location="cpu", weights_only=False)
            self.model.load_state_dict(state["model"])
            self.mixer.load_state_dict(state["mixer"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{path} cannot be resumed with this config: {first}") from None
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.epoch, self.history, self.elapsed = state["epoch"], state["history"], state["elapsed"]
        if state.get("rescaling") is not None and self.cfg.eval.rescaled:
            self.rescaling = Rescaling.from_state_dict(state["rescaling"])

    # -------------------------------------------------------------------------------- training

    def fit(self, until_epoch: Optional[int] = None) -> Dict[str, Any]:
        """Train to ``trainer.epochs`` (or stop after ``until_epoch``) and return the final metrics."""
        self._session_start = time.perf_counter()
        self.logger = build_logger(self.cfg, self.run_dir) if self.dist.is_main else NoLogger()
        epochs = self.cfg.trainer.epochs
        stop = epochs if until_epoch is None else min(until_epoch, epochs)
        logits = labels = None
        while self.epoch < stop:
            lr = self.optimizer.param_groups[0]["lr"]
            train = self.train_epoch()
            logits, labels = predict_logits(self.model, self.test_loader, self.autocast_dtype)
            self.epoch += 1
            row = {"epoch": self.epoch, "lr": lr, **train, "test_acc": accuracy_percent(logits, labels)}
            self.history.append(row)
            self._end_epoch(row)
        if self.epoch < epochs:
            self.logger.finish()
            return {}
        existing: Dict[str, Any] = {}
        if logits is None:  # resumed a finished run: evaluate its final weights, keep what was evaluated
            logits, labels = predict_logits(self.model, self.test_loader, self.autocast_dtype)
            if (self.run_dir / "metrics.json").exists():
                existing = json.loads((self.run_dir / "metrics.json").read_text())
        rescaled_logits = None
        if self.rescaling is not None:
            z, _ = predict_logits(self.model, self.test_loader, self.autocast_dtype, self.rescaling.inputs)
            rescaled_logits = self.rescaling.logits(z)
        # a re-evaluation keeps what the run already reported and adds only what is missing
        metrics = {**self._final_metrics(logits, labels, rescaled_logits), **existing}
        metrics.update(self._evaluate_sets(logits, rescaled_logits, existing))
        if self.dist.is_main:
            write_json(self.run_dir / "metrics.json", metrics)
            self.logger.log_final(metrics)
        self.logger.finish()
        return metrics

    def train_epoch(self) -> Dict[str, float]:
        self.model.train()
        mixing = self.epoch < self.stop_epoch
        mixer = self.mixer if mixing else self.erm
        regularizer = self.regularizer if mixing else None
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device)
        seen = 0
        bar = self._progress_bar()
        redraw = max(1, len(self.train_loader) // BAR_UPDATES)
        start = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            loss, logits, mixed = self.train_step(x, y, mixer, regularizer)
            loss_sum += loss.detach() * y.shape[0]
            correct_sum += mixed_correct(logits.detach(), y, mixed.partner, mixed.lam)
            seen += y.shape[0]
            if bar is not None and (step + 1) % redraw == 0:
                bar.update(redraw)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        loss_mean, acc = (loss_sum / seen).item(), (correct_sum / seen).item() * 100.0  # syncs the device
        if not math.isfinite(loss_mean):
            log.warning("epoch %d: the training loss is %s: the run has diverged (lower optim.lr?)", self.epoch + 1, loss_mean)
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.scheduler.step()
        return {"train_loss": loss_mean, "train_acc": acc, "seconds": seconds, "images_per_s": seen / seconds}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, mixer, regularizer):
        """One optimiser step on a batch: mix, forward, loss (+ regulariser), backward, update."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            mixed = mixer(x, y, self.model)
            features = self.model.features(mixed.inputs)
            logits = self.model.classifier(features)
            loss = mixer.loss(logits, features, y, mixed)
            if mixed.extra_loss is not None:
                loss = loss + mixed.extra_loss
            if regularizer is not None:
                loss = loss + regularizer(self.model, x, mixed, features)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss, logits, mixed

    def _progress_bar(self):
        mode = self.cfg.trainer.progress
        if not self.dist.is_main or mode == "log" or (mode == "auto" and not sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=len(self.train_loader), desc=f"epoch {self.epoch + 1}/{self.cfg.trainer.epochs}",
                    leave=False, dynamic_ncols=True)

    def _end_epoch(self, row: Dict[str, Any]) -> None:
        log.info(
            "epoch %d/%d lr %.4g loss %.4f train_acc %.2f test_acc %.2f %.0f img/s %.1fs",
            row["epoch"], self.cfg.trainer.epochs, row["lr"], row["train_loss"], row["train_acc"],
            row["test_acc"], row["images_per_s"], row["seconds"],
        )
        if not self.dist.is_main:
            return
        write_csv(self.run_dir / "history.csv", self.history)
        if self.cfg.trainer.checkpoint:
            save_torch(self.run_dir / CHECKPOINT, self._checkpoint_state())
        self.logger.log_epoch(row)

    def _evaluate_sets(self, test_logits: torch.Tensor, rescaled_logits: Optional[torch.Tensor],
                       existing: Dict[str, Any]) -> Dict[str, Any]:
        """Shift, OOD and ObjectNet metrics of ``eval.shift``/``eval.ood`` that ``existing`` lacks."""
        from mixexp import evaluation
        from mixexp.data.evalsets import evaluate_eval_sets

        prefixes = [""] + (["rescaled_"] if self.rescaling is not None else [])
        settings = evaluation.corruption_settings(self.cfg.eval)
        todo = evaluation.missing_sets([*self.cfg.eval.shift, *self.cfg.eval.ood], existing, prefixes, settings)
        if not todo or not self.dist.is_main:
            return {}
        mean, std, image_shape = self.data_stats
        args = (self.model, self.cfg, self.cfg.paths.data_dir, self.device, mean, std,
                self.cfg.trainer.eval_batch_size, image_shape, self.autocast_dtype, todo)
        metrics: Dict[str, Any] = {evaluation.SETTINGS_KEY: {
            **existing.get(evaluation.SETTINGS_KEY, {}), **{n: settings for n in todo if n.endswith("_c")}}}
        parts = {}
        for prefix in prefixes:
            if prefix:
                results = evaluate_eval_sets(*args, transform=self.rescaling.inputs,
                                             logit_transform=self.rescaling.logits)
                in_scores = evaluation.max_softmax(rescaled_logits)
            else:
                results = evaluate_eval_sets(*args)
                in_scores = evaluation.max_softmax(test_logits)
            metrics.update(evaluation.eval_set_metrics(results, in_scores, prefix))
            parts.update(evaluation.breakdown(results, prefix))
        if parts:
            path = self.run_dir / "eval_breakdown.json"
            # a re-evaluation adds to the breakdown; a run trained in this session starts it afresh
            old = json.loads(path.read_text()) if path.exists() and existing else {}
            write_json(path, {**old, **parts})
        return metrics

    def _final_metrics(self, logits: torch.Tensor, labels: torch.Tensor,
                       rescaled_logits: Optional[torch.Tensor]) -> Dict[str, Any]:
        test_accs = [row["test_acc"] for row in self.history]
        metrics: Dict[str, Any] = classification_metrics(logits, labels, prefix="test")
        if rescaled_logits is not None:
            metrics.update(classification_metrics(rescaled_logits, labels, prefix="rescaled_test"))
            metrics["rescaling_theta_bar"] = self.rescaling.theta
        metrics.update(
            best_test_acc=max(test_accs),
            median10_test_acc=statistics.median(test_accs[-10:]),
            epochs=self.epoch,
            # median over epochs, so that the first epoch's warm-up does not weigh in
            train_images_per_s=statistics.median(row["images_per_s"] for row in self.history),
            wall_s=self.elapsed + (time.perf_counter() - self._session_start),
        )
        return metrics

