"""``tito capstone train | generate``: tiny models, a few steps each (no wall-clock assertion).

Checked: a run writes a checkpoint, curves (PNG + JSON) and a report; a run
stopped by Ctrl-C and resumed ends exactly where an uninterrupted run ends;
resuming continues the step count; generation options; every bad input gets
one line on stderr, no traceback, a nonzero exit.
"""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest

TINY = ["--corpus", "tinytorch", "--embed-dim", "16", "--layers", "1", "--heads", "2", "--context", "16",
        "--batch-size", "4", "--no-progress"]


@pytest.fixture(autouse=True)
def tiers_needed(require_tier):
    for tier in ("architecture", "optimization"):
        require_tier(tier)


def tito(*argv):
    """The exit code of ``tito ARGV`` (argparse's usage errors exit through SystemExit)."""
    from tinytorch.milestones.cli import main

    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code


def train(tmp_path, *extra, checkpoint="ck.npz"):
    return tito("capstone", "train", "--checkpoint", str(tmp_path / checkpoint), *TINY, *extra)


def load(path):
    from tinytorch.applications.tinygpt import TinyGPT

    return TinyGPT.load(path)


def one_error_line(capsys, *needles):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_train_writes_checkpoint_curves_and_report(tmp_path, capsys):
    png = tmp_path / "curves" / "run.png"
    assert train(tmp_path, "--steps", "4", "--eval-every", "0", "--plot", str(png)) == 0
    out = capsys.readouterr().out
    assert "tokenizer: char" in out and "1.00 characters per token" in out
    assert "step 4 after" in out and "nats/char" in out and "unigram baseline" in out
    assert out.count("8 samples, ") == 2 and "occur in the corpus" in out
    gpt = load(tmp_path / "ck.npz")
    assert gpt.step == 4 and gpt.tokenizer_kind == "char"
    curve = json.loads(png.with_suffix(".json").read_text())
    assert [p["step"] for p in curve["history"]] == [1, 2, 3, 4]  # --eval-every 0: a point per step
    final = curve["final"]
    assert final["step"] == 4 and math.isfinite(final["val_nats_per_char"])
    assert 0 <= final["real_words_greedy"] <= 1 and 0 <= final["real_words_t08"] <= 1
    # The project's corpus has no speaker lines: the samples start from a newline.
    assert final["sample_t08"].startswith("\n") and len(final["sample_t08"]) == 1 + 500
    if png.exists():  # matplotlib installed
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_so_and_writes_the_numbers(tmp_path, capsys, monkeypatch):
    from tinytorch.milestones import runner

    monkeypatch.setattr(runner, "matplotlib_available", lambda: False)
    png = tmp_path / "run.png"
    assert train(tmp_path, "--steps", "2", "--plot", str(png)) == 0
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out and str(png.with_suffix(".json")) in out
    assert not png.exists() and png.with_suffix(".json").exists()


def test_resume_continues_the_step_count_and_stops_at_the_budget(tmp_path, capsys):
    assert train(tmp_path, "--steps", "3") == 0
    assert train(tmp_path, "--steps", "5") == 0
    out = capsys.readouterr().out
    assert "resumed at step 3" in out
    gpt = load(tmp_path / "ck.npz")
    assert gpt.step == 5 and len(gpt.losses) == 5
    assert train(tmp_path, "--steps", "5") == 0  # budget used: nothing to train, report again
    assert "nothing to train" in capsys.readouterr().out
    assert load(tmp_path / "ck.npz").step == 5
    assert train(tmp_path, "--steps", "2", "--fresh") == 0
    assert load(tmp_path / "ck.npz").step == 2


def test_ctrl_c_saves_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path, capsys, monkeypatch):
    from tinytorch.applications.tinygpt import TinyGPT

    assert train(tmp_path, "--steps", "6", checkpoint="straight.npz") == 0
    real_step = TinyGPT.train_step

    def step_then_ctrl_c(self, *args, **kwargs):
        loss = real_step(self, *args, **kwargs)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as a user pressing Ctrl-C during the step
        return loss

    monkeypatch.setattr(TinyGPT, "train_step", step_then_ctrl_c)
    assert train(tmp_path, "--steps", "6", checkpoint="stopped.npz") == 130
    assert "interrupted at step 3" in capsys.readouterr().err
    assert load(tmp_path / "stopped.npz").step == 3  # the step finished; the checkpoint is consistent
    monkeypatch.setattr(TinyGPT, "train_step", real_step)
    assert train(tmp_path, "--steps", "6", checkpoint="stopped.npz") == 0
    straight, resumed = load(tmp_path / "straight.npz"), load(tmp_path / "stopped.npz")
    assert resumed.step == 6 and resumed.losses == straight.losses
    for (name, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert resumed.optimizer.state_dict()["step_count"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_cpu_clock_budget(tmp_path, capsys):
    assert train(tmp_path, "--minutes", "0.002", "--clock", "cpu", "--eval-every", "0") == 0
    out = capsys.readouterr().out
    assert "budget: 0.002 min of CPU time" in out and "CPU min" in out
    gpt = load(tmp_path / "ck.npz")
    assert gpt.step >= 1 and gpt.extra["trained_seconds"] >= 0.12  # stopped by CPU time, not steps
    assert gpt.extra["wall_seconds"] >= gpt.extra["trained_seconds"] * 0.5
    assert train(tmp_path, "--minutes", "0.004", "--clock", "wall") == 1  # the other clock is refused
    one_error_line(capsys, "--clock wall (checkpoint: cpu)")


def test_bpe_tokenizer_reports_its_compression(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2", "--tokenizer", "bpe", "--bpe-vocab", "300") == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "tokenizer: bpe" in line)
    ratio = float(line.split(",")[-1].split()[0])
    assert 1.2 < ratio < 4.0  # 44 merges of common English pairs
    gpt = load(tmp_path / "ck.npz")
    assert gpt.tokenizer_kind == "bpe" and gpt.tokenizer.vocab_size == 300
    assert gpt.extra["chars_per_token"] == pytest.approx(ratio, abs=0.005)


def test_lowercase_shakespeare(tmp_path, capsys):
    argv = ["--corpus", "shakespeare", "--lowercase", "--steps", "1"]
    assert tito("capstone", "train", "--checkpoint", str(tmp_path / "ck.npz"), *TINY[2:], *argv) == 0
    out = capsys.readouterr().out
    assert "after 'romeo.\\n', 'nurse.\\n'" in out  # milestone 05's speaker lines, lowercased
    gpt = load(tmp_path / "ck.npz")
    assert not any(c.isupper() for c in gpt.tokenizer.id_to_char[1:])
    assert gpt.extra["options"]["lowercase"] is True
    ck = str(tmp_path / "ck.npz")
    assert tito("capstone", "train", "--checkpoint", ck, "--steps", "2", "--no-lowercase") == 1
    one_error_line(capsys, "--lowercase False (checkpoint: True)")


def test_generate_options(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2") == 0
    capsys.readouterr()
    ck = str(tmp_path / "ck.npz")

    def generate(*extra):
        assert tito("capstone", "generate", "--checkpoint", ck, "--prompt", "the ", *extra) == 0
        return capsys.readouterr().out.rstrip("\n")

    greedy = generate("--temperature", "0", "--length", "40")
    assert greedy.startswith("the ") and len(greedy) == 44
    assert generate("--temperature", "0", "--length", "40") == greedy
    assert generate("--top-k", "1", "--temperature", "1.5", "--length", "40") == greedy  # top-1 is greedy
    a = generate("--seed", "1", "--length", "60")
    assert a == generate("--seed", "1", "--length", "60")
    assert len({a, generate("--seed", "2", "--length", "60"), generate("--seed", "3", "--length", "60")}) > 1


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--minutes", "-1"], ["--minutes must be a number > 0, got -1"]),
        (["--minutes", "nan"], ["--minutes must be a number > 0, got nan"]),
        (["--minutes", "abc"], ["argument --minutes: invalid float value: 'abc'"]),
        (["--minutes", "0"], ["--minutes must be a number > 0"]),
        (["--steps", "0"], ["--steps must be an integer > 0"]),
        ([], ["give a budget"]),
        (["--steps", "2", "--lr", "inf"], ["--lr must be a number > 0, got inf"]),
        (["--steps", "2", "--embed-dim", "18", "--heads", "4"], ["--embed-dim 18 must be divisible by"]),
        (["--steps", "2", "--corpus", "no/such/file.txt"], ["neither a shipped corpus"]),
        (["--steps", "2", "--bpe-vocab", "100"], ["--bpe-vocab must be > 256"]),
        (["--steps", "2", "--plot", "curves.pdf"], ["expected a .png"]),
        (["--steps", "2", "--checkpoint", "no/such/dir/ck.npz"], ["does not exist"]),
        (["--steps", "2", "--checkpoint", "."], ["is a directory"]),
    ],
)
def test_bad_train_arguments_get_one_line(tmp_path, capsys, argv, needles):
    code = tito("capstone", "train", "--checkpoint", str(tmp_path / "ck.npz"), "--no-progress", *argv)
    assert code != 0
    one_error_line(capsys, *needles)
    assert not (tmp_path / "ck.npz").exists()


def test_bad_checkpoints_and_prompts_get_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    assert tito("capstone", "generate", "--checkpoint", missing, "--prompt", "to be") == 1
    one_error_line(capsys, "no checkpoint at", "tito capstone train --minutes")

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is no checkpoint")
    assert tito("capstone", "generate", "--checkpoint", str(corrupt), "--prompt", "to be") == 1
    one_error_line(capsys, "not a readable TinyGPT checkpoint")
    assert tito("capstone", "train", "--checkpoint", str(corrupt), "--steps", "1", *TINY[:2]) == 1
    one_error_line(capsys, "not a readable TinyGPT checkpoint")
    assert corrupt.read_bytes() == b"PK\x03\x04 this is no checkpoint"  # never overwritten silently

    assert train(tmp_path, "--steps", "1") == 0
    capsys.readouterr()
    ck = str(tmp_path / "ck.npz")
    # The project's corpus is lowercase: capitals are not in the character vocabulary.
    assert tito("capstone", "generate", "--checkpoint", ck, "--prompt", "To BE") == 1
    one_error_line(capsys, "--prompt", "not in the vocabulary: 'BET'")
    for flag, value, needle in [("--temperature", "-1", "--temperature must be a number >= 0"),
                                ("--top-k", "0", "--top-k must be an integer > 0"),
                                ("--length", "0", "--length must be an integer > 0")]:
        assert tito("capstone", "generate", "--checkpoint", ck, "--prompt", "to", flag, value) != 0
        one_error_line(capsys, needle)
    assert tito("capstone", "generate", "--checkpoint", ck, "--prompt", "") != 0
    one_error_line(capsys, "--prompt must not be empty")

    # Resuming with other model options, or on another corpus, is refused (use --fresh).
    assert tito("capstone", "train", "--checkpoint", ck, "--steps", "2", "--layers", "2") == 1
    one_error_line(capsys, "--layers 2 (checkpoint: 1)", "--fresh")
    assert tito("capstone", "train", "--checkpoint", ck, "--steps", "2", "--corpus", "shakespeare") == 1
    one_error_line(capsys, "--corpus shakespeare (checkpoint: tinytorch)")
    assert load(ck).step == 1
