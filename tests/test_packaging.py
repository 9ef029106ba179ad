"""The package installs anywhere: the wheel carries conf/ and the tables, and a venv holding only the
wheel (plus the dependencies) trains from any folder; ``mixexp --version`` lists the sub-commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from mixexp import __version__
from mixexp.commands import SUBCOMMANDS, cli

DIGITS_1_EPOCH = ["dataset=digits", "trainer.epochs=1", "trainer.device=cpu", "trainer.progress=log"]


def test_every_sub_command_is_a_console_script_of_the_package():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mixexp": "mixexp.commands:cli",
                       **{f"mixexp-{name}": target for name, (target, _) in SUBCOMMANDS.items()}}


def test_mixexp_prints_its_version_and_lists_the_sub_commands(capsys):
    cli(["--version"])
    assert capsys.readouterr().out == f"mixexp {__version__}\n"
    cli([])
    listing = capsys.readouterr().out
    assert [line.split()[0] for line in listing.splitlines() if line.startswith("  mixexp-")] == \
        [f"mixexp-{name}" for name in SUBCOMMANDS]


def test_an_unknown_sub_command_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["trian"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: command 'trian' is not allowed: choose one of train, report, eval, " \
                                      "data, reproduce, plot (or --version)\n"


def build_wheel(out: Path) -> Path:
    """Build from a copy of the sources, so that no stale build/ folder of the checkout leaks in."""
    src = out / "src"
    for part in ["mixexp", "conf"]:
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ["pyproject.toml", "setup.py", "README.md"]:
        shutil.copy(REPO / part, src / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True, capture_output=True, text=True)
    (wheel,) = out.glob("mixexp-*.whl")
    return wheel


def wheel_only_venv(root: Path) -> Path:
    """A venv that sees this interpreter's site-packages (the dependencies) through a .pth line, but not
    the editable mixexp: a folder added by a .pth line does not get its own .pth files processed, so
    the editable install's finder (itself installed by a .pth file) never runs there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


@pytest.mark.slow
def test_a_venv_with_only_the_wheel_trains_from_any_folder(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    conf_files = {f"mixexp/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    assert "mixexp/published_results.csv" in names and "mixexp/conf/experiment/sem/table1.yaml" in conf_files
    assert conf_files <= names, sorted(conf_files - names)

    python = wheel_only_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env["WANDB_MODE"] = "offline"
    # --ignore-installed: never touch the mixexp that the .pth line makes visible
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "--quiet",
                    "--disable-pip-version-check", str(wheel)], check=True, env=env, capture_output=True)
    bin_dir, cwd = python.parent, tmp_path / "elsewhere"
    cwd.mkdir()

    def run(*args):
        result = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    # the assumption above: the venv imports the wheel's mixexp, not the editable one
    where = run("python", "-c", "import mixexp, mixexp.paths as p; print(mixexp.__file__); print(p.CONF_DIR)")
    module, conf = where.split()
    assert Path(module).is_relative_to(tmp_path / "venv") and Path(conf) == Path(module).parent / "conf"
    assert run("mixexp", "--version") == f"mixexp {__version__}\n"
    assert "name: demo" in run("mixexp-train", "--cfg", "job", "experiment=demo")
    run("mixexp-train", *DIGITS_1_EPOCH, "hydra.run.dir=run")
    metrics = json.loads((cwd / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and 10.0 < metrics["test_acc"] <= 100.0  # above chance (10 classes)


def test_mixexp_name_runs_the_sub_command_with_its_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["report", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'} is not a directory\n"
