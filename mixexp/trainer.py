"""The training loop: build everything from the config, train epoch by epoch, evaluate, checkpoint.

Read top to bottom: ``Trainer.__init__`` builds data, model, method, optimiser and schedule; ``fit``
runs the epochs and the final evaluation; ``train_epoch`` is the hot loop. The method owns the step
(mix, forward, loss; :mod:`mixexp.method`); the trainer only loops, steps the optimiser, evaluates and
checkpoints. Running sums stay on the device, so the host waits for the device once per epoch (and
when a progress bar is redrawn).
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import OmegaConf

from mixexp import distributed
from mixexp.assemble import build_method, build_model, check_model_input, method_label
from mixexp.checkpoint import CHECKPOINT, SNAPSHOTS, can_train_further, final_state, load_checkpoint, save_checkpoint
from mixexp.data import build_loader, load_dataset
from mixexp.errors import ConfigError, Interrupted, require
from mixexp.evaluation.metrics import accuracy_percent, classification_metrics, predict_logits
from mixexp.evaluation.rescaling import Rescaling, stored_or_training_statistics, training_statistics
from mixexp.models.ghost_batchnorm import convert_ghost_batchnorm
from mixexp.evaluation.suite import EvalContext, evaluate_model, missing_results
from mixexp.io import save_torch, write_csv, write_json, write_text
from mixexp.loggers import NoLogger, build_logger, check_logger
from mixexp.losses import mixed_correct
from mixexp.provenance import provenance
from mixexp.rundir import check_resume_compatible, claim_run_dir
from mixexp.train_utils import (
    OPTIMIZERS, DistEnv, build_scheduler, resolve_device, rng_state, seed_everything, set_rng_state,
)

log = logging.getLogger("mixexp")

# Progress bars are redrawn this many times per epoch; each redraw reads the running loss (one sync).
BAR_UPDATES = 20


def finished_without_checkpoint(run_dir: Path, cfg) -> Dict[str, Any]:
    """The metrics.json of a finished run that has no last.pt, when it already holds every result ``cfg`` asks
    for; :class:`ConfigError` otherwise: without weights nothing can be added, and training it again here
    would overwrite what it reported."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{run_dir / 'metrics.json'} cannot be read: {e}") from None
    missing = missing_results(metrics, cfg.eval)
    if missing:
        raise ConfigError(f"{run_dir} finished without a checkpoint to evaluate again ({CHECKPOINT} is absent: "
                          f"trainer.checkpoint=false, or removed), so it cannot add {', '.join(missing)}; train the "
                          f"run again in another hydra.run.dir")
    return metrics


class Trainer:
    def __init__(self, cfg, run_dir) -> None:
        self.cfg, self.run_dir, self.dist = cfg, Path(run_dir), DistEnv()
        # fit() opens the run's logger; until then (train_epoch driven directly, as scripts/bench.py does)
        # nothing is logged, and the session clock runs from construction
        self.logger, self._session_start = NoLogger(), time.perf_counter()
        checkpoint = self.run_dir / CHECKPOINT
        check_logger(cfg)
        # auto: continue the run the folder holds, else start one (every rank decides before any of them can
        # write: the process group is joined below, and rank 0 writes config.yaml after that)
        if cfg.resume == "auto":
            cfg.resume = (self.run_dir / "config.yaml").is_file()
        # one process per folder; a folder holding a run only with resume=true
        self.run_lock = claim_run_dir(self.run_dir, bool(cfg.resume)) if self.dist.is_main else None
        try:
            self._build(checkpoint)
        except BaseException:  # a refused start leaves the folder as it found it, its lock included
            self.release()
            raise

    def release(self) -> None:
        """Give up the run folder (also done when the process exits)."""
        if self.run_lock is not None:
            self.run_lock.release()

    def _build(self, checkpoint: Path) -> None:
        cfg = self.cfg
        if self.dist.is_main and cfg.resume:
            check_resume_compatible(self.run_dir, cfg)
        # a finished run whose last.pt is gone (trainer.checkpoint=false, or removed) is kept as it is, or refused:
        # decided from its metrics.json alone, before any data or model is built
        self.finished_metrics: Optional[Dict[str, Any]] = None
        if cfg.resume and not checkpoint.exists() and (self.run_dir / "metrics.json").is_file():
            self.finished_metrics = finished_without_checkpoint(self.run_dir, cfg)
            return
        self._setup_device(cfg.trainer)
        seed_everything(cfg.seed)
        self.data = data = load_dataset(cfg.dataset, cfg.paths.data_dir)
        self._build_loaders(data)
        if cfg.eval.shift or cfg.eval.ood:
            from mixexp.data.evalsets import require_eval_sets

            require_eval_sets(cfg, cfg.paths.data_dir)  # fail now, not after training, if one is missing
        self._build_model_and_method(data)
        params = [self.model, self.method]  # modules: a method may own a head (LaMix); BatchNorm found by build_sgd
        self.optimizer = OPTIMIZERS[cfg.optim.name](cfg.optim, params, self.device)
        self.scheduler = build_scheduler(cfg.sched, self.optimizer, cfg.trainer.epochs, cfg.optim.lr)
        self.epoch, self.elapsed = 0, 0.0  # elapsed: wall seconds of earlier sessions of this run
        self.history: List[Dict[str, Any]] = []
        self.records: Dict[str, List[Dict[str, Any]]] = {}  # per-epoch summaries a method keeps, by file
        self.rescaling: Optional[Rescaling] = None  # test-time rescaling statistics (restored or computed)
        self.checkpoint_epoch: Optional[int] = None  # the epoch last.pt holds on disk (None: there is none)
        if checkpoint.exists():  # refused (one line) before config.yaml is written again
            self._load_checkpoint(checkpoint)
            self.checkpoint_epoch = self.epoch
            log.info("resumed %s at epoch %d/%d", checkpoint, self.epoch, cfg.trainer.epochs)
        if cfg.eval.rescaled and self.rescaling is None:
            self.rescaling = training_statistics(cfg, data, self.device)
        if self.dist.is_main:
            if not cfg.get("label"):
                cfg.label = method_label(cfg)  # config.yaml always names the method
            write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))

    # -------------------------------------------------------------------------------- set-up

    def _setup_device(self, t) -> None:
        self.device = resolve_device(t.device)
        if self.dist.world_size > 1:  # torchrun: join the process group; CUDA ranks take cuda:LOCAL_RANK
            self.device = distributed.setup(self.device, self.dist)
        if t.num_threads:
            cpus = len(os.sched_getaffinity(0))
            require(t.num_threads <= cpus, "trainer.num_threads", t.num_threads,
                    f"must be at most the {cpus} CPU(s) this process may use (0: torch's default)")
            torch.set_num_threads(t.num_threads)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = not t.deterministic
            torch.backends.cudnn.deterministic = t.deterministic
        self.autocast_dtype = torch.bfloat16 if cuda and t.bf16 else None
        self.channels_last = cuda and t.channels_last

    def _build_loaders(self, data) -> None:
        cfg, t = self.cfg, self.cfg.trainer
        common = dict(device=self.device, mean=data.mean, std=data.std, channels_last=self.channels_last,
                      rank=self.dist.rank, world_size=self.dist.world_size)
        self.train_loader = build_loader(
            data.train, distributed.rank_batch_size(t.batch_size, self.dist.world_size), train=True,
            crop_padding=cfg.dataset.crop_padding, flip=cfg.dataset.flip, **common,
        )
        self.test_loader = build_loader(data.test, t.eval_batch_size, train=False, **common)  # sharded, gathered
        self.eval_context = EvalContext(cfg, self.device, data.mean, data.std, data.image_shape)

    def _build_model_and_method(self, data) -> None:
        cfg = self.cfg
        channels, size = data.image_shape[0], data.image_shape[1]
        self.model = build_model(cfg, data.num_classes, channels, size)
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        check_model_input(self.model, cfg.model.name, data.image_shape, self.device)
        self.method = build_method(cfg, data.num_classes, self.model.feature_dim).to(self.device)
        try:
            self.method.check_model(self.model, data.image_shape)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if cfg.trainer.sync_bn:  # before compiling, so that the compiled graph holds the SyncBatchNorm layers
            self.model = distributed.convert_sync_bn(self.model, self.device)
        if cfg.trainer.bn_group_size:  # likewise; same state_dict keys, so checkpoints load either way
            self.model = convert_ghost_batchnorm(self.model, cfg.trainer.bn_group_size)
        if cfg.trainer.compile:
            # compile the feature extractor, not the module: every path (forward, SEM's clean pass,
            # PuzzleMix's saliency pass) goes through it, and the state_dict keeps its plain keys
            self.model.features = torch.compile(self.model.features)
        # DDP around the method's step (None for a single process); self.model stays the unwrapped model
        self.ddp_step = distributed.wrap_step(self.model, self.method, self.device) if self.dist.world_size > 1 else None

    # -------------------------------------------------------------------------------- checkpoint

    def _checkpoint_state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "records": self.records,
            "elapsed": self.elapsed + (time.perf_counter() - self._session_start),
            "rescaling": self.rescaling.state_dict() if self.rescaling is not None else None,
        }

    def _load_checkpoint(self, path: Path) -> None:
        # to the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
        state = load_checkpoint(path, map_location="cpu")
        if state["epoch"] > self.cfg.trainer.epochs:
            raise ConfigError(f"{path} holds epoch {state['epoch']}, past this run's trainer.epochs="
                              f"{self.cfg.trainer.epochs}: it is not this run's checkpoint")
        resumable = can_train_further(state)  # not a final checkpoint of trainer.final_checkpoint=weights
        if not resumable and state["epoch"] < self.cfg.trainer.epochs:
            raise ConfigError(f"{path} holds the final weights only (trained with trainer.final_checkpoint=weights): "
                              f"the run can be evaluated again, not trained past its {state['epoch']} epochs "
                              f"(trainer.epochs={self.cfg.trainer.epochs})")
        try:
            self.model.load_state_dict(state["model"])
            self.method.load_state_dict(state["method"])
            if resumable:
                self.optimizer.load_state_dict(state["optimizer"])
                self.scheduler.load_state_dict(state["scheduler"])
                set_rng_state(state["rng"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            first = f"a state lacks the key {first}" if isinstance(e, KeyError) else first
            raise ConfigError(f"{path} cannot be resumed with this config: {first}") from None
        self.epoch, self.history, self.elapsed = state["epoch"], state["history"], state["elapsed"]
        self.records = state.get("records") or {}
        if state.get("rescaling") is not None and self.cfg.eval.rescaled:
            self.rescaling = stored_or_training_statistics(self.cfg, state["rescaling"], self.data, self.device)

    # -------------------------------------------------------------------------------- training

    def fit(self, until_epoch: Optional[int] = None) -> Dict[str, Any]:
        """Train to ``trainer.epochs`` (or stop after ``until_epoch``) and return the final metrics."""
        self._session_start = time.perf_counter()
        if self.finished_metrics is not None:
            log.info("%s finished without a checkpoint to evaluate again; it holds every result asked for", self.run_dir)
            self.release()
            return self.finished_metrics
        epochs = self.cfg.trainer.epochs
        stop = epochs if until_epoch is None else min(until_epoch, epochs)
        trained = self.epoch < stop
        job_type = "train" if trained else "eval"  # a finished run resumed is evaluated again
        self.logger = build_logger(self.cfg, self.run_dir, job_type) if self.dist.is_main else NoLogger()
        try:
            diverged = self._train_until(stop)
            metrics = self._evaluate(reevaluation=not trained, diverged=diverged) if self.epoch >= epochs or diverged else {}
        except KeyboardInterrupt:
            self.release()
            self.logger.finish()
            raise Interrupted(self._interrupted_message("interrupted")) from None
        except RuntimeError as e:
            self.release()
            if not distributed.rank_lost(e):
                raise
            self.logger.finish()  # another rank's process ended: this rank stops too, in one line
            raise Interrupted(self._interrupted_message("stopped because another rank of the run ended")) from None
        except BaseException:
            self.release()
            raise
        self.logger.finish()
        if metrics:  # the run is done: its folder is free (a partial fit, until_epoch, keeps it)
            self.release()
        return metrics

    def _interrupted_message(self, why: str) -> str:
        """Where the run stopped (``why``), and what its folder holds: the epoch last.pt holds (a kill during the
        write of epoch N's checkpoint leaves epoch N-1's), not the epochs trained in memory."""
        epochs = self.cfg.trainer.epochs
        where = (f"during the final evaluation ({epochs} epochs finished" if self.epoch >= epochs
                 else f"at epoch {self.epoch + 1}/{epochs} ({self.epoch} finished")
        if self.checkpoint_epoch is not None:
            disk = f"{CHECKPOINT} holds epoch {self.checkpoint_epoch}"
        else:
            disk = f"no {CHECKPOINT} written{': trainer.checkpoint=false' if not self.cfg.trainer.checkpoint else ''}"
        return f"{why} {where}; {disk}); resume with: mixexp-train ... resume=true hydra.run.dir={self.run_dir}"

    def _train_until(self, stop: int) -> bool:
        """Train epochs until ``stop``; True when the run diverged (``trainer.stop_on_divergence`` epochs in a
        row with a non-finite loss): it then stops, its last finite checkpoint kept."""
        patience, bad = self.cfg.trainer.stop_on_divergence, 0
        while self.epoch < stop:
            lr = self.optimizer.param_groups[0]["lr"]
            train = self.train_epoch()
            logits, labels = predict_logits(self.model, self.test_loader)
            self.epoch += 1
            row = {"epoch": self.epoch, "lr": lr, **train, "test_acc": accuracy_percent(logits, labels)}
            self.history.append(row)
            bad = 0 if math.isfinite(train["train_loss"]) else bad + 1
            self._end_epoch(row, checkpoint=bad == 0)
            if patience and bad >= patience:
                log.warning("stopped at epoch %d: %d epochs in a row with a non-finite loss (trainer.stop_on_divergence)",
                            self.epoch, bad)
                return True
        return False

    def train_epoch(self) -> Dict[str, float]:
        self.model.train()
        self.method.set_epoch(self.epoch)
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device)
        seen = 0
        bar = self._progress_bar()
        redraw = max(1, len(self.train_loader) // BAR_UPDATES)
        start = time.perf_counter()
        log_every, steps_before = self.logger.log_every_steps, self.epoch * len(self.train_loader)
        for step, (x, y) in enumerate(self.train_loader):
            out = self.train_step(x, y)
            if log_every and (steps_before + step + 1) % log_every == 0:  # the only per-step read: every N steps
                self.logger.log_step(steps_before + step + 1, out.loss.item())
            loss_sum += out.loss.detach() * y.shape[0]
            correct_sum += mixed_correct(out.logits.detach(), y, out.mixed.partner, out.mixed.lam)
            seen += y.shape[0]
            if bar is not None and (step + 1) % redraw == 0:
                bar.update(redraw)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
        loss_sum, correct_sum, seen = distributed.sum_across_ranks(loss_sum, correct_sum, seen)  # the global batch
        distributed.broadcast_buffers(self.model, self.method)  # BatchNorm statistics: rank 0's, on every rank
        loss_mean, acc = (loss_sum / seen).item(), (correct_sum / seen).item() * 100.0  # syncs the device
        if not math.isfinite(loss_mean):
            log.warning("epoch %d: the training loss is %s: the run has diverged (lower optim.lr?)", self.epoch + 1, loss_mean)
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.scheduler.step()
        return {"train_loss": loss_mean, "train_acc": acc, "seconds": seconds, "images_per_s": seen / seconds}

    def train_step(self, x: torch.Tensor, y: torch.Tensor):
        """One optimiser step on a batch: the method's step (mix, forward, loss) under autocast, then update."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self.method.step(self.model, x, y) if self.ddp_step is None else self.ddp_step(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        return out

    def _progress_bar(self):
        mode = self.cfg.trainer.progress
        if not self.dist.is_main or mode == "log" or (mode == "auto" and not sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=len(self.train_loader), desc=f"epoch {self.epoch + 1}/{self.cfg.trainer.epochs}",
                    leave=False, dynamic_ncols=True)

    def _end_epoch(self, row: Dict[str, Any], checkpoint: bool = True) -> None:
        log.info(
            "epoch %d/%d lr %.4g loss %.4f train_acc %.2f test_acc %.2f %.0f img/s %.1fs",
            row["epoch"], self.cfg.trainer.epochs, row["lr"], row["train_loss"], row["train_acc"],
            row["test_acc"], row["images_per_s"], row["seconds"],
        )
        if not self.dist.is_main:
            return
        write_csv(self.run_dir / "history.csv", self.history)
        for name, record in self.method.pop_records().items():
            self.records.setdefault(name, []).append({"epoch": row["epoch"], **record})
            write_csv(self.run_dir / name, self.records[name])
        if row["epoch"] in self.cfg.trainer.snapshot_epochs:
            save_torch(self.run_dir / SNAPSHOTS / f"epoch_{row['epoch']:04d}.pt", self.model.state_dict())
        if self.cfg.trainer.checkpoint and checkpoint:  # a non-finite epoch keeps the last finite checkpoint
            state = self._checkpoint_state()
            if self.epoch >= self.cfg.trainer.epochs:
                state = final_state(state, self.cfg.trainer.final_checkpoint)
            save_checkpoint(self.run_dir / CHECKPOINT, state)
            self.checkpoint_epoch = self.epoch
        self.logger.log_epoch(row)

    # -------------------------------------------------------------------------------- evaluation

    def _evaluate(self, reevaluation: bool, diverged: bool = False) -> Dict[str, Any]:
        """The evaluation suite on the final weights, plus the history's statistics; written by rank 0.
        A re-evaluation (a finished run resumed) keeps what it reported and adds only what is missing."""
        metrics_path, parts_path = self.run_dir / "metrics.json", self.run_dir / "eval_breakdown.json"
        existing = json.loads(metrics_path.read_text()) if reevaluation and metrics_path.exists() else {}
        metrics, parts = evaluate_model(self.model, self.eval_context, self.test_loader, self.rescaling, existing)
        metrics = {**self._history_metrics(), **self._validation_metrics(), **metrics}  # reported values win
        if diverged or not all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)):
            metrics["diverged"] = True  # its non-finite values are written as null
        if self.dist.is_main:
            if parts:
                old = json.loads(parts_path.read_text()) if reevaluation and parts_path.exists() else {}
                write_json(parts_path, {**old, **parts})
            write_json(metrics_path, metrics)
            self.logger.log_final(metrics)
        return metrics

    def _validation_metrics(self) -> Dict[str, Any]:
        """``val_*`` (as ``test_*``) on the held-out part of the training set (dataset.val_fraction), if any."""
        if self.data.val is None:
            return {}
        loader = build_loader(self.data.val, self.cfg.trainer.eval_batch_size, train=False, device=self.device,
                              mean=self.data.mean, std=self.data.std, rank=self.dist.rank,
                              world_size=self.dist.world_size)  # sharded, gathered
        return classification_metrics(*predict_logits(self.model, loader), prefix="val")

    def _history_metrics(self) -> Dict[str, Any]:
        test_accs = [row["test_acc"] for row in self.history]
        return {
            "best_test_acc": max(test_accs),
            "median10_test_acc": statistics.median(test_accs[-10:]),
            "epochs": self.epoch,
            # median over epochs, so that the first epoch's warm-up does not weigh in
            "train_images_per_s": statistics.median(row["images_per_s"] for row in self.history),
            "wall_s": self.elapsed + (time.perf_counter() - self._session_start),
            "provenance": provenance(self.device, self.dist.world_size),
        }

