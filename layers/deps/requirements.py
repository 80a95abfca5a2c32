"""Print the dependency layer's requirements: pyproject's `[project] dependencies`, plus ALWAYS.

ALWAYS are distributions the deployed function imports whether or not pyproject lists them among the
runtime dependencies yet; each is added only when missing there (with the version bound of the optional
dependencies when it is listed only there):
- uvicorn serves `chatgate.asgi:app` behind Lambda Web Adapter in streaming mode.
tests/deploy/test_layer.py checks every import the entry points reach.

Usage: python3 requirements.py [path/to/pyproject.toml]   (Python 3.11+: tomllib)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ALWAYS = ("uvicorn",)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: Path) -> list[str]:
    """The requirement strings the layer is built from, in pyproject order, ALWAYS appended if missing."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    names = {requirement_name(r) for r in requirements}
    optional = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    for name in ALWAYS:
        if name not in names:
            pinned = [r for r in optional if requirement_name(r) == name]
            requirements.append(pinned[0] if pinned else name)
    return requirements


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parents[2] / "pyproject.toml"
    pyproject = Path(argv[1]) if len(argv) > 1 else default
    for requirement in layer_requirements(pyproject):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
