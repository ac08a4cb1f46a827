"""A small pytest plugin: one JSON record per test, saying *why* each failure failed.

Used by ``tito module status``, ``tito course grade`` and the nox course
sessions: ``pytest -p tinytorch.milestones.course.pytest_outcomes`` with the
environment variable ``TINYTORCH_OUTCOMES`` naming the JSON file to write.
It needs only the standard library and pytest, so ``tito course grade`` can
copy this file into an environment where tinytorch-milestones is absent.

Each record: ``nodeid``, ``file`` (base name), ``module`` ("09" from
``test_09_spatial.py``, else null), ``outcome`` (passed, failed, skipped),
``exceptions`` (type and message of every leaf exception, exception groups
flattened), ``stub`` (true when every exception is a NotImplementedError raised
by a student-release stub), ``stub_modules`` (the module numbers those stub
messages name, also when a child process printed them) and ``summary`` (the
first lines of the failure).
A test module that fails to import is one record with nodeid = its path.
"""

from __future__ import annotations

import json
import os
import re

STUB_RE = re.compile(r"^(?:Module (\d\d) \(([^)]*)\)|tinytorch-[a-z]+ \([\w.]+\)): implement ([\w.]+)$")
MODULE_RE = re.compile(r"^test_(\d\d)_")
ENV = "TINYTORCH_OUTCOMES"


def _leaves(exc: BaseException) -> list[BaseException]:
    group = getattr(exc, "exceptions", None)
    if (
        isinstance(group, (list, tuple))
        and isinstance(exc, BaseException)
        and type(exc).__name__.endswith("Group")
    ):
        return [leaf for sub in group for leaf in _leaves(sub)]
    return [exc]


# Failures that *report* a stub's error rather than raise it: a child Python process killed by a
# stub (CalledProcessError, its output shows the traceback), or `pytest.raises(RuntimeError,
# match=...)` catching a stub (NotImplementedError subclasses RuntimeError) and failing to match.
STUB_SEARCH_RE = re.compile(r"(?:Module \d\d \([^)]*\)|tinytorch-[a-z]+ \([\w.]+\)): implement [\w.]+")
# The module numbers the stub errors of a failure name (the per-module checks compare them).
STUB_MODULE_RE = re.compile(r"Module (\d\d) \([^)]*\): implement [\w.]+")
REPORTING_FAILURES = ("CalledProcessError", "AssertionError")


def is_stub(exc_type: str, message: str, output: str = "") -> bool:
    """A stub's NotImplementedError, or a failure that reports one (see REPORTING_FAILURES)."""
    if exc_type == "NotImplementedError":
        return bool(STUB_RE.match(message.strip()))
    if exc_type in REPORTING_FAILURES:
        return bool(STUB_SEARCH_RE.search(f"{message}\n{output}"))
    return False


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


class Outcomes:
    def __init__(self, path: str):
        self.path = path
        self.records: dict[str, dict] = {}
        self.excinfo: dict[str, list[dict]] = {}

    def _record(self, nodeid: str, fspath: str) -> dict:
        base = os.path.basename(fspath)
        match = MODULE_RE.match(base)
        return self.records.setdefault(
            nodeid,
            {
                "nodeid": nodeid,
                "file": base,
                "module": match.group(1) if match else None,
                "outcome": "passed",
                "exceptions": [],
                "stub": False,
                "summary": "",
            },
        )

    def pytest_runtest_makereport(self, item, call):
        import pytest  # only ever called inside pytest; `load`/`by_module` work without it

        if call.excinfo is not None and not call.excinfo.errisinstance(
            (pytest.skip.Exception, pytest.xfail.Exception)
        ):
            leaves = _leaves(call.excinfo.value)
            self.excinfo.setdefault(item.nodeid, []).extend(
                {
                    "type": type(e).__name__,
                    "message": str(e),
                    "output": _text(getattr(e, "stderr", None)) + _text(getattr(e, "output", None)),
                }
                for e in leaves
            )

    def pytest_runtest_logreport(self, report):
        record = self._record(report.nodeid, str(report.fspath))
        if report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
        if report.failed:
            record["outcome"] = "failed"
            record.setdefault("captured", "")
            record["captured"] += report.capstderr + report.capstdout
            if not record["summary"]:
                record["summary"] = _summary(report)

    def pytest_collectreport(self, report):
        if report.failed:
            record = self._record(report.nodeid or str(report.fspath), str(report.fspath))
            record["outcome"] = "failed"
            text = str(report.longrepr)
            record["summary"] = "\n".join(text.strip().splitlines()[-15:])
            found = re.findall(r"^E\s+(\w+): (.*)$", text, flags=re.M)
            record["exceptions"] = [{"type": t, "message": m} for t, m in found] or [
                {"type": "CollectionError", "message": text.strip().splitlines()[-1] if text.strip() else ""}
            ]
            record["stub"] = all(is_stub(e["type"], e["message"]) for e in record["exceptions"])
            record["stub_modules"] = sorted(set(STUB_MODULE_RE.findall(text)))

    def pytest_sessionfinish(self, session, exitstatus):
        for nodeid, record in self.records.items():
            captured = record.pop("captured", "")
            record.setdefault("stub_modules", [])
            if nodeid in self.excinfo and record["outcome"] == "failed":
                record["exceptions"] = self.excinfo[nodeid]
                texts = [f"{e['message']}\n{e.pop('output', '')}\n{captured}" for e in record["exceptions"]]
                record["stub"] = bool(record["exceptions"]) and all(
                    is_stub(e["type"], e["message"], text) for e, text in zip(record["exceptions"], texts)
                )
                found = {m for text in texts for m in STUB_MODULE_RE.findall(text)}
                record["stub_modules"] = sorted(found)
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(list(self.records.values()), f, indent=1)


def _summary(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return f"{os.path.basename(crash.path)}:{crash.lineno}: {crash.message}"
    return "\n".join(str(report.longrepr).strip().splitlines()[-5:])


def pytest_configure(config):
    path = os.environ.get(ENV)
    if path:
        config.pluginmanager.register(Outcomes(os.path.abspath(path)), "tinytorch-outcomes")


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def by_module(records: list[dict]) -> dict[str, dict]:
    """{module number or file name: {passed, failed, skipped, first_failure, stub_only}}."""
    out: dict[str, dict] = {}
    for r in records:
        key = r["module"] or r["file"]
        entry = out.setdefault(
            key, {"passed": 0, "failed": 0, "skipped": 0, "first_failure": None, "stub_only": True}
        )
        entry[r["outcome"]] += 1
        if r["outcome"] == "failed":
            entry["stub_only"] = entry["stub_only"] and r["stub"]
            if entry["first_failure"] is None:
                entry["first_failure"] = {"test": r["nodeid"], "summary": r["summary"]}
    return out
