"""Milestone 01 (1958): Rosenblatt's perceptron, on TinyTorch's Tensor, Linear and autograd."""

from __future__ import annotations

import numpy as np
from tinytorch.milestones._common import pct
from tinytorch.milestones.runner import Milestone, Outcome, Part


def separable_points(n: int, rng: np.random.Generator, margin: float = 0.1):
    """2-D points in [-1, 1]^2 labelled by which side of a fixed line they fall, with a gap around it.

    The line is 0.8 x1 - 0.6 x2 + 0.1 = 0 (unit normal); points closer than ``margin``
    are resampled, so a perfect linear separator exists. Returns (x float32 (n, 2), y int64 (n,)).
    """
    w, b = np.array([0.8, -0.6]), 0.1
    x = np.empty((0, 2))
    while len(x) < n:
        cand = rng.uniform(-1, 1, size=(2 * n, 2))
        x = np.concatenate([x, cand[np.abs(cand @ w + b) > margin]])
    x = x[:n]
    return x.astype(np.float32), (x @ w + b > 0).astype(np.int64)


def part1_forward(ctx) -> Outcome:
    from tinytorch.core.layers import Linear
    from tinytorch.core.tensor import Tensor

    np.random.seed(ctx.seed)  # Linear draws its initial weights from NumPy's global generator
    perceptron = Linear(2, 1)
    w = np.asarray(perceptron.weight.data, dtype=np.float64)  # (1, 2): (out_features, in_features)
    b = np.asarray(perceptron.bias.data, dtype=np.float64)  # (1,)
    ctx.say(
        "    An untrained perceptron: y = step(x . w + b), weights drawn at random.",
        f"    w = [{w[0, 0]:+.3f}, {w[0, 1]:+.3f}]   b = {b[0]:+.3f}",
        "",
    )
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-0.5, 0.7]], dtype=np.float32)
    z = perceptron(Tensor(x)).data  # (5, 1): TinyTorch's forward pass
    by_hand = x.astype(np.float64) @ w.T + b  # the same sum computed directly, as the oracle
    ctx.say("       x1     x2  |  x.w + b  (TinyTorch)  x.w + b  (by hand)  ->  step")
    for (x1, x2), zi, hi in zip(x, z[:, 0], by_hand[:, 0]):
        ctx.say(f"    {x1:+5.2f}  {x2:+5.2f}  |  {zi:+19.4f}  {hi:+17.4f}  ->  {int(zi > 0)}")
    error = float(np.max(np.abs(z - by_hand)))
    shape_ok = tuple(z.shape) == (len(x), 1)
    # Untrained, it is a coin toss on the linearly separable task of part 2.
    rng = np.random.default_rng(ctx.seed + 1)
    x_test, y_test = separable_points(500, rng)
    untrained = float(((perceptron(Tensor(x_test)).data[:, 0] > 0).astype(np.int64) == y_test).mean())
    ctx.say("", f"    before any training it classifies {pct(untrained)} of part 2's test points correctly")
    return Outcome(
        passed=shape_ok and error < 1e-5,
        measured=f"shape {tuple(z.shape)}, max |TinyTorch - by hand| = {error:.1e}",
        metrics={"max_abs_error": error, "output_shape": list(z.shape), "untrained_test_accuracy": untrained},
    )


def part2_train(ctx) -> Outcome:
    from tinytorch.core.layers import Linear
    from tinytorch.core.losses import BCEWithLogitsLoss
    from tinytorch.core.optimizers import SGD
    from tinytorch.core.tensor import Tensor

    np.random.seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    x_train, y_train = separable_points(400, rng)
    x_test, y_test = separable_points(400, rng)  # held out: drawn independently, never trained on
    perceptron = Linear(2, 1)
    loss_fn = BCEWithLogitsLoss()
    optimizer = SGD(perceptron.parameters(), lr=0.5, momentum=0.9)
    ctx.say(
        f"    data: {len(x_train)} training and {len(x_test)} held-out test points,"
        " two classes split by a line",
        "    model: Linear(2 -> 1), trained with BCE-with-logits and SGD (momentum 0.9)",
    )
    targets = Tensor(y_train[:, None].astype(np.float32))
    for _ in ctx.progress(range(150), desc="training"):
        loss = loss_fn(perceptron(Tensor(x_train)), targets)  # full-batch gradient descent
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.curve("training loss", loss.item())
    test_acc = float(((perceptron(Tensor(x_test)).data[:, 0] > 0).astype(np.int64) == y_test).mean())
    w = perceptron.weight.data[0]
    b = float(perceptron.bias.data[0])
    ctx.say(
        f"    learned boundary: {w[0]:+.2f} x1 {w[1]:+.2f} x2 {b:+.2f} = 0"
        "   (true: 0.8 x1 - 0.6 x2 + 0.1 = 0)"
    )
    return Outcome(
        passed=test_acc >= 0.99,
        measured=f"test accuracy {pct(test_acc)} (final loss {loss.item():.3f})",
        metrics={"test_accuracy": test_acc, "final_loss": float(loss.item())},
    )


MILESTONE = Milestone(
    id="01",
    year=1958,
    title="The Perceptron",
    tiers=("foundation",),
    history="""
Frank Rosenblatt's perceptron (1958) was the first machine that learned its own weights from examples:
a weighted sum of the inputs, a threshold, and a rule that nudges the weights after each mistake.

It was built as hardware at Cornell, fed 20x20 photocell images, and promised a great deal. Its limits
came later (milestone 02); what stayed is the unit itself, which is one output of every Linear layer.
""",
    architecture="""
x (2) --> Linear(2 -> 1) --> z = x . w + b --> step(z) / sigmoid(z) --> class 0 or 1
""",
    proves="Tensor arithmetic, Linear's forward pass, BCE-with-logits, autograd and SGD work together: "
    "a linear unit finds a separating line from data and classifies unseen points.",
    parts=(
        Part(
            1,
            "Forward pass of an untrained perceptron",
            "TinyTorch's x.w + b equals the sum computed by hand (error < 1e-5)",
            part1_forward,
        ),
        Part(2, "Perceptron trained on linearly separable 2-D data", "test accuracy >= 99%", part2_train),
    ),
)
