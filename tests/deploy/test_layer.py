"""What the deployed function can import: its own package plus the dependency layer, nothing else.

The dependency layer (layers/deps) holds pyproject's `[project] dependencies` plus a few it always adds
(uvicorn: layers/deps/requirements.py), and what they depend on. The project's
virtualenv has far more (the dev extras), so an import that works in every other test can still fail on
Lambda at cold start. These tests follow the imports of the two entry points the template names and check
that each third-party module comes from the layer's requirements.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .cfn import ROOT

PACKAGE_DIR = ROOT / "src" / "chatgate"
RUN_SH = ROOT / "functions" / "chat_completions" / "run.sh"
# The modules template.yaml starts: Lambda Web Adapter's uvicorn (run.sh) and the Mangum handler.
ENTRY_POINTS = ("chatgate.asgi", "chatgate.lambda_handler")
# Left out of the function package (functions/chat_completions/Makefile).
EXCLUDED_FROM_PACKAGE = "chatgate.dev"
# Markers as the Lambda python3.13 arm64 runtime evaluates them.
LAMBDA_MARKERS = {
    **default_environment(),
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "python_full_version": "3.13.0",
    "python_version": "3.13",
    "sys_platform": "linux",
}


def _load_requirements_module():
    spec = importlib.util.spec_from_file_location("layer_requirements", ROOT / "layers/deps/requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layer = _load_requirements_module()


# --- walking the function's imports ---------------------------------------------------------------


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    base = ROOT / "src" / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {t.id for t in types if isinstance(t, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import that runs: not under TYPE_CHECKING, not optional."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (found for child in node.orelse for found in visit(child))
            return
        if isinstance(node, ast.Try) and _guards_import_error(node):
            return
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            # `from chatgate import wiring` imports the submodule chatgate.wiring.
            yield from ((f"{target}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))


def reachable(entry_points: tuple[str, ...]) -> tuple[set[str], dict[str, list[str]]]:
    """chatgate modules the entry points import, and third-party top-level names -> where imported."""
    seen: set[str] = set()
    third_party: dict[str, list[str]] = {}
    queue = list(entry_points)
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        path = _module_file(module)
        if path is None:
            continue
        seen.add(module)
        for imported, line in _imports(module, path):
            top = imported.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top == "chatgate":
                parts = imported.split(".")
                queue += [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                locations = third_party.setdefault(top, [])
                if where not in locations:
                    locations.append(where)
    return seen, third_party


# --- what the layer provides ----------------------------------------------------------------------


def _top_level_modules(dist: importlib.metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first == ".." or first.endswith((".dist-info", ".data", ".pth")) or first == "__pycache__":
            continue
        names.add(first.split(".")[0] if "." in first else first)
    return names


def layer_modules(requirements: list[str]) -> tuple[set[str], set[str]]:
    """Top-level modules of the requirements and everything they need on Lambda; and unresolved names."""
    modules: set[str] = set()
    unresolved: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [Requirement(r) for r in requirements]
    while queue:
        requirement = queue.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unresolved.add(requirement.name)
            continue
        modules |= _top_level_modules(dist)
        for raw in dist.requires or []:
            dependency = Requirement(raw)
            extras = ["", *sorted(requirement.extras)]
            marker = dependency.marker
            if marker is None or any(marker.evaluate({**LAMBDA_MARKERS, "extra": e}) for e in extras):
                queue.append(dependency)
    return modules, unresolved


def test_layer_requirements_are_the_runtime_dependencies_plus_the_always_ones():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = layer.layer_requirements(ROOT / "pyproject.toml")
    names = [layer.requirement_name(r) for r in requirements]

    assert requirements[: len(project["dependencies"])] == project["dependencies"]
    assert "uvicorn" in names
    assert len(names) == len(set(names))


def test_entry_points_exist():
    missing = [module for module in ENTRY_POINTS if _module_file(module) is None]
    assert not missing, f"template.yaml starts {missing}, which src/chatgate does not have"


def test_layer_provides_every_module_the_function_imports():
    provided, unresolved = layer_modules(layer.layer_requirements(ROOT / "pyproject.toml"))
    _, third_party = reachable(ENTRY_POINTS)

    missing = {name: where for name, where in third_party.items() if name not in provided}
    assert not missing, (
        "imported on Lambda but provided by no layer requirement (add the distribution to "
        f"[project] dependencies in pyproject.toml): {missing}; not installed here: {sorted(unresolved)}"
    )


def test_lambda_entry_points_do_not_reach_the_dev_package():
    modules, _ = reachable(ENTRY_POINTS)
    assert not [m for m in modules if m == EXCLUDED_FROM_PACKAGE or m.startswith(EXCLUDED_FROM_PACKAGE + ".")]


def test_import_walk_sees_lazy_imports_and_ignores_type_checking_ones():
    """The walker itself: wiring's lazy `import boto3` counts, TYPE_CHECKING-only stubs do not."""
    _, third_party = reachable(ENTRY_POINTS)
    assert "boto3" in third_party
    assert not [name for name in third_party if name.startswith("mypy_boto3")]


def test_tokenizer_vocabularies_ship_inside_the_package():
    """The compiled vocabularies are chatgate's package data (so the function code carries them, and
    tiktoken never downloads anything at run time); their source and the small-text counter come from a
    layer requirement."""
    import tomllib

    from chatgate.limits import tokenizer

    names = {layer.requirement_name(r) for r in layer.layer_requirements(ROOT / "pyproject.toml")}
    assert {"tiktoken", tokenizer.VOCABULARY_PACKAGE} <= names
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "limits/vocabularies/*.table" in package_data["chatgate"]
    for name in ("o200k_base", "cl100k_base"):
        assert (tokenizer.COMPILED_DIR / f"{name}.table").is_file()
        assert (tokenizer.vocabulary_dir() / f"{name}.tiktoken.gz").is_file()


# --- run.sh ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_sh_is_an_executable_posix_script():
    assert os.access(RUN_SH, os.X_OK)
    assert RUN_SH.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(RUN_SH)], check=True)


@pytest.mark.slow
def test_run_sh_serves_the_app_where_lambda_web_adapter_looks(tmp_path):
    """run.sh, as Lambda runs it: uvicorn on 127.0.0.1:$AWS_LWA_PORT answers the readiness path."""
    port = _free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Lambda's python3, played by this virtualenv's interpreter (a wrapper keeps the venv's site-packages).
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "LAMBDA_TASK_ROOT": str(ROOT / "src"),
        "AWS_LWA_PORT": str(port),
        "AWS_DEFAULT_REGION": "eu-central-1",
        "CHATGATE_REGIONS": "eu",
        "HOME": str(tmp_path),
    }
    process = subprocess.Popen(
        [str(RUN_SH)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        if response is None:
            output = process.stdout.read().decode() if process.poll() is not None else "no answer in 30 s"
            pytest.fail(f"run.sh did not serve /healthz: {output}")
        assert response.status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
