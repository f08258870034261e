"""Print pip constraints that pin every dependency of pyproject.toml at its floor.

`name>=X` becomes `name==X` (markers kept); a dependency without a floor is an error, so
every floor stays stated and proven by the floor smoke test (.ci/run).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)\s*(;.*)?$")


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        match = FLOOR.match(requirement)
        if match is None:
            print(f"error: {requirement!r} states no floor (name>=X)", file=sys.stderr)
            return 1
        name, version, marker = match.groups()
        print(f"{name}=={version}{marker or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
