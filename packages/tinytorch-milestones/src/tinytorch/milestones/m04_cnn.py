"""Milestone 04 (1998): LeCun's convolutional networks, on TinyTorch's Conv2d, MaxPool2d and DataLoader."""

from __future__ import annotations

import numpy as np
from tinytorch.milestones._common import accuracy_outcome, fit, load_dataset, summary_lines
from tinytorch.milestones.runner import Milestone, Outcome, Part


def build_cnn(in_channels: int, widths: tuple[int, int], image_size: int, hidden: int, classes: int = 10):
    """Two conv(3x3, same padding) -> ReLU -> maxpool(2) stages, then an MLP head."""
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d

    c1, c2 = widths
    flat = c2 * (image_size // 4) ** 2  # two 2x2 pools quarter each side
    return Sequential(
        Conv2d(in_channels, c1, 3, padding=1),
        ReLU(),
        MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(flat, hidden),
        ReLU(),
        Linear(hidden, classes),
    )


def train_with_loader(
    ctx, model, x_train, y_train, *, epochs: int, lr: float, batch_size: int, transform=None
):
    """Mini-batch training through the architecture tier's DataLoader; returns per-epoch mean losses."""
    from tinytorch.data.loader import DataLoader, TensorDataset

    loader = DataLoader(
        TensorDataset(x_train, y_train),  # arrays: batches are gathered without copying the whole set
        batch_size=batch_size,
        shuffle=True,
        seed=ctx.seed,
        transform=transform,
    )
    return fit(ctx, model, lambda: loader, epochs=epochs, lr=lr, desc="training")


def part1_tinydigits(ctx) -> Outcome:
    digits = load_dataset(ctx, "tinydigits")
    x_train = digits["x_train"][:, None].astype(np.float32)  # (N, 1, 8, 8): one input channel
    x_test = digits["x_test"][:, None].astype(np.float32)
    np.random.seed(ctx.seed)
    model = build_cnn(1, (32, 64), 8, 64)
    ctx.say(
        f"    TinyDigits: {len(x_train)} training and {len(x_test)} held-out test images, 1x8x8",
        *summary_lines(model, "(batch, 1, 8, 8)"),
    )
    history = train_with_loader(ctx, model, x_train, digits["y_train"], epochs=20, lr=1e-2, batch_size=64)
    return accuracy_outcome(model, x_test, digits["y_test"], 0.97, history)


def part2_cifar10(ctx) -> Outcome:
    from tinytorch.data.loader import Compose, RandomCrop, RandomHorizontalFlip

    cifar = load_dataset(ctx, "cifar10")
    # (N, 3, 32, 32) float32; normalised in place (50,000 images are 600 MB: no extra copies)
    x_train = np.require(cifar["x_train"], dtype=np.float32, requirements="W")  # copies only if needed
    x_test = np.require(cifar["x_test"], dtype=np.float32, requirements="W")
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)  # per-channel statistics of the training set only
    std = x_train.std(axis=(0, 2, 3), keepdims=True)
    for x in (x_train, x_test):
        x -= mean
        x /= std
    np.random.seed(ctx.seed)
    model = build_cnn(3, (32, 64), 32, 128)
    ctx.say(
        f"    CIFAR-10: {len(x_train)} training and {len(x_test)} test colour images, 3x32x32",
        "    (15 epochs with random crops and flips: roughly 20 minutes on 2 CPU cores)",
        *summary_lines(model, "(batch, 3, 32, 32)"),
    )
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(0.5)])
    history = train_with_loader(
        ctx, model, x_train, cifar["y_train"], epochs=15, lr=2e-3, batch_size=64, transform=augment
    )
    return accuracy_outcome(model, x_test, cifar["y_test"], 0.70, history)


MILESTONE = Milestone(
    id="04",
    year=1998,
    title="The CNN revolution",
    tiers=("foundation", "architecture"),
    history="""
Yann LeCun's LeNet-5 (1998) read the digits on bank cheques with convolutions: small filters slid over
the image, shared across positions, followed by pooling that keeps the strongest responses.

Sharing weights over space builds in what images have, that a stroke means the same wherever it is.
The same idea, scaled up on GPUs, won ImageNet in 2012 and started the deep-learning decade.
""",
    architecture="""
image (C, H, W)
  -> Conv2d(C, 32, 3x3, pad 1) -> ReLU -> MaxPool2d(2)      (32, H/2, W/2)
  -> Conv2d(32, 64, 3x3, pad 1) -> ReLU -> MaxPool2d(2)     (64, H/4, W/4)
  -> Flatten -> Linear(64*H*W/16, hidden) -> ReLU -> Linear(hidden, 10)
TinyDigits: C=1, 8x8, hidden 64.  CIFAR-10: C=3, 32x32, hidden 128, random crop + flip.
""",
    proves="Convolution and pooling (im2col forward and backward) and the DataLoader train a CNN that beats "
    "the MLP of milestone 03 on the same held-out digits.",
    parts=(
        Part(1, "LeNet-style CNN on TinyDigits", "test accuracy >= 97%", part1_tinydigits),
        Part(2, "CNN on CIFAR-10 (download)", "test accuracy >= 70%", part2_cifar10, download=True),
    ),
)
