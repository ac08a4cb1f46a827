"""Hidden tests of module 20 (capstone): TinyGPT refuses what it cannot do before training."""

from __future__ import annotations

import pytest
from tinytorch.applications.tinygpt import TinyGPT


def test_generate_before_fit_and_too_short_text_are_clear_errors():
    gpt = TinyGPT(vocab_size=260, embed_dim=16, num_layers=1, num_heads=2, max_seq_len=16)
    with pytest.raises((RuntimeError, ValueError)):
        gpt.generate("hello")
    with pytest.raises(ValueError, match="too short|seq_len"):
        gpt.fit("tiny", steps=1, seq_len=8)
