"""An nbgrader course directory made from the reference: one assignment per module, each a release.

``tito course release --tier foundation --nbgrader --out COURSE`` writes::

    COURSE/nbgrader_config.py                   written once; an instructor's edits are kept
    COURSE/source/01_tensor/01_tensor.ipynb     the instructor's notebook (reference between markers)
    COURSE/source/01_tensor/tinytorch_notebook.py   the notebook's runtime (%%write_def, check, measure)
    COURSE/source/01_tensor/src/ tests/ pytest.ini pyproject.toml tinytorch-release.json
    COURSE/source/02_activations/...

after which nbgrader's own commands work as they are, in COURSE::

    nbgrader generate_assignment 01_tensor      # release/01_tensor: solutions cleared, cells locked
    nbgrader autograde 01_tensor                # submitted/<student>/01_tensor/01_tensor.ipynb
    nbgrader export                             # grades.csv

Why each assignment carries a whole release: nbgrader copies only the files of an
assignment's own folder (to release/ and to autograded/<student>/), and runs a notebook with
that folder as its working directory. The ``%%write_def`` cells need a package to write
into and the check cells need the package and the tests; the runtime finds the release by
its ``tinytorch-release.json`` and imports its ``src/`` first (``notebook_sync.use_release``).
Autograde copies the source's files over what a student sent, so every submission is
graded in its own copy of the stubbed package, with the instructor's tests: one student's
code never reaches another's grade, and a changed test or package file does not count.

Why one release per module (``--modules NN``): assignments are graded apart, so module
05's assignment must hold modules 01-04 as working code (the reference, as any release
gives the modules it does not stub), not the stubs a student of module 01 starts from.

The points of an assignment are its module's visible points in the points file, split over
its check cells (``notebooks.build_cells``); nbgrader scores a check cell in full when it
runs without an error, else 0.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tinytorch.milestones.course.notebooks import NOTEBOOK_DIR, RUNTIME
from tinytorch.milestones.course.release import ReleaseError, make_release
from tinytorch.milestones.course.repo import RELEASE_MANIFEST

CONFIG = "nbgrader_config.py"
# Files of a release an assignment leaves out: the notebooks folder (the instructor's
# notebooks, solutions included: nbgrader would hand every file of the folder to the
# students), the README that describes that folder, GitHub Classroom's workflow and wheels.
LEFT_OUT = (NOTEBOOK_DIR, "README.md", ".github", "wheels")

CONFIG_TEXT = '''\
"""nbgrader's configuration of this TinyTorch course (written by `tito course release --nbgrader`)."""

c = get_config()  # noqa: F821 (nbgrader defines it when it reads this file)

# A check cell runs its tests with pytest in the notebook's kernel: the larger ones (module 05's
# last check, the training tests) can take longer than nbgrader's default of 30 seconds a cell on
# a slow machine, and this timeout is also what stops a submission whose code never returns.
c.Execute.timeout = 600
'''


class NbgraderError(ReleaseError):
    """The course directory could not be written (the message says why)."""


def assignment_from_release(release: Path, source: Path, number: str) -> Path:
    """Lay the instructor's release of module ``number`` out as ``source/<NN_name>/``; return it.

    ``release`` was made with ``with_solutions=True`` and ``modules=[number]``. The assignment
    holds the release without ``LEFT_OUT``, with the module's notebook and the runtime at its
    top (nbgrader finds notebooks there only). The manifest's ``notebooks`` entry names them.
    """
    manifest = json.loads((release / RELEASE_MANIFEST).read_text(encoding="utf-8"))
    entry = manifest.get("notebooks", {}).get("modules", {}).get(number)
    if not entry or not manifest["notebooks"].get("solutions"):
        raise NbgraderError(f"{release} holds no instructor notebook of module {number}")
    notebook = release / entry["ipynb"]
    target = source / notebook.stem
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(release, target, ignore=lambda folder, names: LEFT_OUT if Path(folder) == release else ())
    shutil.copy2(notebook, target / notebook.name)
    shutil.copy2(release / NOTEBOOK_DIR / RUNTIME, target / RUNTIME)
    kept = {k: v for k, v in entry.items() if k != "py"}
    manifest["notebooks"] = {
        "layout": "nbgrader",  # the notebook sits at the top of the assignment, not in notebooks/
        "runtime": RUNTIME,
        "modules": {number: {**kept, "ipynb": notebook.name}},
    }
    (target / RELEASE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target


def make_course(
    course: str | Path,
    tier: str,
    modules: list[str],
    *,
    root: Path | None = None,
    verify_imports: bool = True,
    points_file=None,
    wheelhouse: str | None = None,
) -> dict[str, Path]:
    """Write ``course/source/<NN_name>/`` for each module and ``course/nbgrader_config.py``.

    One instructor release per module (``make_release(modules=[NN], with_solutions=True)``)
    is made in a temporary folder and laid out by :func:`assignment_from_release`. An
    assignment already in ``source/`` is replaced; other assignments and files stay, so the
    tiers of a course can be added one after another. Returns {module: assignment folder}.
    """
    course = Path(course).resolve()
    source = course / "source"
    source.mkdir(parents=True, exist_ok=True)
    made = {}
    for number in modules:
        with tempfile.TemporaryDirectory(prefix=f"tito-nbgrader-{number}-") as tmp:
            release = Path(tmp) / "release"
            make_release(
                tier,
                release,
                root=root,
                modules=[number],
                verify_imports=verify_imports,
                with_solutions=True,
                points_file=points_file,
                wheelhouse=wheelhouse,
            )
            made[number] = assignment_from_release(release, source, number)
    config = course / CONFIG
    if not config.exists():
        config.write_text(CONFIG_TEXT, encoding="utf-8")
    return made
