"""The five benchmark workloads, each built three ways from one set of weights.

A workload's ``build`` returns a :class:`Built`: zero-argument callables that
each perform one timed unit of work (a training step returning its loss, or
one whole generation returning its tokens), plus a ``check`` comparing the
first results of the implementations. tinytorch and PyTorch are imported only
inside ``build``, so an absent tier or an absent torch never breaks the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tinytorch.milestones.bench import floors
from tinytorch.milestones.bench import params as P

GPT_SPEC = P.GPTSpec(vocab_size=65, embed_dim=128, num_layers=2, num_heads=4, max_seq_len=64)
PROMPT_TOKENS = 10


@dataclass
class Built:
    runners: dict  # implementation name -> callable doing one timed unit of work
    errors: dict = field(default_factory=dict)  # implementation -> why it is missing
    tokens: int | None = None  # generated tokens per call (generation workloads)
    prompt_tokens: int | None = None
    main_suffix: str = ""  # runner-name suffix of the headline time ("_cached" for generation)
    check: Callable[[dict], dict] = lambda first: {}
    # Seconds-long units of work (whole generations) get fewer rounds: one warm-up, three timed.
    long_running: bool = False


def _tinytorch(errors: dict, key: str, make: Callable):
    """Build a tinytorch runner; a student's unfinished module becomes a reported error, not a crash."""
    try:
        return make()
    except Exception as exc:  # NotImplementedError, ImportError, shape errors in a student build...
        errors[key] = f"{type(exc).__name__}: {exc}"
        return None


def _torch_available(with_torch: bool) -> bool:
    if not with_torch:
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _loss_check(first: dict) -> dict:
    """Same weights, same batch: the first-step losses must agree to float32 rounding."""
    losses = {k: float(v) for k, v in first.items() if v is not None}
    ref = losses.get("numpy")
    agree = None if ref is None else all(abs(v - ref) <= 1e-4 * max(1.0, abs(ref)) for v in losses.values())
    return {"first_loss": {k: round(v, 6) for k, v in losses.items()}, "agree": agree}


def _training(params: dict, floor, tt_make, torch_make, x, y, with_torch) -> Built:
    errors: dict = {}
    runners = {}
    tt = _tinytorch(errors, "tinytorch", lambda: tt_make(P.copy_params(params)))
    if tt is not None:
        runners["tinytorch"] = lambda: tt.step(x, y)
    runners["numpy"] = lambda: floor.step(x, y)
    if _torch_available(with_torch):
        runners["torch"] = torch_make()
    return Built(runners=runners, errors=errors, check=_loss_check)


def _torch_trainer(model, x, y, opt_name: str, lr: float, reshape=False):
    import torch
    import torch.nn.functional as F

    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    opt = (torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(xt)
        if reshape:
            logits = logits.reshape(-1, logits.shape[-1])
        loss = F.cross_entropy(logits, yt.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    return step


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def mlp_batch(batch=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)


def image_batch(spec: P.ConvNetSpec, batch=32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *spec.in_shape), dtype=np.float32), rng.integers(
        0, spec.classes, batch
    )


def text_batch(spec: P.GPTSpec, batch=16, seed=1):
    """Random token sequences; targets are the inputs shifted by one (next-token prediction)."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, spec.vocab_size, (batch, spec.max_seq_len + 1))
    return seq[:, :-1].copy(), seq[:, 1:].copy()


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------

LR = 0.01


def build_mlp(quick: bool, with_torch: bool, tokens: int) -> Built:
    params = P.mlp_params()
    x, y = mlp_batch()

    def tt_make(p):
        from tinytorch.milestones.bench import tt_models

        return tt_models.MLP(p, lr=LR)

    def torch_make():
        from tinytorch.milestones.bench import torch_models

        return _torch_trainer(torch_models.mlp(params), x, y, "sgd", LR)

    return _training(
        params, floors.MLPFloor(P.copy_params(params), lr=LR), tt_make, torch_make, x, y, with_torch
    )


def _build_convnet(spec: P.ConvNetSpec):
    def build(quick: bool, with_torch: bool, tokens: int) -> Built:
        params = P.convnet_params(spec)
        x, y = image_batch(spec)

        def tt_make(p):
            from tinytorch.milestones.bench import tt_models

            return tt_models.ConvNet(p, spec, lr=LR)

        def torch_make():
            from tinytorch.milestones.bench import torch_models

            return _torch_trainer(torch_models.convnet(params, spec.paddings), x, y, "sgd", LR)

        floor = floors.ConvNetFloor(P.copy_params(params), spec.paddings, lr=LR)
        return _training(params, floor, tt_make, torch_make, x, y, with_torch)

    return build


def build_gpt(quick: bool, with_torch: bool, tokens: int) -> Built:
    spec = GPT_SPEC
    params = P.gpt_params(spec)
    x, y = text_batch(spec)

    def tt_make(p):
        from tinytorch.milestones.bench import tt_models

        return tt_models.GPTTrainer(p, spec, lr=1e-3)

    def torch_make():
        from tinytorch.milestones.bench import torch_models

        model = torch_models.GPT(params, spec.num_layers, spec.num_heads)
        return _torch_trainer(model, x, y, "adam", 1e-3, reshape=True)

    floor = floors.GPTFloor(P.copy_params(params), spec.num_layers, spec.num_heads, lr=1e-3)
    return _training(params, floor, tt_make, torch_make, x, y, with_torch)


def build_generate(quick: bool, with_torch: bool, tokens: int) -> Built:
    """Greedy generation of ``tokens`` tokens after a 10-token prompt, batch 1, with and without KV cache."""
    spec = P.GPTSpec(
        vocab_size=GPT_SPEC.vocab_size,
        embed_dim=GPT_SPEC.embed_dim,
        num_layers=GPT_SPEC.num_layers,
        num_heads=GPT_SPEC.num_heads,
        max_seq_len=PROMPT_TOKENS + tokens,  # room for the whole generation: no context cropping
    )
    params = P.gpt_params(spec)
    prompt = np.random.default_rng(2).integers(0, spec.vocab_size, (1, PROMPT_TOKENS))
    errors: dict = {}
    runners = {}

    def tt_make():
        from tinytorch.milestones.bench import tt_models

        return tt_models.GPTGenerator(P.copy_params(params), spec)

    tt = _tinytorch(errors, "tinytorch", tt_make)
    if tt is not None:
        runners["tinytorch_cached"] = lambda: tt.generate(prompt, tokens, use_cache=True)
        runners["tinytorch_uncached"] = lambda: tt.generate(prompt, tokens, use_cache=False)
    floor = floors.GPTFloor(P.copy_params(params), spec.num_layers, spec.num_heads)
    runners["numpy_cached"] = lambda: floor.generate(prompt, tokens, use_cache=True)
    runners["numpy_uncached"] = lambda: floor.generate(prompt, tokens, use_cache=False)
    if _torch_available(with_torch):
        import torch
        from tinytorch.milestones.bench import torch_models

        model = torch_models.GPT(params, spec.num_layers, spec.num_heads)
        tprompt = torch.from_numpy(prompt)
        runners["torch_cached"] = lambda: model.generate(tprompt, tokens, use_cache=True).numpy()
        runners["torch_uncached"] = lambda: model.generate(tprompt, tokens, use_cache=False).numpy()

    def check(first: dict) -> dict:
        ref = np.asarray(first["numpy_cached"])[0]
        prefix = {}
        for name, out in first.items():
            out = np.asarray(out)[0]
            n = min(len(out), len(ref))
            diff = np.nonzero(out[:n] != ref[:n])[0]
            prefix[name] = int(diff[0]) if len(diff) else int(n)
        # Greedy decoding of identical weights: the first generated tokens must match exactly
        # (far into the sequence a near-tie in the logits may legitimately flip under float32).
        need = PROMPT_TOKENS + min(16, tokens)
        return {"matching_prefix": prefix, "agree": all(v >= need for v in prefix.values())}

    return Built(
        runners=runners,
        errors=errors,
        tokens=tokens,
        prompt_tokens=PROMPT_TOKENS,
        main_suffix="_cached",
        check=check,
        long_running=True,
    )


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    tiers: tuple  # tinytorch tiers the tinytorch column needs
    build: Callable[..., Built]

    def missing_tiers(self) -> list:
        from tinytorch.milestones.tiers import is_installed

        return [t for t in self.tiers if not is_installed(t)]


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "mlp", "MLP 784-256-128-10 ReLU, batch 64, cross-entropy, SGD step", ("foundation",), build_mlp
        ),
        Workload(
            "lenet",
            "LeNet conv5(1->6) pool conv5(6->16) pool 256-120-84-10, batch 32 of 1x28x28, SGD step",
            ("foundation", "architecture"),
            _build_convnet(P.LENET),
        ),
        Workload(
            "cifar_cnn",
            "CNN conv3(3->32,pad 1) pool conv3(32->64,pad 1) pool 4096-128-10, batch 32 of 3x32x32, SGD step",
            ("foundation", "architecture"),
            _build_convnet(P.CIFAR_CNN),
        ),
        Workload(
            "gpt",
            "GPT vocab 65, d 128, 4 heads, 2 layers, seq 64, batch 16, Adam step",
            ("foundation", "architecture"),
            build_gpt,
        ),
        Workload(
            "generate_kv",
            "GPT generation, batch 1, 10-token prompt, greedy, with and without KV cache",
            ("foundation", "architecture", "optimization"),
            build_generate,
        ),
    )
}
