"""The package list: every ``mixexp*`` package, plus the repository's top-level ``conf/`` shipped as
``mixexp.conf`` so that an installed wheel carries the Hydra config tree (mixexp/paths.py finds it
there when there is no ``conf/`` beside the package). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mixexp", "mixexp.*"]) + ["mixexp.conf"],
    package_dir={"mixexp.conf": "conf"},
)
