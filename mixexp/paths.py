"""Where mixexp finds its own files: a leaf module (no mixexp imports)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The Hydra config tree: ``conf/`` at the repository's top level (editable install); an installed wheel
# carries the same tree inside the package as ``mixexp/conf``.
CONF_DIR = next((p for p in (PACKAGE_DIR.parent / "conf", PACKAGE_DIR / "conf") if (p / "config.yaml").is_file()),
                PACKAGE_DIR.parent / "conf")
