"""Redraw the demo set (cartoon faces, 5 per class) into this folder or OUT_DIR.

    python examples/demo/make_demo.py [OUT_DIR]

The drawing lives in `emoprobe.demo`, which `emoprobe run` (with no DATASET) uses too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from emoprobe.data.demo import make_demo

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    print(f"drew {len(make_demo(target))} faces into {target}")
