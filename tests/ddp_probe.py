"""Run under torchrun by tests/test_distributed.py: train with the real Trainer and record, after every
optimiser step, a SHA-256 of this rank's parameters (model and method), at the start and the end also of
their buffers (BatchNorm statistics: per rank during an epoch, rank 0's after it), written to ``<out>/rank<R>.json``. Usage:

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_probe.py OUT RUN_DIR override ...
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from mixexp.config import CONF_DIR, register_configs
from mixexp.train_utils import DistEnv
from mixexp.trainer import Trainer


def weights_digest(trainer: Trainer, buffers: bool = False) -> str:
    digest = hashlib.sha256()
    for module in (trainer.model, trainer.method):
        for name, tensor in [*module.named_parameters(), *(module.named_buffers() if buffers else ())]:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(out: str, run_dir: str, overrides: list) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    trainer = Trainer(cfg, run_dir)
    digests = [weights_digest(trainer, buffers=True)]  # after DDP's broadcast of rank 0's initial state
    train_step = trainer.train_step

    def recording_step(x, y):
        result = train_step(x, y)
        digests.append(weights_digest(trainer))
        return result

    trainer.train_step = recording_step
    trainer.fit()
    digests.append(weights_digest(trainer, buffers=True))  # BatchNorm statistics made equal after each epoch
    Path(out, f"rank{DistEnv().rank}.json").write_text(json.dumps(digests))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
