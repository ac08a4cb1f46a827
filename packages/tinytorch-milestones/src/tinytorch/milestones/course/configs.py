"""The course configurations of DESIGN.md section 3, with the commands each one needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    builds: tuple[str, ...]  # tiers the students write (student releases)
    prebuilt: tuple[str, ...]  # tiers installed as reference wheels
    milestones: str

    def commands(self, version: str, wheelhouse: str | None = None) -> list[str]:
        """The instructor's and the students' commands, installing the prebuilt tiers from a wheelhouse.

        ``wheelhouse``: the URL (or folder) the course serves ``tito course wheelhouse`` output
        from; without it the lines say ``URL`` where it goes.
        """
        from tinytorch.milestones.course.wheelhouse import index_url

        simple = index_url(wheelhouse) if wheelhouse else "URL/simple"
        lines = [
            "tito course wheelhouse --out wheelhouse   # instructor, once per version: reference wheels, "
            "sdists and a package index; host the folder (URL)",
        ]
        lines += [f"tito course release --tier {t} --out student-{t}" for t in self.builds]
        lines.append("python -m venv .venv && . .venv/bin/activate")
        prebuilt = " ".join(f"tinytorch-{t}=={version}" for t in self.prebuilt)
        lines.append(
            f"pip install --extra-index-url {simple} {prebuilt + ' ' if prebuilt else ''}"
            f"tinytorch-milestones=={version} pytest hypothesis   # prebuilt tiers, tito, test tools"
        )
        lines.append("pip install --no-deps " + " ".join(f"-e ./student-{t}" for t in self.builds)
                     + "   # the students' tiers, editable")
        lines.append("tito module status                 # which modules are complete, which tests pass")
        return lines


CONFIGS = (
    Config("Foundation only", ("foundation",), (), "01-03"),
    Config("Foundation + Architecture", ("foundation", "architecture"), (), "01-05"),
    Config("Architecture focus", ("architecture",), ("foundation",), "01-05"),
    Config("Optimization focus", ("optimization",), ("foundation", "architecture"), "01-06"),
)

MODULE_RANGES = {"foundation": "01-07", "architecture": "08-13", "optimization": "14-20"}


def table() -> list[list[str]]:
    rows = [["configuration", "student builds", "imports prebuilt", "milestones unlocked"]]
    for c in CONFIGS:
        builds = (
            ", ".join(c.builds) + f" ({MODULE_RANGES[c.builds[0]][:2]}-{MODULE_RANGES[c.builds[-1]][-2:]})"
        )
        rows.append([c.name, builds, ", ".join(c.prebuilt) or "-", c.milestones])
    return rows


def render(version: str, wheelhouse: str | None = None) -> str:
    rows = table()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    for c in CONFIGS:
        out += ["", f"{c.name}:"]
        out += [f"  {line}" for line in c.commands(version, wheelhouse)]
    return "\n".join(out)
