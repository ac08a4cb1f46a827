"""Milestone 03 (1986): backpropagation revives the multi-layer perceptron; digits recognised by an MLP."""

from __future__ import annotations

import numpy as np
from tinytorch.milestones._common import (
    accuracy,
    accuracy_outcome,
    load_dataset,
    pct,
    summary_lines,
    train_classifier,
)
from tinytorch.milestones.runner import Milestone, Outcome, Part


def build_mlp(in_features: int, hidden: tuple[int, ...], classes: int = 10):
    """Linear -> ReLU -> ... -> Linear, as a Sequential."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential

    layers, width = [], in_features
    for h in hidden:
        layers += [Linear(width, h), ReLU()]
        width = h
    layers.append(Linear(width, classes))
    return Sequential(*layers)


def digit_art(image: np.ndarray) -> list[str]:
    """An 8x8 image in [0, 1] as eight rows of text (two characters per pixel, darker = more ink)."""
    shades = " .:-=+*#%@"
    img = np.asarray(image).reshape(8, 8)
    return ["".join(shades[min(int(v * 9.99), 9)] * 2 for v in row) for row in img]


def train_tinydigits_mlp(ctx, epochs: int = 20):
    """The MLP of part 1, trained on TinyDigits' training split; returns (model, dataset, loss history)."""
    digits = load_dataset(ctx, "tinydigits")
    np.random.seed(ctx.seed)
    x_train = digits["x_train"].reshape(len(digits["x_train"]), -1).astype(np.float32)  # (N, 64)
    model = build_mlp(64, (128, 64))
    history = train_classifier(
        ctx, model, x_train, digits["y_train"], epochs=epochs, lr=1e-2, desc="training"
    )
    return model, digits, history


def part1_tinydigits(ctx) -> Outcome:
    digits = load_dataset(ctx, "tinydigits")
    n_train, n_test = len(digits["x_train"]), len(digits["x_test"])
    ctx.say(
        f"    TinyDigits: 8x8 handwritten digits, {n_train} for training, {n_test} held out for the test",
        "    a sample (label {}):".format(int(digits["y_train"][0])),
        *("      " + row for row in digit_art(digits["x_train"][0])),
    )
    np.random.seed(ctx.seed)
    ctx.say(*summary_lines(build_mlp(64, (128, 64)), "flattened image, 64 values"))
    model, digits, history = train_tinydigits_mlp(ctx)
    x_test = digits["x_test"].reshape(n_test, -1).astype(np.float32)
    test_acc = accuracy(model, x_test, digits["y_test"])
    train_acc = accuracy(model, digits["x_train"].reshape(n_train, -1).astype(np.float32), digits["y_train"])
    return Outcome(
        passed=test_acc >= 0.95,
        measured=f"test accuracy {pct(test_acc)} (train {pct(train_acc)}, final loss {history[-1]:.3f})",
        metrics={"test_accuracy": test_acc, "train_accuracy": train_acc, "final_loss": history[-1]},
    )


def part2_mnist(ctx) -> Outcome:
    mnist = load_dataset(ctx, "mnist")
    x_train = mnist["x_train"].reshape(len(mnist["x_train"]), -1).astype(np.float32)  # (60000, 784)
    x_test = mnist["x_test"].reshape(len(mnist["x_test"]), -1).astype(np.float32)
    # Centre the inputs with training statistics only (the test set stays unseen).
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    np.random.seed(ctx.seed)
    model = build_mlp(784, (256, 128))
    ctx.say(
        f"    MNIST: 28x28 digits, {len(x_train)} training and {len(x_test)} test images",
        *summary_lines(model, "flattened image, 784 values"),
    )
    history = train_classifier(
        ctx, model, x_train, mnist["y_train"], epochs=8, lr=2e-3, batch_size=128, desc="training"
    )
    return accuracy_outcome(model, x_test, mnist["y_test"], 0.97, history)


MILESTONE = Milestone(
    id="03",
    year=1986,
    title="Backpropagation and the MLP revival",
    tiers=("foundation",),
    history="""
In 1986 David Rumelhart, Geoffrey Hinton and Ronald Williams showed that backpropagation, the chain rule
applied layer by layer, trains networks with hidden layers that learn useful internal features.

Multi-layer perceptrons soon read handwritten zip codes and digits. The recipe has not changed since:
forward pass, loss, backward pass, gradient step, repeated over mini-batches.
""",
    architecture="""
part 1: image 8x8 -> flatten (64) -> Linear(64, 128) -> ReLU -> Linear(128, 64) -> ReLU -> Linear(64, 10)
part 2: image 28x28 -> flatten (784) -> Linear(784, 256) -> ReLU -> Linear(256, 128) -> ReLU
        -> Linear(128, 10)
cross-entropy loss, Adam with cosine learning-rate decay, mini-batches of 64 (128 on MNIST)
""",
    proves="The whole foundation tier (Tensor, activations, Linear, Sequential, cross-entropy, autograd, "
    "Adam) "
    "trains a real classifier that generalises to digits it never saw.",
    parts=(
        Part(1, "MLP on TinyDigits", "test accuracy >= 95%", part1_tinydigits),
        Part(2, "MLP on MNIST (download)", "test accuracy >= 97%", part2_mnist, download=True),
    ),
)
