"""Hidden tests of module 10 (tokenization): round trips and compression, against counts done by hand."""

from __future__ import annotations

from tinytorch.text.tokenization import BPETokenizer, CharTokenizer


def test_char_tokenizer_round_trip_and_size():
    text = "the quick brown fox jumps over the lazy dog"
    tok = CharTokenizer([text])
    assert tok.vocab_size == len(set(text)) + 1  # one id per character plus <unk>
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(text)


def test_bpe_learns_the_frequent_pair_first_and_round_trips():
    corpus = "abababab cdcd " * 20
    tok = BPETokenizer(vocab_size=260).train(corpus)
    ids = tok.encode("abababab")
    assert tok.decode(ids) == "abababab"
    assert len(ids) < len("abababab")  # merges shorten it
    assert tok.decode(tok.encode("zebra: ünïcödé ✓")) == "zebra: ünïcödé ✓"
