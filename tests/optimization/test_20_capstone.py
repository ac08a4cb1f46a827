"""Module 20: TinyGPT end to end on a tiny text (tokenizer, training, cached generation, int8, profile)."""

import numpy as np
import pytest

TEXT = "the cat sat on the mat. the dog ran to the log. " * 24


def train_tiny():
    from tinytorch.applications.tinygpt import TinyGPT

    gpt = TinyGPT(vocab_size=280, embed_dim=48, num_layers=2, num_heads=4, max_seq_len=24, seed=0)
    gpt.fit(TEXT, steps=120, batch_size=16, lr=1e-2)
    return gpt


def test_tinygpt_trains_generates_quantizes_and_profiles(require_tier):
    require_tier("architecture")
    gpt = train_tiny()
    assert gpt.tokenizer.vocab_size > 256  # BPE learned merges
    assert len(gpt.losses) == 120
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
