"""Check what `sam build` produced, and report the deployment package sizes.

Run by `make infra-check` after `sam build`:  python tests/deploy/check_build.py [.aws-sam/build]

- The function package is only the chatgate package and an executable run.sh (no dependencies, no dev
  emulators, no caches): it stays small, and the dependency layer carries the rest.
- The layer is a Lambda Python layer (python/ at its root) for arm64: every native extension is an AArch64
  ELF file, and the tokenizer vocabularies are inside it (no download at run time).
- Sizes are measured by zipping each folder as `sam deploy` uploads it; together they must stay under
  Lambda's 250 MB unzipped limit.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

FUNCTION = "ChatCompletionsFunction"
LAYER = "DependenciesLayer"
FUNCTION_ENTRIES = {"chatgate", "run.sh"}
ENTRY_MODULES = ("chatgate/asgi.py", "chatgate/lambda_handler.py")
# The compiled vocabularies (chatgate.limits.tokenizer.table) travel with the function code; the small-text
# counter's pre-tokenizer and merge are puretiktoken's modules, in the layer with tiktoken.
VOCABULARIES = (
    "chatgate/limits/vocabularies/o200k_base.table",
    "chatgate/limits/vocabularies/cl100k_base.table",
)
SMALL_TEXT_MODULES = ("puretiktoken/_pretokenize.py", "puretiktoken/_bpe.py")
# The admin console's static files (GET /console) travel with the function code, the vendored chart library
# among them (committed, named by version: chatgate/console/assets.py).
CONSOLE_FILES = ("chatgate/console/static/index.html", "chatgate/console/static/app.js")
CONSOLE_LIBRARY = "chatgate/console/static/vendor/uplot-*.iife.min.js"
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes, function and all its layers together
EM_AARCH64 = 183


@dataclass(frozen=True)
class Size:
    files: int
    unzipped: int
    zipped: int

    def describe(self) -> str:
        return f"{self.zipped / 1e6:.2f} MB zipped, {self.unzipped / 1e6:.1f} MB unzipped, {self.files} files"


def measure(folder: Path) -> Size:
    """Zip the folder in memory the way sam deploy does (deflate), and count."""
    buffer = io.BytesIO()
    files = unzipped = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
                files += 1
                unzipped += path.stat().st_size
    return Size(files=files, unzipped=unzipped, zipped=len(buffer.getvalue()))


def elf_machine(path: Path) -> int | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byteorder = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], byteorder)


def foreign_bytecode(folder: Path) -> list[str]:
    """.pyc files not compiled by the Lambda runtime's CPython 3.13 (another version's are dead weight)."""
    pyc = folder.rglob("*.pyc")
    return [str(p.relative_to(folder)) for p in pyc if not p.name.endswith(".cpython-313.pyc")]


def check_function(folder: Path, require_bytecode: bool = False) -> list[str]:
    errors = []
    entries = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if entries != FUNCTION_ENTRIES:
        errors.append(
            f"function package holds {sorted(entries)}, expected exactly {sorted(FUNCTION_ENTRIES)}"
        )
    run_sh = folder / "run.sh"
    if run_sh.exists() and not os.access(run_sh, os.X_OK):
        errors.append("run.sh is not executable: Lambda Web Adapter could not start it")
    errors += [f"function package lacks {m}" for m in ENTRY_MODULES if not (folder / m).is_file()]
    errors += [f"tokenizer vocabulary missing: {v}" for v in VOCABULARIES if not (folder / v).is_file()]
    errors += [f"admin console file missing: {f}" for f in CONSOLE_FILES if not (folder / f).is_file()]
    if not list(folder.glob(CONSOLE_LIBRARY)):
        errors.append(f"admin console chart library missing: {CONSOLE_LIBRARY}")
    if (folder / "chatgate" / "dev").exists():
        errors.append("function package holds chatgate/dev (local emulators)")
    foreign = foreign_bytecode(folder)
    if foreign:
        errors.append(f"function package holds bytecode of another Python than 3.13: {foreign[:3]}")
    if require_bytecode and not any((folder / "chatgate").rglob("*.cpython-313.pyc")):
        errors.append("function package has no CPython 3.13 bytecode (cold starts would compile chatgate)")
    return errors


def check_layer(folder: Path, require_bytecode: bool) -> list[str]:
    errors = []
    entries = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if entries != {"python"}:
        return [
            f"layer root holds {sorted(entries)}, expected only python/ (Lambda imports from /opt/python)"
        ]
    site = folder / "python"
    errors += [
        f"tokenizer missing from the layer: {m}" for m in SMALL_TEXT_MODULES if not (site / m).is_file()
    ]
    if not list((site / "tiktoken").glob("_tiktoken*.so")):
        errors.append(
            "tokenizer missing from the layer: tiktoken's native extension (tiktoken/_tiktoken*.so)"
        )
    if (site / "bin").exists():
        errors.append("layer holds bin/ console scripts with this machine's interpreter path")
    native = [p for p in site.rglob("*.so*") if p.is_file()]
    if not native:
        errors.append("layer has no native extension (pydantic-core has one): was pip given the platform?")
    wrong = [str(p.relative_to(site)) for p in native if elf_machine(p) not in (EM_AARCH64, None)]
    if wrong:
        errors.append(f"native extensions not built for arm64 (aarch64): {wrong[:5]}")
    if require_bytecode and not any(site.rglob("*.cpython-313.pyc")):
        errors.append("layer has no CPython 3.13 bytecode (cold starts would compile every module)")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument("--require-bytecode", action="store_true", help="fail without CPython 3.13 bytecode")
    args = parser.parse_args(argv)

    function_dir, layer_dir = args.build_dir / FUNCTION, args.build_dir / LAYER
    errors = check_function(function_dir, args.require_bytecode)
    errors += check_layer(layer_dir, args.require_bytecode)
    if errors:
        for error in errors:
            print(f"check_build: {error}", file=sys.stderr)
        return 1

    function_size, layer_size = measure(function_dir), measure(layer_dir)
    print(f"function package ({FUNCTION}): {function_size.describe()}")
    print(f"dependency layer ({LAYER}): {layer_size.describe()}")
    total = function_size.unzipped + layer_size.unzipped
    if total > LAMBDA_UNZIPPED_LIMIT:
        print(f"check_build: {total / 1e6:.1f} MB unzipped exceeds Lambda's 250 MB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
