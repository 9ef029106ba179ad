"""Write a data root of tiny fixtures of every dataset, verified and cached (used by SMOKE=1).

    python scripts/make_smoke_data.py DIR
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mixexp.data.fixtures import make_smoke_root  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_smoke_data.py DIR")
    print(make_smoke_root(Path(sys.argv[1])))
