"""Milestone 05 part 2's measurements: words, the real-word fraction, the sliding-window validation loss.

The verdict of the part is only as good as these; each is checked against a
hand count or a naive loop.
"""

from __future__ import annotations

import numpy as np
import pytest
from tinytorch.milestones import m05_transformer as m05


def test_words_are_lowercase_runs_of_letters_with_inner_apostrophes():
    assert m05.words("O'er the HILL, 'tis Romeo's -- ne'er.\nExit") == [
        "o'er", "the", "hill", "tis", "romeo's", "ne'er", "exit",
    ]
    assert m05.words("123 -- !?") == []


def test_real_word_fraction_counts_finished_words_only():
    vocab = {"the", "cat", "sat"}
    assert m05.real_word_fraction("the cat sat.", vocab) == (1.0, 3)
    assert m05.real_word_fraction("the dgo sat ", vocab) == (2 / 3, 3)
    # Cut off inside a word: "sa" is not judged (it may be the start of "sat").
    assert m05.real_word_fraction("the cat sa", vocab) == (1.0, 2)
    assert m05.real_word_fraction("The CAT xq\n", vocab) == (2 / 3, 3)  # case is ignored
    assert m05.real_word_fraction("  ,. ", vocab) == (0.0, 0)
    assert m05.real_word_fraction("", vocab) == (0.0, 0)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    steps = 200
    lrs = [m05.learning_rate(s, steps) for s in range(steps)]
    assert lrs[0] == pytest.approx(m05.PEAK_LR / m05.WARMUP)
    assert max(lrs) == pytest.approx(m05.PEAK_LR)
    assert lrs[-1] == pytest.approx(m05.MIN_LR)
    after = lrs[m05.WARMUP - 1 :]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))  # never rises after the warm-up


def test_unigram_loss_is_the_entropy_of_the_smoothed_frequencies():
    train = np.array([0, 0, 0, 1])  # counts + 1: [4, 2, 1] of 7
    val = np.array([0, 2])
    expected = -(np.log(4 / 7) + np.log(1 / 7)) / 2
    assert m05.unigram_loss(train, val, 3) == pytest.approx(expected)


def naive_sliding_loss(model, ids, context):
    """Every target k (1..n-1) scored by the first window [s, s + context) reaching it, one at a time."""
    from tinytorch.core.autograd import no_grad
    from tinytorch.core.tensor import Tensor

    half = context // 2
    n_targets = len(ids) - 1
    starts = list(range(0, n_targets - context + 1, half))
    if starts[-1] != n_targets - context:
        starts.append(n_targets - context)
    total = 0.0
    model.eval()
    with no_grad():
        for k in range(1, len(ids)):
            s = next(s for s in starts if s + context >= k)
            j = k - 1 - s  # position of the input that predicts ids[k]
            assert s == 0 or j >= half  # every later window predicts from >= half a context
            logits = np.asarray(model(Tensor(ids[None, s : s + context])).data[0, j], dtype=np.float64)
            total -= logits[ids[k]] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    model.train()
    return total / n_targets


@pytest.mark.parametrize("length", [50, 57, 33])
def test_validation_loss_matches_a_naive_loop(require_tier, length):
    require_tier("architecture")
    from tinytorch.models.transformer import GPT

    np.random.seed(3)
    model = GPT(11, 16, num_layers=1, num_heads=2, max_seq_len=8)
    ids = np.random.default_rng(0).integers(0, 11, size=length)
    got = m05.validation_loss(model, ids, context=8, batch_size=3)  # several batches
    assert got == pytest.approx(naive_sliding_loss(model, ids, 8), rel=1e-5)
    assert model.training  # back in training mode


def test_validation_sample_is_the_first_half_of_every_held_out_block():
    text = "".join(chr(97 + i % 26) * 7 for i in range(300))  # 2,100 characters: blocks of 21
    train, val = m05.split_corpus(text)
    block = m05.block_size(len(text))
    assert block == 21 and len(val) == 10 * 21  # every 10th of the 100 blocks
    ids = np.frombuffer(val.encode(), dtype=np.uint8)
    sample = m05.validation_sample(ids, block)
    expected = [ids[b * block + k] for b in range(10) for k in range(block // 2)]  # one at a time
    np.testing.assert_array_equal(sample, expected)


def test_validation_loss_refuses_a_text_shorter_than_the_context(require_tier):
    require_tier("architecture")
    from tinytorch.models.transformer import GPT

    model = GPT(5, 8, num_layers=1, num_heads=2, max_seq_len=8)
    with pytest.raises(ValueError, match="need more than 8 tokens"):
        m05.validation_loss(model, np.arange(5) % 5, context=8)


def test_sample_text_batches_prompts_of_equal_length_and_keeps_their_order(require_tier):
    require_tier("architecture")
    from tinytorch.models.transformer import GPT
    from tinytorch.text.tokenization import CharTokenizer

    tok = CharTokenizer(["abcdefgh .\n"])
    np.random.seed(1)
    model = GPT(tok.vocab_size, 16, num_layers=1, num_heads=2, max_seq_len=32)
    prompts = ["ab.\n", "a\n", "ce.\n", "h"]  # lengths 4, 2, 4, 1: three batches
    together = m05.sample_text(model, tok, prompts, 12, temperature=0.0, seed=0)
    alone = [m05.sample_text(model, tok, [p], 12, temperature=0.0, seed=0)[0] for p in prompts]
    assert together == alone and all(len(s) == 12 for s in together)
    assert m05.PROMPTS[0] == "romeo.\n" and len({len(p) for p in m05.PROMPTS}) == 1  # one batch in 05.2


def test_pooled_real_words_weights_samples_by_their_words():
    vocab = {"the", "cat"}
    assert m05.pooled_real_words(["the cat sat.", "dog."], vocab) == (2 / 4, 4)
    assert m05.pooled_real_words(["", "..."], vocab) == (0.0, 0)
