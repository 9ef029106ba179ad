"""pytest glue for the dataset fixtures of :mod:`mixexp.data.fixtures` (tiny files in each released format)."""

from __future__ import annotations

from mixexp.data.fixtures import *  # noqa: F401,F403  (writers and constants used by the tests)
from mixexp.data.fixtures import patch_sources, write_tree

# ------------------------------------------------------------------------------------------ pytest glue

import pytest


def compose(overrides=()):
    """The real conf/ tree composed with ``overrides`` (as ``mixexp-train`` would)."""
    from hydra import compose as hydra_compose, initialize_config_dir

    from mixexp.config import CONF_DIR, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def fixture_tree(tmp_path_factory):
    """One tree of every dataset per test module (read-only tests share it): (root, overrides)."""
    root = tmp_path_factory.mktemp("data")
    return root, write_tree(root)


@pytest.fixture
def data_root(fixture_tree, monkeypatch):
    """The shared fixture tree, with SOURCES patched to its checksums and counts."""
    root, overrides = fixture_tree
    patch_sources(monkeypatch.setattr, overrides)
    return root
