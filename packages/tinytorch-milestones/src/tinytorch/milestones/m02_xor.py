"""Milestone 02 (1969): the XOR crisis, and the hidden layer that resolves it."""

from __future__ import annotations

import numpy as np
from tinytorch.milestones._common import pct
from tinytorch.milestones.runner import Milestone, Outcome, Part

TRUTH_TABLE = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR = np.array([0, 1, 1, 0], dtype=np.int64)


def xor_clouds(n: int, rng: np.random.Generator, noise: float = 0.1):
    """n points scattered (Gaussian, std ``noise``) around the four corners, labelled by XOR of the corner."""
    corner = rng.integers(0, 4, size=n)
    x = TRUTH_TABLE[corner] + rng.normal(0.0, noise, size=(n, 2))
    return x.astype(np.float32), XOR[corner]


def _train_binary(ctx, model, x, y, *, steps: int, lr: float, desc: str):
    from tinytorch.core.losses import BCEWithLogitsLoss
    from tinytorch.core.optimizers import Adam
    from tinytorch.core.tensor import Tensor

    loss_fn = BCEWithLogitsLoss()
    optimizer = Adam(model.parameters(), lr=lr)
    targets = Tensor(y[:, None].astype(np.float32))
    bar = ctx.progress(range(steps), desc=desc)
    for _ in bar:
        loss = loss_fn(model(Tensor(x)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.curve("training loss", loss.item())
    return float(loss.item())


def _evaluate(ctx, model, x_test, y_test):
    from tinytorch.core.tensor import Tensor

    test_acc = float(((model(Tensor(x_test)).data[:, 0] > 0).astype(np.int64) == y_test).mean())
    table = (model(Tensor(TRUTH_TABLE)).data[:, 0] > 0).astype(np.int64)
    ctx.say("    x1 x2 | XOR | predicted")
    for (a, b), t, p in zip(TRUTH_TABLE.astype(int), XOR, table):
        ctx.say(f"     {a}  {b} |  {t}  |  {p}{'' if p == t else '   <- wrong'}")
    return test_acc, float((table == XOR).mean())


def part1_single_layer(ctx) -> Outcome:
    from tinytorch.core.layers import Linear

    np.random.seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    x_train, y_train = xor_clouds(400, rng)
    x_test, y_test = xor_clouds(400, rng)
    model = Linear(2, 1)
    ctx.say("    model: Linear(2 -> 1), a single perceptron; data: noisy copies of the XOR truth table")
    loss = _train_binary(ctx, model, x_train, y_train, steps=300, lr=0.05, desc="training")
    test_acc, table_acc = _evaluate(ctx, model, x_test, y_test)
    ctx.say(
        "    No straight line puts (0,1) and (1,0) on one side and (0,0) and (1,1) on the other:",
        "    at best three corners of four (75%) are right; gradient descent settles near an undecided 50%.",
    )
    return Outcome(
        passed=test_acc <= 0.75,
        measured=f"test accuracy {pct(test_acc)}, truth table {pct(table_acc)} (loss {loss:.3f})",
        metrics={"test_accuracy": test_acc, "truth_table_accuracy": table_acc, "final_loss": loss},
    )


def part2_mlp(ctx) -> Outcome:
    from tinytorch.core.activations import Tanh
    from tinytorch.core.layers import Linear, Sequential

    np.random.seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    x_train, y_train = xor_clouds(400, rng)
    x_test, y_test = xor_clouds(400, rng)
    model = Sequential(Linear(2, 8), Tanh(), Linear(8, 1))
    ctx.say(
        "    model: Linear(2 -> 8) -> Tanh -> Linear(8 -> 1): one hidden layer, trained by backpropagation"
    )
    loss = _train_binary(ctx, model, x_train, y_train, steps=300, lr=0.05, desc="training")
    test_acc, table_acc = _evaluate(ctx, model, x_test, y_test)
    ctx.say("    The hidden units bend the input space so one line separates the classes after all.")
    return Outcome(
        passed=test_acc == 1.0 and table_acc == 1.0,
        measured=f"test accuracy {pct(test_acc)}, truth table {pct(table_acc)} (loss {loss:.3f})",
        metrics={"test_accuracy": test_acc, "truth_table_accuracy": table_acc, "final_loss": loss},
    )


MILESTONE = Milestone(
    id="02",
    year=1969,
    title="The XOR crisis",
    tiers=("foundation",),
    history="""
In 1969 Marvin Minsky and Seymour Papert's book "Perceptrons" proved what a single layer cannot compute:
exclusive-or is the smallest example, because its two classes are not linearly separable.

Funding and interest in neural networks dried up for more than a decade. Hidden layers were known to
escape the limit, but nobody had a practical way to train them; that came with backpropagation (03).
""",
    architecture="""
part 1: x (2) --> Linear(2 -> 1) --> logit
part 2: x (2) --> Linear(2 -> 8) --> Tanh --> Linear(8 -> 1) --> logit
""",
    proves="Autograd carries gradients through a hidden layer and a non-linearity: the composite model "
    "solves what no single layer can, measured on held-out noisy XOR points and the exact truth table.",
    parts=(
        Part(
            1,
            "Single-layer perceptron on XOR",
            "test accuracy stays <= 75% (the limit of one layer)",
            part1_single_layer,
        ),
        Part(2, "Two-layer MLP on XOR", "test accuracy and truth table 100%", part2_mlp),
    ),
)
