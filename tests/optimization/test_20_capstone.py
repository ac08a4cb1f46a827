"""Module 20: TinyGPT end to end on a tiny text.

Tokenizers, training, cached generation, int8, profile; the sliding-window
evaluation against a naive loop; checkpoints: exact round trip, a resumed run
equal to an uninterrupted one, atomic writes, clear errors for bad files.
"""

import os

import numpy as np
import pytest

TEXT = "the cat sat on the mat. the dog ran to the log. " * 24


def train_tiny():
    from tinytorch.applications.tinygpt import TinyGPT

    gpt = TinyGPT(vocab_size=280, embed_dim=48, num_layers=2, num_heads=4, max_seq_len=24, seed=0)
    # 5e-3: at 1e-2 the last loss depends on BLAS summation order (1 vs 2 threads) and memorization with it.
    gpt.fit(TEXT, steps=120, batch_size=16, lr=5e-3)
    return gpt


def test_tinygpt_trains_generates_quantizes_and_profiles(require_tier):
    require_tier("architecture")
    gpt = train_tiny()
    assert gpt.tokenizer.vocab_size > 256  # BPE learned merges
    assert len(gpt.losses) == 120 and gpt.step == 120
    assert np.mean(gpt.losses[-10:]) < 0.3 * np.mean(gpt.losses[:10])
    assert gpt.model.kv_cache_factory is not None  # generation uses the cache by default after fit

    sample = gpt.generate("the cat", max_new_tokens=8)
    assert sample.startswith("the cat")
    assert sample in TEXT * 2  # a memorized continuation of the training text

    speed = gpt.generation_speed("the dog", max_new_tokens=12)
    assert speed["same_tokens"]

    report = gpt.quantize(calibration_text=TEXT)
    assert report["layers_quantized"] == 2 * 4 + 1  # in_proj (q|k|v), out_proj, 2 MLP per block + LM head
    assert report["compression_ratio"] > 3.0
    assert report["relative_error"] < 0.05
    assert gpt.generate("the cat", max_new_tokens=8) in TEXT * 2  # int8 keeps the memorized text

    with pytest.raises(ValueError, match="before quantize"):
        gpt.save("never-written.npz")
    assert not os.path.exists("never-written.npz")

    text = gpt.profile(seq_len=16)
    assert "parameters" in text and "FLOPs" in text and "int8" in text
    assert "Linear" in text or "QuantizedLinear" in text


def test_tinygpt_errors(require_tier):
    require_tier("architecture")
    from tinytorch.applications.tinygpt import TinyGPT

    gpt = TinyGPT(vocab_size=260, max_seq_len=16)
    with pytest.raises(ValueError, match="fit"):
        gpt.generate("hi")
    with pytest.raises(ValueError, match="too short"):
        gpt.fit("tiny", steps=1)
    with pytest.raises(ValueError, match="'tokenizer' must be one of"):
        TinyGPT(tokenizer="word")
    with pytest.raises(ValueError, match="not divisible"):
        TinyGPT(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="'num_layers' must be a positive int"):
        TinyGPT(num_layers=0)


def small(tokenizer="char", seed=0):
    from tinytorch.applications.tinygpt import TinyGPT

    return TinyGPT(vocab_size=270, embed_dim=16, num_layers=1, num_heads=2, max_seq_len=8, seed=seed,
                   tokenizer=tokenizer)


def test_char_tokenizer_trains_and_refuses_unknown_prompt_characters(require_tier):
    require_tier("architecture")
    gpt = small("char")
    gpt.fit(TEXT, steps=3, batch_size=4)
    assert gpt.tokenizer.vocab_size == len(set(TEXT)) + 1  # the characters plus <unk>
    assert gpt.chars_per_token(TEXT) == 1.0
    out = gpt.generate("the", max_new_tokens=5, temperature=0.8, top_k=3, seed=1)
    assert out.startswith("the") and len(out) == 8
    assert out == gpt.generate("the", max_new_tokens=5, temperature=0.8, top_k=3, seed=1)  # seeded
    with pytest.raises(ValueError, match="not in the vocabulary: 'TZ'"):
        gpt.generate("The Zoo", max_new_tokens=2)


def naive_nats(gpt, ids):
    """Total loss of every target k, each predicted by the first window (starts 0, h, 2h, ...) reaching it."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    T = gpt.config["max_seq_len"]
    n = len(ids) - 1
    starts = list(range(0, n - T + 1, T // 2))
    if starts[-1] != n - T:
        starts.append(n - T)
    total = 0.0
    with no_grad():
        for k in range(1, len(ids)):
            s = next(s for s in starts if s + T >= k)
            z = np.asarray(gpt.model(Tensor(ids[None, s : s + T])).data[0, k - 1 - s], dtype=np.float64)
            total -= z[ids[k]] - z.max() - np.log(np.exp(z - z.max()).sum())
    return total


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_evaluate_matches_a_naive_loop_per_token_and_per_character(require_tier, tokenizer):
    require_tier("architecture")
    gpt = small(tokenizer)
    gpt.fit(TEXT, steps=2, batch_size=4)
    ids = gpt.encode("the dog sat on the log. the cat ran to the mat. ")
    got = gpt.evaluate(ids, batch_size=2)
    total = naive_nats(gpt, ids)
    chars = sum(len(gpt.tokenizer.decode([int(i)])) for i in ids[1:])  # ASCII: a byte is a character
    assert got["tokens"] == len(ids) - 1 and got["chars"] == chars
    assert got["nats_per_token"] == pytest.approx(total / (len(ids) - 1), rel=1e-5)
    assert got["nats_per_char"] == pytest.approx(total / chars, rel=1e-5)
    if tokenizer == "bpe":
        assert chars > len(ids) - 1  # merged tokens stand for several characters


def test_save_load_round_trip_is_exact(require_tier, tmp_path):
    require_tier("architecture")
    from tinytorch.applications.tinygpt import TinyGPT
    from tinytorch.core.tensor import Tensor

    for tokenizer in ("char", "bpe"):
        gpt = small(tokenizer, seed=3)
        gpt.fit(TEXT, steps=4, batch_size=4)
        gpt.extra = {"note": "kept", "history": [{"step": 4}]}
        path = tmp_path / f"{tokenizer}.npz"
        gpt.save(path)
        back = TinyGPT.load(path)
        assert back.tokenizer_kind == tokenizer and back.config == gpt.config and back.seed == 3
        assert back.step == 4 and back.losses == gpt.losses and back.extra == gpt.extra
        assert back.tokenizer.encode(TEXT) == gpt.tokenizer.encode(TEXT)
        x = Tensor(gpt.encode(TEXT)[None, :8])
        np.testing.assert_array_equal(back.model(x).data, gpt.model(x).data)
        a, b = gpt.optimizer.state_dict(), back.optimizer.state_dict()
        assert a.keys() == b.keys() and a["step_count"] == b["step_count"] == 4
        for key in a:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
        assert back.rng.bit_generator.state == gpt.rng.bit_generator.state
        assert back.model.kv_cache_factory is not None  # Module 17 enabled on load
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_resumed_run_equals_an_uninterrupted_one(require_tier, tmp_path):
    require_tier("architecture")
    from tinytorch.applications.tinygpt import TinyGPT

    lrs = [1e-3, 3e-3, 3e-3, 2e-3, 1e-3, 5e-4]
    straight = small()
    ids = straight.build(TEXT)
    for lr in lrs:
        straight.train_step(ids, batch_size=4, lr=lr)

    first = small()
    ids = first.build(TEXT)
    for lr in lrs[:3]:
        first.train_step(ids, batch_size=4, lr=lr)
    first.save(tmp_path / "ck.npz")
    resumed = TinyGPT.load(tmp_path / "ck.npz")
    for lr in lrs[3:]:
        resumed.train_step(resumed.encode(TEXT), batch_size=4, lr=lr)

    assert resumed.step == 6 and resumed.losses == straight.losses  # same batches, same moments
    for (name, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_save_is_atomic(require_tier, tmp_path, monkeypatch):
    require_tier("architecture")
    from tinytorch.applications import tinygpt

    gpt = small()
    gpt.fit(TEXT, steps=2, batch_size=4)
    path = tmp_path / "ck.npz"
    gpt.save(path)
    before = path.read_bytes()
    gpt.train_step(gpt.encode(TEXT), batch_size=4)

    def half_written(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(tinygpt.np, "savez", half_written)
    with pytest.raises(OSError, match="disk full"):
        gpt.save(path)
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert os.listdir(tmp_path) == ["ck.npz"]  # and the temporary file is gone
    assert tinygpt.TinyGPT.load(path).step == 2


def test_load_reports_bad_checkpoints_clearly(require_tier, tmp_path):
    require_tier("architecture")
    from tinytorch.applications.tinygpt import CheckpointError, TinyGPT

    with pytest.raises(CheckpointError, match="no checkpoint at"):
        TinyGPT.load(tmp_path / "missing.npz")
    gpt = small()
    gpt.fit(TEXT, steps=1, batch_size=4)
    gpt.save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "other.npz", meta=np.asarray('{"format": "something else"}'))
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    with np.load(tmp_path / "good.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "future.npz", **{**arrays, "meta": np.asarray(str(arrays["meta"]).replace(
        '"version": 1', '"version": 99'))})
    wrong = {k: v for k, v in arrays.items() if k != "model.head.weight"}
    np.savez(tmp_path / "damaged.npz", **wrong)
    for name, message in [
        ("truncated", "not a readable TinyGPT checkpoint"),
        ("noise", "not a readable TinyGPT checkpoint"),
        ("other", "is not a TinyGPT checkpoint"),
        ("nometa", "not a readable TinyGPT checkpoint"),
        ("future", "checkpoint version 99"),
        ("damaged", "damaged checkpoint.*head.weight"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            TinyGPT.load(tmp_path / f"{name}.npz")
