"""Module 10: tokenization, turning text into integer ids and back.

A language model sees integers, not characters. A *tokenizer* fixes the map
between the two:

* :class:`CharTokenizer` gives every character of a corpus its own id. The
  vocabulary is tiny and every string that uses known characters round-trips,
  but sequences are long (one id per character).
* :class:`BPETokenizer` is byte-level *byte-pair encoding* (as in GPT-2): text
  is first encoded as UTF-8 bytes (256 base tokens, so *every* Unicode string
  is representable), then the most frequent adjacent pair of tokens in the
  training corpus is repeatedly merged into a new token. Frequent words become
  single tokens, rare ones fall back to pieces or raw bytes, and
  ``decode(encode(s)) == s`` holds for every string, including ``""``.

Both save and load their vocabulary as JSON (never pickle).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence

# Pre-tokenization: split text into chunks that merges never cross. A chunk is
# a run of non-space characters with at most one leading space (" word"), or a
# run of whitespace. Every character matches one alternative, so the chunks
# concatenate back to the text exactly (round trips never depend on this split).
_CHUNK_RE = re.compile(r" ?\S+|\s+(?!\S)|\s+")


# A saved tokenizer is read whole and then expanded (every BPE id becomes its bytes), so a small
# crafted file must not be able to make us allocate without bound: 40 merges that each join the
# previous token with itself describe a 2**40-byte token in 500 bytes of JSON. These caps sit far
# above any real vocabulary (GPT-2: 50,000 merges, about 300 KB of token bytes).
MAX_FILE_BYTES = 64 << 20  # a tokenizer file larger than this is refused before parsing
MAX_MERGES = 1 << 20  # merges (BPE ids above 255) a file may declare
MAX_VOCAB_BYTES = 64 << 20  # total bytes of all BPE tokens once expanded


def _write_json_atomic(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file + rename (never a half file).

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 minus the
    umask); ``mkstemp`` alone would leave it private (0600).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tok-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (reading it means setting it: put the same value straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _read_json(path: str | os.PathLike, kind: str) -> dict:
    """The JSON object of a saved ``kind`` tokenizer; ``ValueError`` naming the file for anything else."""
    name = repr(os.fspath(path))
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name} is larger than {MAX_FILE_BYTES >> 20} MiB: not a saved {kind} tokenizer")
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{name} is not a saved {kind} tokenizer (not JSON: {err})") from None
    if not isinstance(payload, dict) or payload.get("type") != kind:
        raise ValueError(f"{name} is not a saved {kind} tokenizer (expected JSON with type={kind!r})")
    return payload


def _check_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
    """Validate token ids: integers in [0, vocab_size). Returns them as a list of int."""
    out = []
    for i in ids:
        try:
            j = int(i)
        except (TypeError, ValueError):
            raise ValueError(f"decode: ids must be integers, got {i!r}") from None
        if j != i or not 0 <= j < vocab_size:
            raise ValueError(f"decode: id {i!r} is out of range for vocab_size={vocab_size}")
        out.append(j)
    return out


class Tokenizer:
    """Base class: a reversible map between text and lists of integer ids.

    Subclasses implement :meth:`encode`, :meth:`decode` and :attr:`vocab_size`.
    """

    def encode(self, text: str) -> list[int]:
        """Map ``text`` to a list of token ids."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """Map a sequence of token ids back to text."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids: every id is in ``range(vocab_size)``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size


class CharTokenizer(Tokenizer):
    """One token per character, plus an unknown-character token.

    Id 0 is ``unk_token``; the characters seen by :meth:`build_vocab` get ids
    1, 2, ... in sorted order (so the mapping does not depend on corpus order).
    Characters not in the vocabulary encode to 0 and id 0 decodes to ``unk_token``.

    Args:
        corpus: optional list of strings; if given, :meth:`build_vocab` is called on it.
        unk_token: the text id 0 decodes to.

    Example::

        tok = CharTokenizer(["hello world"])
        tok.decode(tok.encode("hello")) == "hello"
    """

    UNK_ID = 0

    def __init__(self, corpus: Iterable[str] | None = None, unk_token: str = "<unk>"):
        self.unk_token = unk_token
        self.char_to_id: dict[str, int] = {}
        self.id_to_char: list[str] = [unk_token]
        if corpus is not None:
            self.build_vocab(corpus)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_char)

    def build_vocab(self, corpus: Iterable[str]) -> CharTokenizer:
        """Build the vocabulary from every character in ``corpus`` (a list of strings).

        Cost: O(total characters). Returns ``self`` so calls can be chained.
        """
        if isinstance(corpus, str):
            corpus = [corpus]
        ### BEGIN SOLUTION
        chars: set[str] = set()
        for text in corpus:
            if not isinstance(text, str):
                raise ValueError(f"build_vocab: corpus must contain strings, got {type(text).__name__}")
            chars.update(text)
        self.id_to_char = [self.unk_token] + sorted(chars)
        self.char_to_id = {c: i for i, c in enumerate(self.id_to_char) if i != self.UNK_ID}
        return self
        ### END SOLUTION

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; unknown characters map to ``UNK_ID`` (0)."""
        if not isinstance(text, str):
            raise ValueError(f"encode: text must be a str, got {type(text).__name__}")
        ### BEGIN SOLUTION
        get = self.char_to_id.get
        return [get(c, self.UNK_ID) for c in text]
        ### END SOLUTION

    def decode(self, ids: Sequence[int]) -> str:
        """Concatenate the characters of ``ids`` (id 0 becomes ``unk_token``)."""
        ### BEGIN SOLUTION
        table = self.id_to_char
        return "".join(table[i] for i in _check_ids(ids, len(table)))
        ### END SOLUTION

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to ``path`` as JSON."""
        _write_json_atomic(path, {"type": "char", "unk_token": self.unk_token, "chars": self.id_to_char[1:]})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Return a new tokenizer read from a JSON file written by :meth:`save`."""
        payload = _read_json(path, "char")
        chars, unk = payload.get("chars"), payload.get("unk_token", "<unk>")
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError(f"{os.fspath(path)!r}: 'chars' must be a list of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError(f"{os.fspath(path)!r}: 'chars' lists a character twice")
        if not isinstance(unk, str):
            raise ValueError(f"{os.fspath(path)!r}: 'unk_token' must be a string, got {unk!r}")
        tok = cls(unk_token=unk)
        tok.id_to_char = [tok.unk_token] + list(chars)
        tok.char_to_id = {c: i for i, c in enumerate(tok.id_to_char) if i != cls.UNK_ID}
        return tok


def _merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right) by ``new_id``."""
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair-encoding tokenizer.

    Ids 0-255 are the raw bytes; each merge learned by :meth:`train` adds one id
    (256, 257, ...) standing for the concatenation of two existing tokens.
    Encoding applies the merges in the order they were learned; decoding
    concatenates the bytes of each id and decodes UTF-8.

    Args:
        vocab_size: target vocabulary size (>= 256); :meth:`train` learns
            ``vocab_size - 256`` merges, fewer if the corpus runs out of pairs.

    Attributes:
        merges: list of learned pairs ``(left_id, right_id)``; merge ``k`` creates id ``256 + k``.
        vocab: ``list[bytes]``, the bytes each id stands for.

    Cost: training is O(merges x distinct-chunk length) with incremental pair
    counts; encoding is O(chunk length^2) per distinct chunk, memoized.
    """

    def __init__(self, vocab_size: int = 512):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the byte alphabet), got {vocab_size!r}")
        self.target_vocab_size = vocab_size
        self.merges: list[tuple[int, int]] = []
        self._rebuild()

    def _rebuild(self) -> None:
        """Recompute the id -> bytes table and the pair -> id map from ``self.merges``."""
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]
        self._ranks: dict[tuple[int, int], int] = {}
        for k, (a, b) in enumerate(self.merges):
            new_id = 256 + k
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge {k} = ({a}, {b}) refers to an id not defined before it")
            self.vocab.append(self.vocab[a] + self.vocab[b])
            self._ranks[(a, b)] = new_id
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def train(self, corpus: Iterable[str] | str) -> BPETokenizer:
        """Learn merges from ``corpus`` (a list of strings, or one string).

        Repeatedly: count every adjacent pair of tokens inside the chunks of the
        corpus (weighted by how often each chunk occurs), merge the most frequent
        pair (ties broken by the smaller pair, so training is deterministic) into
        a new token. Stops at ``target_vocab_size`` or when no pair occurs twice.
        Returns ``self``.
        """
        if isinstance(corpus, str):
            corpus = [corpus]
        ### BEGIN SOLUTION
        chunk_freq: Counter[str] = Counter()
        for text in corpus:
            if not isinstance(text, str):
                raise ValueError(f"train: corpus must contain strings, got {type(text).__name__}")
            chunk_freq.update(_CHUNK_RE.findall(text))
        words = [list(chunk.encode("utf-8", errors="surrogatepass")) for chunk in chunk_freq]
        freqs = list(chunk_freq.values())

        # Pair counts over all words, and which words contain each pair, so a
        # merge only revisits the words it changes.
        pair_counts: Counter[tuple[int, int]] = Counter()
        where: dict[tuple[int, int], set[int]] = {}
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += f
                where.setdefault(pair, set()).add(w)

        self.merges = []
        vocab: list[bytes] = [bytes([b]) for b in range(256)]
        while 256 + len(self.merges) < self.target_vocab_size and pair_counts:
            best = max(pair_counts.items(), key=lambda kv: (kv[1], (-kv[0][0], -kv[0][1])))
            pair, count = best
            if count < 2:
                break  # merging a pair seen once compresses nothing that generalizes
            new_id = 256 + len(self.merges)
            self.merges.append(pair)
            vocab.append(vocab[pair[0]] + vocab[pair[1]])
            for w in where.pop(pair, set()):
                ids, f = words[w], freqs[w]
                for old in zip(ids, ids[1:]):
                    pair_counts[old] -= f
                    if pair_counts[old] <= 0:
                        del pair_counts[old]
                merged = _merge_pair(ids, pair, new_id)
                words[w] = merged
                for new in zip(merged, merged[1:]):
                    pair_counts[new] += f
                    where.setdefault(new, set()).add(w)
            pair_counts.pop(pair, None)
        self._rebuild()
        return self
        ### END SOLUTION

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Encode one pre-tokenized chunk by applying merges, earliest-learned first."""
        ### BEGIN SOLUTION
        ids = list(chunk.encode("utf-8", errors="surrogatepass"))
        ranks = self._ranks
        while len(ids) >= 2:
            # The applicable pair with the lowest id was learned first: apply it next.
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            new_id = ranks.get(best)
            if new_id is None:
                break
            ids = _merge_pair(ids, best, new_id)
        return ids
        ### END SOLUTION

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (UTF-8 bytes with the learned merges applied)."""
        if not isinstance(text, str):
            raise ValueError(f"encode: text must be a str, got {type(text).__name__}")
        out: list[int] = []
        cache = self._cache
        for chunk in _CHUNK_RE.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(cache) < 100_000:
                    cache[chunk] = ids
            out.extend(ids)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``: their bytes concatenated and decoded as UTF-8.

        Byte sequences that are not valid UTF-8 (possible only for id lists not
        produced by :meth:`encode`) decode with U+FFFD replacement characters.
        """
        ### BEGIN SOLUTION
        vocab = self.vocab
        data = b"".join(vocab[i] for i in _check_ids(ids, len(vocab)))
        try:
            # surrogatepass: lone surrogates (legal in a Python str) round-trip too.
            return data.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", errors="replace")
        ### END SOLUTION

    def save(self, path: str | os.PathLike) -> None:
        """Write the merges to ``path`` as JSON."""
        _write_json_atomic(
            path,
            {"type": "bpe", "vocab_size": self.target_vocab_size, "merges": [list(m) for m in self.merges]},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Return a new tokenizer read from a JSON file written by :meth:`save`."""
        name = repr(os.fspath(path))
        payload = _read_json(path, "bpe")
        merges = payload.get("merges")
        if not isinstance(merges, list) or not all(
            isinstance(m, list) and len(m) == 2 and all(type(x) is int for x in m) for m in merges
        ):
            raise ValueError(f"{name}: 'merges' must be a list of [int, int] pairs")
        if len(merges) > MAX_MERGES:
            raise ValueError(f"{name}: {len(merges)} merges, more than the limit of {MAX_MERGES}")
        vocab_size = payload.get("vocab_size", 256)
        if type(vocab_size) is not int or not 256 <= vocab_size <= 256 + MAX_MERGES:
            raise ValueError(
                f"{name}: 'vocab_size' must be an int in [256, {256 + MAX_MERGES}], got {vocab_size!r}"
            )
        # Token lengths first (integers only), so an exploding chain of merges is refused before
        # any token's bytes are built.
        lengths = [1] * 256
        total = 0
        for k, (a, b) in enumerate(merges):
            new_id = 256 + k
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"{name}: merge {k} = ({a}, {b}) refers to an id not defined before it")
            lengths.append(lengths[a] + lengths[b])
            total += lengths[-1]
            if total > MAX_VOCAB_BYTES:
                raise ValueError(
                    f"{name}: the merges expand to more than {MAX_VOCAB_BYTES >> 20} MiB of token bytes "
                    f"(merge {k} makes a {lengths[-1]}-byte token): not a vocabulary a corpus can produce"
                )
        tok = cls(max(vocab_size, 256 + len(merges)))
        tok.merges = [(a, b) for a, b in merges]
        tok._rebuild()
        return tok
