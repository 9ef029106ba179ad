"""Two commands on one run, a refused start, a killed or copied smoke data root, two reproduces of one table,
a kill during a checkpoint write: each test shows that nothing written before is lost or misreported."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, FAST, compose_cfg, files_below, run_cli, run_in_process
from mixexp.checkpoint import load_checkpoint
from mixexp.errors import Interrupted

RUN = [*FAST, "trainer.epochs=1", "mixer=mixup"]


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    from mixexp.data.fixtures import make_smoke_root

    return make_smoke_root(tmp_path_factory.mktemp("smoke") / "data")


@contextlib.contextmanager
def another_process_holding(run: Path):
    """Another process that has claimed ``run`` (as mixexp-train does for a run, mixexp-eval while it merges),
    until the block ends (it then exits, releasing the folder); yields its pid."""
    code = ("import sys; from mixexp.rundir import claim_run_dir; claim_run_dir(sys.argv[1], resume=True); "
            "print('claimed', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "claimed"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_refused_start_rewrites_nothing_of_the_run_it_was_refused_for(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_in_process(["mixexp-train", *RUN, f"hydra.run.dir={run}"], capsys)[0] == 0
    before, log = files_below(run), (run / "train.log").read_bytes()
    assert {".hydra/overrides.yaml", ".hydra/config.yaml", "config.yaml", "last.pt"} <= {str(p) for p in before}
    code, err = run_in_process(["mixexp-train", *RUN, "seed=7", f"hydra.run.dir={run}"], capsys)
    assert code == 2 and err.startswith(f"error: {run} already holds a run (metrics.json, config.yaml, last.pt)")
    with another_process_holding(run) as pid:  # a start into a folder in use: refused before writing too
        code, err = run_in_process(["mixexp-train", *RUN, "seed=7", "resume=true", f"hydra.run.dir={run}"], capsys)
    assert code == 2 and f"{run} is in use by another mixexp process (pid {pid} on " in err
    assert files_below(run) == before and (run / "train.log").read_bytes() == log  # .hydra/ still says seed=0
    assert "seed=7" not in (run / ".hydra" / "overrides.yaml").read_text()


def test_two_evaluations_and_one_during_another_command_keep_every_result(smoke_root, tmp_path, capsys):
    from mixexp.trainer import Trainer

    run = tmp_path / "run"
    Trainer(compose_cfg([*RUN, "dataset=cifar10", "trainer.batch_size=8", f"paths.data_dir={smoke_root}"]), run).fit()
    trained = json.loads((run / "metrics.json").read_text())
    before = files_below(run)
    with another_process_holding(run) as pid:  # mixexp-train (or another mixexp-eval) holds it: this one waits its turn
        code, err = run_in_process(["mixexp-eval", str(run), "eval.ood=[svhn]"], capsys)
    assert code == 2 and err.strip() == (
        f"error: {run} is in use by another mixexp process (pid {pid} on {socket.gethostname()}): wait for it "
        f"to end or evaluate it afterwards (if that process is gone, delete {run / '.mixexp.lock'})")
    assert files_below(run) == before
    # two evaluations adding different results at once: each merges under the lock, or is refused and run again
    env = {**os.environ, "MIXEXP_DATA": str(smoke_root)}
    both = [subprocess.Popen([str(BIN / "mixexp-eval"), str(run), extra], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for extra in ("eval.ood=[svhn]", "eval.rescaled=true")]
    for proc, extra in zip(both, ("eval.ood=[svhn]", "eval.rescaled=true")):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            assert proc.returncode == 2 and "is in use by another mixexp process" in err, err
            assert run_in_process(["mixexp-eval", str(run), extra], capsys)[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"ood_svhn_auroc", "rescaled_test_acc"} <= set(metrics)
    assert {k: metrics[k] for k in trained} == trained  # what training reported is kept as it was


def test_a_smoke_root_killed_while_built_or_copied_is_built_again(tmp_path, monkeypatch):
    from mixexp.data import fixtures, load_dataset, store
    from mixexp.data.fixtures import make_smoke_root, smoke_root_is_current

    def killed_after(function, calls: int):
        done = []

        def cut(*args, **kwargs):
            if len(done) == calls:
                raise KeyboardInterrupt
            done.append(function(*args, **kwargs))
            return done[-1]
        return cut

    cifar = compose_cfg(["dataset=cifar10"]).dataset
    root = tmp_path / "data"
    # killed once the files are written (before the rename), then while the datasets are verified (after it)
    for module, step, calls in ((fixtures, "write_cifar100", 0), (store, "prepare", 3)):
        with monkeypatch.context() as patch:
            patch.setattr(module, step, killed_after(getattr(module, step), calls))
            with pytest.raises(KeyboardInterrupt):
                make_smoke_root(root)
        assert not smoke_root_is_current(root)
    make_smoke_root(root)
    assert smoke_root_is_current(root) and not list(tmp_path.glob(".data.*.building*"))  # no half-built folder left
    assert len(load_dataset(cifar, str(root)).train) == fixtures.N_TRAIN  # verified by the stamps in place
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert not smoke_root_is_current(copy)  # its stamps name the other folder
    make_smoke_root(copy)
    assert smoke_root_is_current(copy) and len(load_dataset(cifar, str(copy)).train) == fixtures.N_TRAIN
    stamp = (root / "cifar10" / ".verified.json").read_bytes()
    make_smoke_root(root)  # a current root is kept as it is
    assert (root / "cifar10" / ".verified.json").read_bytes() == stamp


def test_ctrl_c_during_a_checkpoint_write_says_the_epoch_last_pt_holds(tmp_path, monkeypatch):
    from mixexp import trainer as trainer_module
    from mixexp.config import validate

    written = []

    def killed_on_the_second(path, state):
        if written:
            raise KeyboardInterrupt  # the atomic write is cut: last.pt keeps the previous epoch
        written.append(state["epoch"])
        save(path, state)

    save = trainer_module.save_checkpoint
    monkeypatch.setattr(trainer_module, "save_checkpoint", killed_on_the_second)
    cfg = compose_cfg([*FAST, "trainer.epochs=3"])
    validate(cfg)
    trainer = trainer_module.Trainer(cfg, tmp_path / "run")
    with pytest.raises(Interrupted) as stop:
        trainer.fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert str(stop.value) == (f"interrupted at epoch 3/3 (2 finished; last.pt holds epoch 1); resume with: mixexp-train "
                               f"... resume=true hydra.run.dir={tmp_path / 'run'}")


@pytest.mark.slow
def test_two_reproduces_of_one_table_on_one_root_take_turns_and_both_report(tmp_path):
    args = [str(BIN / "mixexp-reproduce"), "rescaled-cifar", "--smoke", "--root", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [proc.communicate(timeout=600) for proc in (first, second)]
    assert [proc.returncode for proc in (first, second)] == [0, 0], outs
    assert all("written: " in out for out, _ in outs)
    assert sum("waiting for mixexp-reproduce (pid " in out for out, _ in outs) == 1
    runs = [log.parent for log in (tmp_path / "multirun" / "smoke" / "rescaled" / "cifar").glob("*/train.log")]
    assert len(runs) == 4
    for run in runs:  # trained once, by the first; the second found it finished and evaluated it again only
        log = (run / "train.log").read_text()
        assert log.count("epoch 1/1 lr") == 1 and "resumed " in log
    assert not list((tmp_path / "multirun" / "smoke").glob(".data.*.building"))
