"""Module 10: character and byte-level BPE tokenizers."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinytorch.text.tokenization import BPETokenizer, CharTokenizer, Tokenizer

CORPUS = [
    "the quick brown fox jumps over the lazy dog. " * 3,
    "the theory of the thing: then there were three.",
    "naïve café, 東京 and 🌍 too",
]


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer(vocab_size=320).train(CORPUS)


def naive_bpe_train(corpus, vocab_size):
    """Oracle: the textbook algorithm with full recounting every step, on the same chunks."""
    from tinytorch.text.tokenization import _CHUNK_RE

    chunks = Counter(c for text in corpus for c in _CHUNK_RE.findall(text))
    words = {c: list(c.encode("utf-8")) for c in chunks}
    merges = []
    while 256 + len(merges) < vocab_size:
        counts = Counter()
        for c, ids in words.items():
            for p in zip(ids, ids[1:]):
                counts[p] += chunks[c]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < 2:
            break
        new = 256 + len(merges)
        merges.append(best)
        for c, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[c] = out
    return merges


# ---------------------------------------------------------------- CharTokenizer


def test_char_vocab_sorted_with_unknown_at_zero():
    tok = CharTokenizer(["hello", "world"])
    assert isinstance(tok, Tokenizer)
    chars = sorted(set("helloworld"))
    assert tok.vocab_size == len(chars) + 1
    assert tok.encode("dehl") == [chars.index(c) + 1 for c in "dehl"]
    assert tok.encode("") == []


def test_char_round_trip_and_unknown():
    tok = CharTokenizer().build_vocab(["abc 🌍"])
    assert tok.decode(tok.encode("cab 🌍")) == "cab 🌍"
    assert tok.encode("axz") == [tok.encode("a")[0], 0, 0]
    assert tok.decode(tok.encode("axb")) == "a<unk>b"


@settings(max_examples=40, deadline=None)
@given(st.text())
def test_char_round_trip_property(s):
    tok = CharTokenizer([s])
    assert tok.decode(tok.encode(s)) == s


def test_char_save_load(tmp_path):
    tok = CharTokenizer(["héllo wörld"])
    path = tmp_path / "char.json"
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded.id_to_char == tok.id_to_char
    assert loaded.encode("wörld?") == tok.encode("wörld?")


def test_char_errors(tmp_path):
    tok = CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([0, 99])
    with pytest.raises(ValueError, match="text"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="strings"):
        CharTokenizer([1, 2])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "bpe", "merges": []}))
    with pytest.raises(ValueError, match="char"):
        CharTokenizer.load(bad)


# ---------------------------------------------------------------- BPETokenizer


def test_bpe_merges_match_naive_oracle(bpe):
    assert bpe.merges == naive_bpe_train(CORPUS, 320)
    assert 280 < bpe.vocab_size == 256 + len(bpe.merges) <= 320  # stops when no pair repeats
    # each new token stands for the bytes of its two parts
    for k, (a, b) in enumerate(bpe.merges):
        assert bpe.vocab[256 + k] == bpe.vocab[a] + bpe.vocab[b]


def test_bpe_compresses_frequent_words(bpe):
    text = "the quick brown fox"
    ids = bpe.encode(text)
    assert len(ids) < len(text.encode("utf-8")) / 2
    assert bpe.decode(ids) == text
    # the most frequent word becomes one token (with its leading space)
    assert bpe.vocab.index(b" the") in bpe.encode("a the")


def test_bpe_untrained_is_plain_utf8():
    tok = BPETokenizer(256)
    s = "héllo 🌍"
    assert tok.encode(s) == list(s.encode("utf-8"))
    assert tok.vocab_size == 256


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_bpe_round_trip_any_unicode(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


@pytest.mark.parametrize("s", ["", " ", "\n\n\t ", "🌍🌍🌍", "東京 the the", "\x00", "a\ud800b"])
def test_bpe_round_trip_edge_cases(bpe, s):
    ids = bpe.encode(s)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == s


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5), st.text(max_size=40))
def test_bpe_trained_on_random_corpus_round_trips(corpus, s):
    tok = BPETokenizer(280).train(corpus)
    assert tok.merges == naive_bpe_train(corpus, 280)
    for text in corpus + [s]:
        assert tok.decode(tok.encode(text)) == text


def test_bpe_encoding_applies_merges_in_learned_order():
    # corpus where "ab" is learned before "bc": "abc" must encode as [ab, c].
    tok = BPETokenizer(258).train(["ab ab ab bc bc abc"])
    ab = tok.vocab.index(b"ab")
    assert tok.merges[0] == (ord("a"), ord("b"))
    assert tok.encode("abc")[:1] == [ab]


def test_bpe_save_load(tmp_path, bpe):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    payload = json.loads(path.read_text())
    assert payload["type"] == "bpe" and len(payload["merges"]) == len(bpe.merges)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == bpe.merges and loaded.vocab == bpe.vocab
    s = "the lazy 🌍 fox"
    assert loaded.encode(s) == bpe.encode(s)


def test_bpe_errors(tmp_path, bpe):
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer(100)
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([bpe.vocab_size])
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([-1])
    with pytest.raises(ValueError, match="text"):
        bpe.encode(b"bytes")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "bpe", "merges": [[1, 999]]}))
    with pytest.raises(ValueError, match="merge 0"):
        BPETokenizer.load(bad)
    bad.write_text(json.dumps({"type": "bpe", "merges": "nope"}))
    with pytest.raises(ValueError, match="merges"):
        BPETokenizer.load(bad)


# ---------------------------------------------------------------- tokenizer files are bounded


def test_bpe_load_refuses_exploding_merges_before_allocating(tmp_path):
    # 40 merges, each joining the previous token with itself: token 256+k is 2**(k+1) bytes, so
    # the file (a few hundred bytes) describes a 2**40-byte token. It must be refused from the
    # integer lengths alone; building the bytes would need about a terabyte.
    merges = [[97, 97]] + [[256 + k, 256 + k] for k in range(39)]
    bad = tmp_path / "bomb.json"
    bad.write_text(json.dumps({"type": "bpe", "vocab_size": 296, "merges": merges}))
    assert bad.stat().st_size < 1024
    with pytest.raises(ValueError, match=r"bomb\.json.*MiB of token bytes"):
        BPETokenizer.load(bad)


def test_bpe_load_accepts_long_but_bounded_tokens(tmp_path):
    # 16 doublings: a 65,536-byte token of 'a' is large but legal (a corpus of long runs can make it).
    merges = [[97, 97]] + [[256 + k, 256 + k] for k in range(15)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"type": "bpe", "vocab_size": 272, "merges": merges}))
    tok = BPETokenizer.load(path)
    assert tok.vocab[-1] == b"a" * 2**16
    assert tok.decode([271]) == "a" * 2**16  # oracle: the run the chain of doublings spells


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"type": "bpe", "vocab_size": "512", "merges": []}, "vocab_size"),
        ({"type": "bpe", "vocab_size": 2**40, "merges": []}, "vocab_size"),
        ({"type": "bpe", "vocab_size": 300.5, "merges": []}, "vocab_size"),
        ({"type": "bpe", "merges": [[True, 1]]}, "merges"),
        ({"type": "bpe", "merges": [[1.0, 2]]}, "merges"),
    ],
)
def test_bpe_load_rejects_bad_fields_naming_the_file(tmp_path, payload, match):
    bad = tmp_path / "tok.json"
    bad.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=match) as err:
        BPETokenizer.load(bad)
    assert "tok.json" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_tokenizer_load_rejects_non_json_naming_the_file(tmp_path, content):
    bad = tmp_path / "garbage.json"
    bad.write_bytes(content)
    for cls in (BPETokenizer, CharTokenizer):
        with pytest.raises(ValueError, match="garbage.json.*not a saved"):
            cls.load(bad)


def test_tokenizer_load_rejects_oversized_file_without_parsing(tmp_path, monkeypatch):
    from tinytorch.text import tokenization

    monkeypatch.setattr(tokenization, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"type": "bpe", "merges": [[97, 98]] * 200}))
    assert big.stat().st_size > 1000
    with pytest.raises(ValueError, match="larger than"):
        BPETokenizer.load(big)


def test_char_load_rejects_duplicates_and_bad_unk(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"type": "char", "chars": ["a", "a"]}))
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer.load(bad)
    bad.write_text(json.dumps({"type": "char", "chars": ["a"], "unk_token": 5}))
    with pytest.raises(ValueError, match="unk_token"):
        CharTokenizer.load(bad)


def test_tokenizer_save_respects_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        CharTokenizer(["ab"]).save(tmp_path / "c.json")
    finally:
        os.umask(old)
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o640  # 0666 minus the umask, like open()
