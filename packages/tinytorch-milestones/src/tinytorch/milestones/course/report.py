"""Grade reports as text, JSON, CSV, Gradescope ``results.json``, and the class gradebook.

Every failure line names the module, the test and the function it points at (where the
submission raised, else the solution functions the test exercises), then the error with
its assertion diff, so a student knows what to fix.
"""

from __future__ import annotations

import csv
import io
import json

from tinytorch.milestones.tiers import MODULES

FORMATS = ("table", "json", "csv", "gradescope")
EXTENSIONS = {"table": ".txt", "json": ".json", "csv": ".csv", "gradescope": ".json"}
# Gradescope shows hidden tests to students only once the grades are published.
VISIBILITY = {"visible": "visible", "hidden": "after_published"}
NAMES = {m.number: m.name for m in MODULES}


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def failure_line(test: dict) -> str:
    """``Module 09 (spatial) · test_x[1] · Conv2d.forward: <first line of the message>``."""
    head = f"Module {test['module']} ({NAMES.get(test['module'], '?')}) · {test['name']}"
    if test.get("function"):
        head += f" · {test['function']}"
    return head


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def render_table(report: dict, *, show_hidden_details: bool = True, max_failures: int = 40) -> str:
    name = report.get("name") or report.get("submission", "submission")
    modules = report["modules_graded"]
    span = modules[0] if len(modules) == 1 else f"{modules[0]}-{modules[-1]}"
    lines = [
        f"grade of {name} (tinytorch-{'+'.join(report['tiers'])}, "
        f"module{'s' if len(modules) > 1 else ''} {span}): "
        f"{_num(report['score'])} / {_num(report['max_score'])} ({report['percent']}%)   "
        f"visible {_num(report['visible']['score'])}/{_num(report['visible']['max'])}   "
        f"hidden {_num(report['hidden']['score'])}/{_num(report['hidden']['max'])}",
        "",
        f"  {'module':<18} {'score':>13} {'visible':>13} {'hidden':>11} {'tests passed':>13}",
    ]
    for m in report["modules"]:
        mark = "ok" if m["score"] >= m["max"] and m["max"] > 0 else "  "
        lines.append(
            f"{mark} {m['module']} {m['name']:<15} {_num(m['score']):>6}/{_num(m['max']):<6} "
            f"{_num(m['visible']['score']):>6}/{_num(m['visible']['max']):<6} "
            f"{_num(m['hidden']['score']):>5}/{_num(m['hidden']['max']):<5} "
            f"{m['passed']:>6}/{m['passed'] + m['failed']:<6}"
        )
    if report["errors"]:
        lines += ["", "errors (a module that does not import scores zero):"]
        lines += [f"  {e}" for e in report["errors"]]
    if report["integrity"]:
        lines += ["", "integrity violations (the tests during which they happened failed):"]
        lines += [f"  {e}" for e in report["integrity"]]
    if report["timeouts"] or report["overtime"]:
        lines += ["", "timeouts:"]
        lines += [f"  {t}" for t in report["timeouts"]]
        if report["overtime"]:
            lines.append("  the submission's time limit ran out; the tests not run score zero")
    stubs = [(m, s) for m in report["modules"] for s in m["stubs"]]
    if stubs:
        lines += ["", "still to write (stubs):"]
        for m in report["modules"]:
            if m["stubs"]:
                lines.append(f"  Module {m['module']} ({m['name']}): {', '.join(m['stubs'])}")
    for visibility in ("visible", "hidden"):
        failed = [t for t in report["tests"] if t["outcome"] != "passed" and t["visibility"] == visibility]
        if not failed:
            continue
        lines += ["", f"failed {visibility} tests ({len(failed)}):"]
        for test in failed[:max_failures]:
            lines.append(f"  {failure_line(test)}")
            if visibility == "visible" or show_hidden_details:
                lines.append(_indent(test["message"]))
        if len(failed) > max_failures:
            lines.append(f"  ... and {len(failed) - max_failures} more")
    return "\n".join(lines)


def render_json(report: dict) -> str:
    return json.dumps(report, indent=1)


def render_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["test", "module", "visibility", "outcome", "points", "max_points", "function", "message"]
    )
    for t in report["tests"]:
        writer.writerow(
            [t[k] for k in ("test", "module", "visibility", "outcome", "points", "max_points", "function")]
            + [t["message"]]
        )
    return out.getvalue()


def gradescope(report: dict) -> dict:
    """Gradescope's autograder results: one entry per module and visibility, with the failures as output."""
    tests = []
    for m in report["modules"]:
        for visibility in ("visible", "hidden"):
            part = m[visibility]
            if part["max"] == 0 and not (visibility == "visible" and m["import_error"]):
                continue
            failed = [
                t
                for t in report["tests"]
                if t["module"] == m["module"] and t["visibility"] == visibility and t["outcome"] != "passed"
            ]
            output = [f"{part['passed']} of {part['passed'] + part['failed']} tests passed"]
            if m["import_error"]:
                output.append(f"the module does not import: {m['import_error']}")
            if m["stubs"] and visibility == "visible":
                output.append(f"still to write: {', '.join(m['stubs'])}")
            for t in failed[:25]:
                output += [f"- {failure_line(t)}", _indent(t["message"], "    ")]
            if len(failed) > 25:
                output.append(f"... and {len(failed) - 25} more")
            label = "visible tests" if visibility == "visible" else "hidden tests"
            tests.append(
                {
                    "name": f"Module {m['module']} ({m['name']}): {label}",
                    "score": part["score"],
                    "max_score": part["max"],
                    "output": "\n".join(output),
                    "visibility": VISIBILITY[visibility],
                }
            )
    summary = [
        f"TinyTorch grade: {_num(report['score'])} / {_num(report['max_score'])} "
        f"(visible {_num(report['visible']['score'])}/{_num(report['visible']['max'])}, "
        f"hidden {_num(report['hidden']['score'])}/{_num(report['hidden']['max'])})"
    ]
    summary += [f"error: {e}" for e in report["errors"]]
    summary += [f"integrity: {e}" for e in report["integrity"]]
    if report["overtime"]:
        summary.append("the submission's time limit ran out; the tests not run score zero")
    return {
        "score": report["score"],
        "output": "\n".join(summary),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "execution_time": report.get("seconds", 0),
        "tests": tests,
    }


def render(report: dict, fmt: str) -> str:
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "gradescope":
        return json.dumps(gradescope(report), indent=1)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def gradebook(reports: list[dict]) -> str:
    """One row per submission: a column per module, the total, visible and hidden parts, problems."""
    modules = []
    for r in reports:
        for m in r["modules"]:
            if m["module"] not in modules:
                modules.append(m["module"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["submission", *[f"{n} {NAMES[n]}" for n in modules], "total", "max", "percent", "visible", "hidden",
         "errors", "integrity", "timeouts"]
    )  # fmt: skip
    for r in reports:
        scores = {m["module"]: m["score"] for m in r["modules"]}
        writer.writerow(
            [
                r.get("name", r.get("submission")),
                *[scores.get(n, "") for n in modules],
                r["score"],
                r["max_score"],
                r["percent"],
                r["visible"]["score"],
                r["hidden"]["score"],
                " | ".join(r["errors"]),
                " | ".join(r["integrity"]),
                len(r["timeouts"]) + (1 if r["overtime"] else 0),
            ]
        )
    return out.getvalue()


def summary_table(reports: list[dict]) -> str:
    """The gradebook as aligned text (several submissions on the terminal)."""
    rows = list(csv.reader(io.StringIO(gradebook(reports))))
    keep = [i for i, h in enumerate(rows[0]) if h not in ("errors", "integrity")]
    rows = [[row[i] for i in keep] for row in rows]
    for row in rows[1:]:
        for i, cell in enumerate(row):
            try:
                row[i] = _num(float(cell))
            except ValueError:
                pass
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in reports:
        found = r["errors"] + r["integrity"]
        for e in found[:3]:
            lines.append(f"{r.get('name')}: {e}")
        if len(found) > 3:
            lines.append(f"{r.get('name')}: ... and {len(found) - 3} more (see its report)")
    return "\n".join(lines)
