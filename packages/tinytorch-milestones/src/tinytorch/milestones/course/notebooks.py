"""Student notebooks: every module of a release as a Jupyter lesson, generated from the reference source.

``tito course release --notebooks`` (``make_release(..., notebooks=True)``) writes, for each
module the release stubs, ``notebooks/NN_name.py`` (Jupytext percent format) and
``notebooks/NN_name.ipynb`` (nbformat 4.5 JSON, written here: no Jupyter package is needed
to make a release) from one list of cells:

1. the lesson: the module file's docstring as markdown (locked);
2. a setup cell (locked): ``%load_ext tinytorch_notebook``, the runtime shipped next to the
   notebooks (a copy of :mod:`tinytorch.milestones.course.notebook_sync`);
3. per function the student writes, in file order: a markdown cell naming it, its file and
   its class's docstring (locked), then the function itself as a solution cell whose first
   line, ``%%write_def IMPORT_PATH QUALNAME``, writes the cell into the package file the
   student installed (see notebook_sync for why and how). Students see the release's stub
   (``raise NotImplementedError("Module 02 (activations): implement ...")``);
   ``--with-solutions`` (the instructor's version) puts the reference there, its
   ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers kept for ``nbgrader generate_assignment``;
4. after a function, a check cell (autograded, locked) running the tests that need it:
   the module's tests are run once on the reference with a call tracer at release time;
   each test goes to the check cell of the *last* function of the notebook it calls, so a
   notebook run top to bottom runs each test as soon as everything it needs is written.
   A function no test needs on its own gets no check cell (its markdown says where it is
   checked); tests that call none of the module's functions (argument checks, given code)
   run in a last, ungraded check cell: they pass on the untouched release, so they earn
   nothing (``tito course grade`` grades them 0 too). Points: the module's visible points
   from the points file (``points.py``), split over the graded check cells by the tests' weights;
5. a systems cell measuring the module's own code live (time and peak memory against
   size, :func:`notebook_sync.measure`) and a reflection question (markdown).

nbgrader metadata (``schema_version`` 3): solution cells ``solution: true, grade: false``;
check cells ``grade: true, locked: true, points``; every other cell ``locked: true``
(with ``editable``/``deletable`` false). Cell ids and ``grade_id`` are stable names
(``m02-relufunction-forward``) so instructors can diff releases. nbgrader scores a check
cell in full when it runs without an error and shows no number (a number shown is taken as
partial credit: ``check`` returns None). ``nbgrader_course.py`` lays the instructor's
notebooks out as an nbgrader course directory (``tito course release --nbgrader``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.milestones.course import markers
from tinytorch.milestones.course.repo import import_path_of, module_for, tier_modules
from tinytorch.milestones.tiers import ModuleInfo

NOTEBOOK_DIR = "notebooks"
RUNTIME = "tinytorch_notebook.py"  # the copy of notebook_sync.py the notebooks import
NBGRADER_SCHEMA = 3
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class NotebookError(RuntimeError):
    """The notebooks could not be generated (the message says why)."""


@dataclass
class Function:
    """One function the student writes in a module's notebook."""

    import_path: str
    qualname: str
    first_line: int  # of its definition (decorators included) in the reference file: the tracer's key
    student: str = ""  # the release's code (stub), dedented
    solution: str = ""  # the reference code with this module's markers, dedented
    class_doc: str = ""  # the docstring of its class, for methods
    tests: list[str] = field(default_factory=list)  # node ids (release-relative) of its check cell
    checked_after: str = ""  # the first function whose check cell runs a test that calls this one

    @property
    def key(self) -> str:
        return f"{self.import_path}:{self.qualname}"

    @property
    def file(self) -> str:
        return "src/" + self.import_path.replace(".", "/") + ".py"


@dataclass
class Cell:
    kind: str  # "markdown" or "code"
    source: str
    id: str
    role: str  # lesson, setup, solution, check, ungraded-check, systems (nbgrader metadata follows from it)
    points: float = 0.0

    def metadata(self) -> dict:
        meta: dict = {}
        grade = self.role == "check"
        solution = self.role == "solution"
        locked = not solution
        if locked:
            meta.update(deletable=False, editable=False)
        nb = {"grade": grade, "grade_id": self.id, "locked": locked, "schema_version": NBGRADER_SCHEMA}
        nb["solution"] = solution
        nb["task"] = False
        if grade:
            nb["points"] = self.points
        meta["nbgrader"] = nb
        return meta


# --- text helpers ------------------------------------------------------------------------------

_ROLE_RE = re.compile(r":(?:class|func|meth|mod|attr|data|obj):`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    """Docstring reST as Markdown: ``code`` -> `code`, :class:`~a.B` -> `B`, ``::`` blocks fenced."""
    text = _ROLE_RE.sub(lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    text = text.replace("``", "`")
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            intro = line.rstrip()[:-2].rstrip()  # reST "text::" reads "text:"; a lone "::" vanishes
            if intro:
                out.append(intro + ":")
            block, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            code = textwrap.dedent("\n".join(block)).strip("\n")
            out += ["", "```python", code, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip() + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _def_node(tree: ast.Module, qualname: str):
    body, node = tree.body, None
    for name in qualname.split("."):
        found = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        found = [n for n in found if n.name == name]
        if not found:
            return None
        node = found[-1]
        body = node.body
    return node


def _def_source(source: str, qualname: str, keep: set[int] | None = None) -> tuple[str, int]:
    """The dedented definition of ``qualname`` in ``source`` and its first line (decorators included).

    Marker lines are dropped except those at the 1-based line numbers in ``keep``.
    """
    tree = ast.parse(source)
    node = _def_node(tree, qualname)
    if node is None:
        raise NotebookError(f"no definition of {qualname}")
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    last = max([node.end_lineno, *(keep or ())])  # an END marker closing the body follows its last statement
    lines = source.splitlines()
    picked = [
        line
        for number, line in enumerate(lines[first - 1 : last], start=first)
        if not markers.BEGIN_RE.match(line.strip())
        and line.strip() != markers.END
        or (keep and number in keep)
    ]
    return textwrap.dedent("\n".join(picked)).rstrip() + "\n", first


# --- which tests need which function: one traced run on the reference --------------------------

TRACE_PLUGIN = """
import json, os, sys, threading
TRACE = json.load(open(os.environ["TINYTORCH_NB_TRACE"]))
OUT = os.environ["TINYTORCH_NB_OUT"]
codes = {os.path.realpath(f): {int(k): v for k, v in lines.items()} for f, lines in TRACE.items()}
reached, results = set(), {}
by_name = {}  # co_filename -> its traced lines or None (realpath costs system calls: once per file)
def tracer(frame, event, arg):
    name = frame.f_code.co_filename
    lines = by_name.get(name, False)
    if lines is False:
        lines = by_name[name] = codes.get(os.path.realpath(name))
    if lines is not None:
        key = lines.get(frame.f_code.co_firstlineno)
        if key is not None:
            reached.add(key)
    return None
def pytest_runtest_protocol(item, nextitem):
    reached.clear()
    sys.settrace(tracer)
    threading.settrace(tracer)
def pytest_runtest_logreport(report):
    rec = results.setdefault(report.nodeid, {"outcome": "passed", "reach": []})
    if report.failed:
        rec["outcome"] = "failed"
    elif report.skipped and rec["outcome"] == "passed":
        rec["outcome"] = "skipped"
def pytest_runtest_logfinish(nodeid, location):
    sys.settrace(None)
    threading.settrace(None)
    results.setdefault(nodeid, {"outcome": "passed", "reach": []})["reach"] = sorted(reached)
def pytest_sessionfinish(session, exitstatus):
    with open(OUT, "w") as f:
        json.dump(results, f)
"""


def trace_tests(root: Path, tier: str, numbers: list[str], functions: list[Function], python=None) -> dict:
    """{nodeid: {"outcome", "reach": [function keys]}} for the tests of ``numbers``, run on the reference.

    Node ids are the repository's (``tests/foundation/test_02_activations.py::test_x``).
    """
    src = (root / "packages" / f"tinytorch-{tier}" / "src").resolve()
    files = sorted(str(p) for n in numbers for p in (root / "tests" / tier).glob(f"test_{n}_*.py"))
    if not files:
        return {}
    trace: dict[str, dict[str, str]] = {}
    for f in functions:
        path = str(src.joinpath(*f.import_path.split(".")).with_suffix(".py"))
        trace.setdefault(path, {})[str(f.first_line)] = f.key
    work = Path(tempfile.mkdtemp(prefix="tito-nb-trace-"))
    try:
        (work / "tinytorch_nb_trace.py").write_text(TRACE_PLUGIN, encoding="utf-8")
        # The tests skip a tier whose distribution is not installed (tests/conftest.py asks its metadata);
        # the reference source put first on the path stands for it, so it gets metadata there too
        # (the tier is usually absent here: the course replaces it with the student's release).
        version = (root / "packages" / "VERSION").read_text(encoding="utf-8").strip()
        info = work / f"tinytorch_{tier}-{version}.dist-info"
        info.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: tinytorch-{tier}\nVersion: {version}\n"
        (info / "METADATA").write_text(metadata, encoding="utf-8")
        (work / "trace.json").write_text(json.dumps(trace), encoding="utf-8")
        env = dict(
            os.environ,
            TINYTORCH_NB_TRACE=str(work / "trace.json"),
            TINYTORCH_NB_OUT=str(work / "out.json"),
            PYTHONPATH=os.pathsep.join([str(src), str(work), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        )
        # --rootdir: node ids relative to the repository even when it has no pytest configuration of
        # its own and a folder above it does (a test's fixture repository under nox's tmp/).
        cmd = [python or sys.executable, "-m", "pytest", "-q", "-p", "tinytorch_nb_trace"]
        cmd += ["--rootdir", str(root), "-p", "no:cacheprovider", "--import-mode=importlib", "-o", "addopts="]
        cmd += files
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
        out = work / "out.json"
        if proc.returncode not in (0, 1) or not out.is_file():
            tail = (proc.stdout + proc.stderr).strip()[-2000:]
            raise NotebookError(
                f"running the tests of modules {', '.join(numbers)} on the reference failed:\n{tail}"
            )
        return json.loads(out.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def assign_tests(functions: list[Function], results: dict, tier: str) -> tuple[list[str], list[str]]:
    """Give each passing test to the last function (in notebook order) it calls.

    Returns (rest, unrun): the passing tests that call none of the functions (a last check
    cell runs them), and the tests that did not pass on the reference (skipped: optional
    oracles such as PyTorch; not graded, as ``tito course grade`` grades only what the
    reference passes). Node ids take the release's layout (``tests/test_02_activations.py::``).
    """
    order = {f.key: i for i, f in enumerate(functions)}
    rest, unrun = [], []
    first_check = {}  # function index -> index of the first check running a test that calls it
    for nodeid, record in results.items():
        local = nodeid.replace(f"tests/{tier}/", "tests/", 1)
        reached = [order[k] for k in record["reach"] if k in order]
        if record["outcome"] == "passed" and reached:
            last = max(reached)
            functions[last].tests.append(local)
            for i in reached:
                first_check[i] = min(first_check.get(i, last), last)
        elif record["outcome"] == "passed":
            rest.append(local)
        else:
            unrun.append(local)
    for i, owner in first_check.items():
        functions[i].checked_after = functions[owner].qualname
    return rest, unrun


# --- the systems cells: one live measurement per module --------------------------------------------


def _code(text: str) -> str:
    return text.strip("\n")


# (code, reflection). The code runs after every function of the module is written; it uses only
# the module's own code and modules before it, and stays under a few seconds on a laptop.
SYSTEMS: dict[str, tuple[str, str]] = {
    "01": (
        _code("""
from tinytorch.core.tensor import randn

measure('matrix product a @ b of two n x n float32 tensors', lambda n: (randn(n, n), randn(n, n)),
        lambda ab: ab[0] @ ab[1], sizes=[64, 128, 256, 512])
"""),
        "An n x n matrix product does 2n^3 floating-point operations on 3n^2 numbers. When n doubles, by "
        "how much should the time grow, and the memory? Does your table agree, and where does it not "
        "(think of caches and of the BLAS library NumPy calls)?",
    ),
    "02": (
        _code("""
import numpy as np
from tinytorch.core.activations import softmax
from tinytorch.core.tensor import Tensor

rng = np.random.default_rng(0)
measure('softmax over rows of an (n, 1024) float32 tensor',
        lambda n: Tensor(rng.standard_normal((n, 1024)).astype(np.float32)),
        softmax, sizes=[64, 256, 1024])
"""),
        "The input of n = 1024 rows is 4 MB. How many input-sized temporary arrays does your softmax "
        "allocate (look at the peak memory)? Which of them could an in-place version avoid, and why must "
        "the row maximum still be subtracted?",
    ),
    "03": (
        _code("""
from tinytorch.core.layers import Linear
from tinytorch.core.tensor import randn

measure('Linear(n, n) on a batch of 64', lambda n: (Linear(n, n), randn(64, n)),
        lambda layer_x: layer_x[0](layer_x[1]), sizes=[128, 256, 512, 1024])
"""),
        "A Linear(n, n) layer holds n^2 + n parameters and does 2 * 64 * n^2 operations on a batch of 64. "
        "Which grows faster here, the time or the peak memory, and which would dominate for a batch of 1 "
        "(inference on one example)?",
    ),
    "04": (
        _code("""
import numpy as np
from tinytorch.core.losses import cross_entropy
from tinytorch.core.tensor import Tensor

rng = np.random.default_rng(0)
measure('cross_entropy of n examples over 1000 classes',
        lambda n: (Tensor(rng.standard_normal((n, 1000)).astype(np.float32)), rng.integers(0, 1000, n)),
        lambda xy: cross_entropy(xy[0], xy[1]), sizes=[64, 256, 1024])
"""),
        "The loss is one number, yet computing it touches every logit. Why does cross-entropy go through "
        "log-softmax instead of softmax followed by log, and what would happen to the loss of a confident "
        "wrong prediction in float32 if it did not?",
    ),
    "05": (
        _code("""
from tinytorch.core.activations import tanh
from tinytorch.core.tensor import randn

def forward_backward(x):
    loss = tanh(x @ x).sum()
    loss.backward()

measure('forward only: tanh(x @ x).sum()', lambda n: randn(n, n), lambda x: tanh(x @ x).sum(),
        sizes=[64, 128, 256])
measure('forward and backward', lambda n: randn(n, n, requires_grad=True), forward_backward,
        sizes=[64, 128, 256])
"""),
        "Compare the two tables: how much more does backward cost than forward, in time and in memory? "
        "Which arrays must the graph keep alive between forward and backward, and what would `no_grad()` "
        "save during evaluation?",
    ),
    "06": (
        _code("""
import numpy as np
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.tensor import Tensor

def ready(n, make_optimizer):
    p = Tensor(np.ones(n, dtype=np.float32), requires_grad=True)
    (p * p).sum().backward()
    return make_optimizer([p])

sizes = [10_000, 100_000, 1_000_000]
measure('SGD step over n parameters', lambda n: ready(n, lambda ps: SGD(ps, lr=0.1)),
        lambda opt: opt.step(), sizes=sizes)
measure('Adam step over n parameters', lambda n: ready(n, lambda ps: Adam(ps, lr=0.1)),
        lambda opt: opt.step(), sizes=sizes)
"""),
        "Adam keeps two running averages per parameter. For a model of 100 million float32 parameters, "
        "how much memory do the weights, the gradients and Adam's state take? Why is the time per step of "
        "both optimizers linear in n?",
    ),
    "07": (
        _code("""
import numpy as np
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import cross_entropy
from tinytorch.core.optimizers import SGD
from tinytorch.core.tensor import Tensor

rng = np.random.default_rng(0)
model = Sequential(Linear(64, 256), ReLU(), Linear(256, 10))
opt = SGD(model.parameters(), lr=0.01)

def step(batch):
    x, y = batch
    loss = cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

measure('one training step of a 64-256-10 MLP, by batch size',
        lambda n: (Tensor(rng.standard_normal((n, 64)).astype(np.float32)), rng.integers(0, 10, n)),
        step, sizes=[16, 64, 256, 1024])
"""),
        "Divide each time by the batch size: how does the cost per example change with the batch, and "
        "why? What limits the batch size you could use in practice (memory, or how well training "
        "converges)?",
    ),
    "08": (
        _code("""
import numpy as np
from tinytorch.core.tensor import Tensor
from tinytorch.data.loader import DataLoader, TensorDataset

rng = np.random.default_rng(0)
def loader(n):
    x = Tensor(rng.standard_normal((n, 784)).astype(np.float32))
    data = TensorDataset(x, Tensor(rng.integers(0, 10, n)))
    return DataLoader(data, batch_size=64, shuffle=True, seed=0)

measure('one epoch of shuffled batches of 64 over n examples', loader,
        lambda dl: sum(1 for _ in dl), sizes=[1_000, 5_000, 20_000])
"""),
        "Is one epoch's cost proportional to n? How much memory does shuffling cost compared with the "
        "data itself, and what changes if the dataset no longer fits in memory?",
    ),
    "09": (
        _code("""
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import randn

measure('Conv2d(16, 32, 3, padding=1) on 8 images of n x n',
        lambda n: (Conv2d(16, 32, 3, padding=1), randn(8, 16, n, n)),
        lambda cx: cx[0](cx[1]), sizes=[8, 16, 32])
"""),
        "im2col copies every input pixel once per kernel position. For a 3x3 kernel, how much larger than "
        "the input is the column matrix, and does the peak memory show it? What do you buy with that "
        "memory?",
    ),
    "10": (
        _code("""
from tinytorch.text.tokenization import CharTokenizer

text = 'to be, or not to be, that is the question. ' * 2000
tokenizer = CharTokenizer([text])
measure('CharTokenizer.encode of n characters', lambda n: text[:n], tokenizer.encode,
        sizes=[1_000, 10_000, 80_000])
"""),
        "A character tokenizer gives one token per character; a byte-pair tokenizer fewer. How does the "
        "number of tokens change the cost of everything after the tokenizer (embeddings, attention)?",
    ),
    "11": (
        _code("""
import numpy as np
from tinytorch.core.tensor import Tensor
from tinytorch.text.embeddings import Embedding

rng = np.random.default_rng(0)
embedding = Embedding(10_000, 256)
measure('Embedding(10000, 256) lookup of n token ids', lambda n: Tensor(rng.integers(0, 10_000, n)),
        embedding, sizes=[1_000, 10_000, 100_000])
"""),
        "The lookup does no arithmetic at all. What does its time measure then? How many bytes does the "
        "table hold, and how many does one lookup of n tokens produce?",
    ),
    "12": (
        _code("""
from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.core.tensor import randn

measure('attention over a sequence of n tokens (4 heads, head dim 32)',
        lambda n: (randn(1, 4, n, 32), randn(1, 4, n, 32), randn(1, 4, n, 32)),
        lambda qkv: scaled_dot_product_attention(*qkv), sizes=[64, 128, 256, 512])
"""),
        "When the sequence doubles, how do time and memory grow? Which array is n x n, and how large "
        "would it be for a 32k-token context with 32 heads?",
    ),
    "13": (
        _code("""
import numpy as np
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import GPT

rng = np.random.default_rng(0)
model = GPT(vocab_size=64, embed_dim=64, num_layers=2, num_heads=4, max_seq_len=512)
measure('GPT forward (2 layers, d 64) over n tokens', lambda n: Tensor(rng.integers(0, 64, (1, n))),
        model, sizes=[32, 128, 512])
"""),
        "Which part of the model grows linearly with the sequence and which quadratically? At which "
        "sequence length would attention overtake the MLPs in this model?",
    ),
    "14": (
        _code("""
from tinytorch.core.layers import Linear
from tinytorch.core.tensor import randn
from tinytorch.profiling.profiler import count_flops

for n in [128, 256, 512]:
    print(f'Linear({n}, {n}) on a batch of 32: {count_flops(Linear(n, n), (32, n)):,} FLOPs counted')
measure('Linear(n, n) on a batch of 32', lambda n: (Linear(n, n), randn(32, n)),
        lambda lx: lx[0](lx[1]), sizes=[128, 256, 512])
"""),
        "Divide the counted FLOPs by the measured time: how many GFLOP/s does this machine reach, and why "
        "is that below its peak for small layers?",
    ),
    "15": (
        _code("""
from tinytorch.core.tensor import randn
from tinytorch.optimization.quantization import quantize_int8

measure('quantize_int8 of an n x n float32 tensor', lambda n: randn(n, n), quantize_int8,
        sizes=[128, 512, 1024])
"""),
        "int8 weights are 4x smaller than float32. Where does that save time at inference and where does "
        "it cost time (look at what quantizing and dequantizing touch)?",
    ),
    "16": (
        _code("""
from tinytorch.core.layers import Linear, Sequential
from tinytorch.optimization.compression import magnitude_prune

measure('magnitude_prune(sparsity 0.9) of Linear(n, n)', lambda n: Sequential(Linear(n, n)),
        lambda model: magnitude_prune(model, 0.9), sizes=[128, 512, 1024])
"""),
        "After pruning 90% of the weights the dense matrix product costs the same. What would a sparse "
        "format have to store per kept weight, and at what sparsity does it start to save memory?",
    ),
    "17": (
        _code("""
from tinytorch.generation.kv_cache import KVCache
from tinytorch.core.tensor import randn

for n in [128, 512, 2048]:
    cache = KVCache(batch_size=1, max_seq_len=n, num_layers=4, num_heads=4, head_dim=32)
    size = sum(a.nbytes for a in vars(cache).values() if hasattr(a, 'nbytes'))
    print(f'max_seq_len {n:>5}: the cache holds {size / 1024:,.0f} KB')
"""),
        "The cache trades memory for time: how does its size grow with the context length, layers and "
        "heads? For which model and context would it no longer fit in 16 GB?",
    ),
    "18": (
        _code("""
import numpy as np
from tinytorch.optimization.acceleration import naive_matmul, vectorized_matmul

rng = np.random.default_rng(0)
def make(n):
    return rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)

measure('naive_matmul (Python loops)', make, lambda ab: naive_matmul(*ab), sizes=[16, 32, 48], repeat=1)
measure('vectorized_matmul', make, lambda ab: vectorized_matmul(*ab), sizes=[16, 32, 48])
"""),
        "By what factor is the vectorized product faster at n = 48, and does the factor grow with n? "
        "Where does the time of the loop version go?",
    ),
    "19": (
        _code("""
from tinytorch.benchmarking.benchmark import time_function
from tinytorch.core.tensor import randn

for n in [64, 256]:
    a = randn(n, n)
    print(n, time_function(lambda: a @ a, warmup=2, iterations=10))
"""),
        "How wide is the confidence interval relative to the mean, and how many iterations would halve "
        "it? Why does a benchmark need warm-up runs?",
    ),
    "20": (
        _code("""
import numpy as np
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import GPT

rng = np.random.default_rng(0)
for layers in [1, 2, 4]:
    model = GPT(vocab_size=65, embed_dim=64, num_layers=layers, num_heads=4, max_seq_len=128)
    count = sum(p.data.size for p in model.parameters())
    print(f'{layers} layers: {count:,} parameters')
    measure(f'{layers}-layer GPT forward over n tokens', lambda n: Tensor(rng.integers(0, 65, (1, n))),
            model, sizes=[32, 128])
"""),
        "How do parameters and forward time grow with the number of layers? For your TinyGPT, which would "
        "you scale first with a fixed compute budget: depth, width or context?",
    ),
}


# --- building one module's notebook -----------------------------------------------------------------


def tier_blocks(ref_src: Path) -> dict[Path, tuple[str, list]]:
    """{file: (source, blocks)} of every file of a tier's reference source, in course order.

    Files of a module come in module order (tensor.py first), helpers after them; the
    blocks carry their module. Computed once per release (finding blocks is not cheap).
    """

    def order(path: Path):
        info = module_for(import_path_of(path.relative_to(ref_src)))
        return (info.number if info else "99", str(path))

    found = {}
    for path in sorted(ref_src.rglob("*.py"), key=order):
        info = module_for(import_path_of(path.relative_to(ref_src)))
        source = path.read_text(encoding="utf-8")
        found[path] = (source, markers.find_blocks(source, str(path), info.number if info else None))
    return found


def module_functions(blocks: dict, ref_src: Path, release_src: Path, number: str) -> list[Function]:
    """The functions of module ``number`` (its blocks, wherever they live in the tier), in file order.

    The module's own file comes first, then the others in course order (``sorted`` is stable).
    """
    found: list[Function] = []

    def own_file_first(item):  # the module's own file (autograd.py for 05) first: its helpers come first
        info = module_for(import_path_of(item[0].relative_to(ref_src)))
        return 0 if info is not None and info.number == number else 1

    for path, (source, file_blocks) in sorted(blocks.items(), key=own_file_first):
        mine = [b for b in file_blocks if b.module == number]
        if not mine:
            continue
        rel = path.relative_to(ref_src)
        import_path = import_path_of(rel)
        release_source = (release_src / rel).read_text(encoding="utf-8")
        tree = ast.parse(source)
        seen: set[str] = set()
        for block in mine:
            if block.qualname in seen:
                continue
            seen.add(block.qualname)
            same = [b for b in mine if b.qualname == block.qualname]
            keep = {b.begin for b in same} | {b.end for b in same}
            solution, first = _def_source(source, block.qualname, keep)
            student, _ = _def_source(release_source, block.qualname)
            parent = _def_node(tree, block.qualname.rsplit(".", 1)[0]) if "." in block.qualname else None
            doc = ast.get_docstring(parent) if isinstance(parent, ast.ClassDef) else ""
            found.append(Function(import_path, block.qualname, first, student, solution, doc or ""))
    return found


def _lesson(info: ModuleInfo, ref_src: Path) -> str:
    path = ref_src.joinpath(*info.import_path.split(".")).with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or info.title
    first, _, rest = doc.partition("\n")
    return f"# {rst_to_markdown(first).strip()}\n\n{rst_to_markdown(rest).strip()}\n"


HOW_TO = """\
## How this notebook works

Each cell that starts with `%%write_def MODULE NAME` holds one function of your package
(the first one lives in `{file}` of this release). Write the body where it raises
`NotImplementedError`, then run the cell: it writes the function into that file, the one
`import tinytorch...` reads in this notebook (and everywhere, once the release is installed with
`pip install -e`), so the tests, `tito module status` and the grader see exactly what you wrote.
The check cell after a function runs the tests that need it (pytest, on the files as your cells
wrote them); read its report, fix, run both again. A function that never returns stops the check
too: interrupt the kernel (with `TINYTORCH_CHECK=fresh` set before Jupyter starts, every check
runs in a new Python and gives up after 10 minutes). The last cells measure your code as it runs.

**Objects made before an edit keep the old code.** A `%%write_def` cell rewrites the file and
makes the next `import` read it again, but a tensor, layer or class you created or imported
into a name before the edit still runs the code it was made with. After an edit, re-run the
cells that import and create them, or restart the kernel and run the notebook from the top.
"""


def build_cells(
    info: ModuleInfo,
    functions: list[Function],
    rest: list[str],
    lesson: str,
    visible_points: float,
    weight,
    solutions: bool,
    unrun: list[str] = (),
) -> list[Cell]:
    """The notebook of one module as cells (see the module docstring for the layout)."""
    m = f"m{info.number}"
    cells = [Cell("markdown", lesson, f"{m}-lesson", "lesson")]
    file = functions[0].file if functions else "src/" + info.import_path.replace(".", "/") + ".py"
    cells.append(Cell("markdown", HOW_TO.format(file=file), f"{m}-how-to", "lesson"))
    setup = "%load_ext tinytorch_notebook\nfrom tinytorch_notebook import check, measure"
    cells.append(Cell("code", setup, f"{m}-setup", "setup"))
    checks: list[tuple[Cell, list[str]]] = []
    shown_class: set[str] = set()
    for fn in functions:
        slug = _slug(fn.qualname)
        head = [f"## `{fn.qualname}`", "", f"In `{fn.file}` (`{fn.import_path}`)."]
        owner = fn.qualname.rsplit(".", 1)[0] if "." in fn.qualname else ""
        if fn.class_doc and owner not in shown_class:
            shown_class.add(owner)
            head += ["", f"**`{owner}`**: " + rst_to_markdown(fn.class_doc).strip()]
        if not fn.tests:
            where = f"the check after `{fn.checked_after}`" if fn.checked_after else "no check cell"
            head += ["", f"No test needs this function alone: {where} runs the tests that use it."]
        cells.append(Cell("markdown", "\n".join(head) + "\n", f"{m}-{slug}-about", "lesson"))
        code = fn.solution if solutions else fn.student
        cells.append(
            Cell("code", f"%%write_def {fn.import_path} {fn.qualname}\n{code}", f"{m}-{slug}", "solution")
        )
        if fn.tests:
            source = f"check({fn.qualname!r}, {json.dumps(fn.tests, indent=4)})"
            cell = Cell("code", source, f"{m}-{slug}-check", "check")
            cells.append(cell)
            checks.append((cell, fn.tests))
    if rest:
        cells.append(
            Cell(
                "markdown",
                "## The rest of the module's tests\n\nTests that call none of the functions above "
                "(argument checks, given code). They pass before you write anything, so they earn "
                "no points (as in `tito course grade`); run them to see that nothing you changed "
                "broke them.\n",
                f"{m}-rest-about",
                "lesson",
            )
        )
        source = f"check('Module {info.number}: the remaining tests', {json.dumps(sorted(rest), indent=4)})"
        cells.append(Cell("code", source, f"{m}-rest-check", "ungraded-check"))
    if unrun:
        names = sorted({t.split("::", 1)[1].split("[")[0] for t in unrun})
        cells.append(
            Cell(
                "markdown",
                f"**Not run here:** {len(unrun)} tests did not pass on the reference when this notebook "
                "was made (skipped: optional oracles such as PyTorch): "
                + ", ".join(f"`{n}`" for n in names)
                + ". They are not graded; `pytest` in the release runs them where their oracle is "
                "installed.\n",
                f"{m}-unrun",
                "lesson",
            )
        )
    _share_points(checks, visible_points, weight)
    code, question = SYSTEMS.get(info.number, ("", ""))
    if code:
        cells.append(
            Cell(
                "markdown",
                "## Systems: measure it\n\nThe module's code, timed and its peak memory traced as the "
                "input grows (best of 3 runs; other programs on the machine add noise).\n",
                f"{m}-systems-about",
                "lesson",
            )
        )
        cells.append(Cell("code", code, f"{m}-systems", "systems"))
        cells.append(Cell("markdown", f"### Reflect\n\n{question}\n", f"{m}-reflect", "lesson"))
    return cells


def _share_points(checks: list[tuple[Cell, list[str]]], total: float, weight) -> None:
    """Split ``total`` over the check cells in proportion to their tests' weights (2 decimals, exact sum)."""
    weights = [sum(weight(t.split("::", 1)[-1]) for t in tests) for _, tests in checks]
    whole = sum(weights)
    if not checks or whole <= 0:
        return
    given = 0.0
    for i, ((cell, _), w) in enumerate(zip(checks, weights)):
        share = round(total - given, 2) if i == len(checks) - 1 else round(total * w / whole, 2)
        cell.points = share
        given += share


# --- writing: .ipynb JSON and Jupytext percent .py from the same cells --------------------------------


def _lines(text: str) -> list[str]:
    parts = text.rstrip("\n").split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def to_ipynb(cells: list[Cell]) -> dict:
    """nbformat 4.5 notebook JSON (no outputs)."""
    out = []
    for c in cells:
        cell = {"cell_type": c.kind, "id": c.id, "metadata": c.metadata(), "source": _lines(c.source)}
        if c.kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        "jupytext": {"formats": "ipynb,py:percent"},
    }
    return {"cells": out, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _meta_text(meta: dict) -> str:
    return " ".join(f"{k}={json.dumps(v, separators=(', ', ': '))}" for k, v in meta.items())


def to_percent(cells: list[Cell]) -> str:
    """The same cells in Jupytext's percent format (magics commented, as Jupytext writes them)."""
    out = [
        "# ---",
        "# jupyter:",
        "#   jupytext:",
        "#     formats: ipynb,py:percent",
        "#     text_representation:",
        "#       extension: .py",
        "#       format_name: percent",
        "#   kernelspec:",
        f"#     display_name: {KERNELSPEC['display_name']}",
        f"#     language: {KERNELSPEC['language']}",
        f"#     name: {KERNELSPEC['name']}",
        "# ---",
        "",
    ]
    chunks = []
    for c in cells:
        meta = c.metadata()
        if c.kind == "markdown":
            chunk = [f"# %% [markdown] {_meta_text(meta)}"]
            chunk += [f"# {line}" if line else "#" for line in c.source.rstrip("\n").split("\n")]
        else:
            lines = c.source.rstrip("\n").split("\n")
            chunk = [f"# %% {_meta_text(meta)}"] + [
                f"# {line}" if line.startswith("%") else line for line in lines
            ]
        chunks.append((c, chunk))
    for c, chunk in chunks:
        out += chunk
        # Two blank lines after a cell that defines or imports (PEP 8, as Jupytext spaces them), else one.
        # Jupytext may still record a `lines_to_next_cell` on reading: spacing only, never content.
        out += ["", ""] if c.role in ("setup", "solution") else [""]
    return "\n".join(out)


@dataclass
class NotebookSet:
    directory: Path
    solutions: bool
    files: dict[str, dict] = field(default_factory=dict)  # module -> {ipynb, py, cells, checks, points}


def write_notebooks(
    release, root: Path, staging: Path, *, solutions: bool = False, points_file=None, python=None
) -> NotebookSet:
    """Write ``staging/notebooks/`` for every module the release stubs; return what was written.

    ``release`` is the :class:`~tinytorch.milestones.course.release.Release` being made
    (its tier, modules and hidden-test flags); the manifest in ``staging`` gains a
    ``notebooks`` entry. Student notebooks are checked to carry no solution text.
    """
    from tinytorch.milestones.course import points as points_mod

    tier = release.tier
    ref_src = root / "packages" / f"tinytorch-{tier}" / "src"
    table = points_mod.load([tier], points_file)
    infos = [m for m in tier_modules(tier) if m.number in release.modules]
    blocks = tier_blocks(ref_src)
    per_module = {m.number: module_functions(blocks, ref_src, staging / "src", m.number) for m in infos}
    every = [f for fns in per_module.values() for f in fns]
    results = trace_tests(root, tier, [m.number for m in infos], every, python)
    out = staging / NOTEBOOK_DIR
    out.mkdir()
    shutil.copy2(Path(__file__).with_name("notebook_sync.py"), out / RUNTIME)
    made = NotebookSet(out, solutions)
    for info in infos:
        functions = per_module[info.number]
        mine = {n: r for n, r in results.items() if re.search(rf"/test_{info.number}_[^/]*\.py::", n)}
        rest, unrun = assign_tests(functions, mine, tier)
        entry = table.module(info.number)
        visible = entry.points - entry.hidden if release.hidden.get(info.number) else entry.points
        lesson = _lesson(info, ref_src)
        cells = build_cells(info, functions, rest, lesson, visible, entry.weight, solutions, unrun)
        stem = f"{info.number}_{info.name}"
        notebook = json.dumps(to_ipynb(cells), indent=1, ensure_ascii=False) + "\n"
        percent = to_percent(cells)
        if not solutions:
            _check_no_solutions(blocks, percent, info.number)
        (out / f"{stem}.ipynb").write_text(notebook, encoding="utf-8")
        (out / f"{stem}.py").write_text(percent, encoding="utf-8")
        made.files[info.number] = {
            "ipynb": f"{NOTEBOOK_DIR}/{stem}.ipynb",
            "py": f"{NOTEBOOK_DIR}/{stem}.py",
            "cells": len(cells),
            "functions": len(functions),
            "checks": sum(c.role == "check" for c in cells),
            "points": round(sum(c.points for c in cells), 2),
        }
    manifest_path = staging / "tinytorch-release.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["notebooks"] = {
        "solutions": solutions,
        "runtime": f"{NOTEBOOK_DIR}/{RUNTIME}",
        "modules": made.files,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return made


def _check_no_solutions(blocks: dict, text: str, number: str) -> None:
    """A student notebook must not hold the body of any of the module's solution blocks."""
    leaks = []
    for path, (source, file_blocks) in blocks.items():
        mine = [b for b in file_blocks if b.module == number]
        leaks += [f"{path.name}: {b.qualname}" for b in markers.surviving_solutions(source, text, mine)]
    if leaks:
        raise NotebookError(f"student notebook of module {number} holds solution text: {', '.join(leaks)}")


# --- running notebooks (the nox session and the tests; needs the `notebooks` extra) ------------------


@dataclass
class Run:
    """The outcome of executing one notebook: per cell (id, role, seconds), and the first error."""

    path: Path
    cells: list[tuple[str, str, float]] = field(default_factory=list)
    error_cell: str | None = None  # id of the cell that raised, if any
    error: str = ""  # "ename: evalue" of that error

    @property
    def seconds(self) -> float:
        return sum(t for _, _, t in self.cells)


def execute(path: str | os.PathLike, timeout: float = 900, stop_on_error: bool = True) -> Run:
    """Run a notebook top to bottom in a fresh kernel (cwd: its directory) with nbclient.

    Stops at the first cell that raises (``stop_on_error``) and records it; the kernel
    inherits this process's environment (``PYTHONPATH`` and the virtual environment).
    """
    import time

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path).resolve()
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    run = Run(path)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            role = _role(cell)
            started = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                run.cells.append((cell.get("id", str(index)), role, time.perf_counter() - started))
                run.error_cell = cell.get("id", str(index))
                run.error = f"{exc.ename}: {exc.evalue}"
                if stop_on_error:
                    break
                continue
            run.cells.append((cell.get("id", str(index)), role, time.perf_counter() - started))
    return run


def _role(cell) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "check"
    return "code" if cell.get("cell_type") == "code" else "markdown"


STUB_ERROR_RE = re.compile(
    r"NotImplementedError: (?:Module \d\d \([^)]*\)|tinytorch-[a-z]+ \([\w.]+\)): implement [\w.]+"
)


def check_run(run: Run, expect: str) -> str | None:
    """What is wrong with a run, or None. ``expect``: "clean" (instructor) or "first-stub" (student).

    A student notebook must run until its first check cell and fail there, with a stub's
    message (``Module NN (name): implement ...``): every cell before it succeeded.
    """
    if expect == "clean":
        return None if run.error_cell is None else f"cell {run.error_cell} raised {run.error[:2000]}"
    first_check = next((cid for cid, role, _ in run.cells if role == "check"), None)
    if run.error_cell is None:
        return "ran to the end: no stub stopped it"
    if run.error_cell != first_check:
        return f"stopped at {run.error_cell}, not at its first check cell ({first_check}): {run.error[:2000]}"
    if not STUB_ERROR_RE.search(run.error):
        return f"its first check failed without a stub's message: {run.error[:2000]}"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m tinytorch.milestones.course.notebooks {clean|first-stub} NOTEBOOK...``: run and judge.

    Prints one line per notebook (time, cells, the error of a student notebook); exit 1
    when any notebook does not behave as expected. Used by ``nox -s notebooks``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] not in ("clean", "first-stub"):
        print("usage: python -m tinytorch.milestones.course.notebooks {clean|first-stub} NOTEBOOK...")
        return 2
    expect, failed = args[0], 0
    for path in args[1:]:
        run = execute(path, stop_on_error=True)
        problem = check_run(run, expect)
        checks = sum(role == "check" for _, role, _ in run.cells)
        slowest = max(run.cells, key=lambda c: c[2], default=("-", "", 0.0))
        line = (
            f"{Path(path).name}: {run.seconds:6.1f} s, {len(run.cells)} cells run, {checks} checks, "
            f"slowest {slowest[0]} {slowest[2]:.1f} s"
        )
        if expect == "first-stub" and problem is None:
            stub = STUB_ERROR_RE.search(run.error)
            line += f"; stopped at {run.error_cell}: {stub.group(0) if stub else run.error[:160]}"
        print(line + (f"\n  PROBLEM: {problem}" if problem else ""), flush=True)
        failed += problem is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
