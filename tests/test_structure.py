"""The house rules of the package, checked on its source: no import cycles, the product never imports the
local G-Portal, and each stage module sits beside the rule file it serves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "amsr2flow"
REPO = SRC.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = SRC / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Module -> amsr2flow modules it imports (at any depth of the file: lazy imports count too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if not target.startswith("amsr2flow"):
                    continue
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    targets.add(candidate if _is_module(candidate) else target)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("amsr2flow")}
        targets.discard(name)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is not a cycle of the code
            if state.get(target) == 1 and not node.startswith(target + "."):
                found.append([*stack[stack.index(target) :], target])
            elif not state.get(target):
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])
    return found


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_the_product_never_imports_the_local_gportal() -> None:
    offenders = {
        (module, target)
        for module, targets in import_graph().items()
        if not module.startswith("amsr2flow.emulator")
        for target in targets
        if target.startswith("amsr2flow.emulator")
    }
    assert offenders == set()


@pytest.mark.parametrize(
    ("stage", "rule_file"),
    [
        ("catalogue", "catalogue.smk"),
        ("granule", "granules.smk"),
        ("archives", "archives.smk"),
        ("report", "report.smk"),
        ("grid", "grids.smk"),
    ],
)
def test_each_stage_module_serves_its_rule_file(stage: str, rule_file: str) -> None:
    assert (PACKAGE / "stages" / f"{stage}.py").is_file()
    assert (REPO / "workflow" / "rules" / rule_file).is_file()
    scripts = [s.read_text(encoding="utf-8") for s in (REPO / "workflow" / "scripts").glob("*.py")]
    assert any(f"amsr2flow.stages import {stage}" in s or f"amsr2flow.stages.{stage} import" in s for s in scripts)


def test_public_api_and_console_scripts() -> None:
    import amsr2flow

    for name in ("open_archive", "Archive", "to_kelvin", "crop_or_pad", "read_swath", "verify_archive"):
        assert callable(getattr(amsr2flow, name))
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'amsr2flow = "amsr2flow.cli:main"' in pyproject
    assert 'amsr2flow-emulator = "amsr2flow.emulator.__main__:main"' in pyproject


def test_granule_jobs_do_not_import_the_plotting_libraries() -> None:
    """Downloads start lean: what the granule job imports pulls in neither matplotlib nor folium."""
    import subprocess
    import sys

    code = (
        "import sys, amsr2flow.stages.granule, amsr2flow.status, amsr2flow.run.breaker, amsr2flow.config;"
        "print(sorted(m for m in ('matplotlib', 'folium', 'branca', 'PIL') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


RULE_FILES = [*sorted((REPO / "workflow" / "rules").glob("*.smk")), REPO / "workflow" / "Snakefile"]


def test_output_paths_come_from_the_plan() -> None:
    """Rule files name no path by hand: every output, log and target is a `LAYOUT` (amsr2flow.plan) path."""
    for rules in RULE_FILES:
        text = rules.read_text(encoding="utf-8")
        assert not re.search(r"\bOUT\b", text), f"{rules.name}: a hand-made root (OUT)"
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("#", '"""')):
                continue
            # a path literal with a results folder in it ("/reports/", "/swaths/", ...) would be a second definition
            assert not re.search(r"[\"'][^\"']*/(reports|swaths|archives|parts|grids|ledger|manifests|logs)/", line), (
                f"{rules.name}: {stripped}"
            )


def test_a_year_period_is_computed_in_one_place() -> None:
    """Periods, archive names of a year and the years' completeness come from plan.py alone."""
    offenders = []
    for path in [*PACKAGE.rglob("*.py"), *RULE_FILES, *(REPO / "workflow" / "scripts").glob("*.py")]:
        if path == PACKAGE / "plan.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r"def year_periods", r"date\(year, 1, 1\)", r"\bperiod_tag\(", r"def archive_path_for"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(REPO)}: {pattern}")
    assert offenders == []


def test_the_gportal_client_imports_nothing_of_the_run() -> None:
    """gportal/ is a client: its modules take plain values and import nothing of the run (plan, config, run/,
    stages/, the ledger, atomic writes)."""
    outside = {
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith("amsr2flow.gportal")
        for target in targets
        if not target.startswith("amsr2flow.gportal")
    }
    assert outside == set()
