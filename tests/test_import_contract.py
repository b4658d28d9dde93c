"""The wall, enforced on the source: the public side never imports the intake side.

Intake data may hold PHI.  ``publish`` and ``download`` must not import
``intake`` or ``submit``; ``core`` imports no stage; ``submit`` and ``download``
import without the server extra.  The check reads every module's imports with
``ast``, so a lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dicomhub"
STAGES = ("submit", "intake", "curate", "promote", "publish", "download")
SERVER_ONLY = ("fastapi", "starlette", "sqlalchemy", "alembic", "pynetdicom", "boto3", "uvicorn")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_under(part: str) -> list[Path]:
    return sorted((PACKAGE / part).rglob("*.py"))


def violations(part: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in modules_under(part):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


@pytest.mark.parametrize("stage", ["publish", "download"])
def test_public_side_never_imports_intake_or_submit(stage: str) -> None:
    assert violations(stage, ("dicomhub.intake", "dicomhub.submit")) == []


def test_core_imports_no_stage() -> None:
    forbidden = (*tuple(f"dicomhub.{s}" for s in STAGES), "dicomhub.web", "dicomhub.cli")
    assert violations("core", forbidden) == []


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_only_core(stage: str) -> None:
    others = tuple(f"dicomhub.{s}" for s in STAGES if s != stage)
    assert violations(stage, (*others, "dicomhub.web", "dicomhub.cli")) == []


@pytest.mark.parametrize("stage", ["submit", "download"])
def test_site_side_tools_need_no_server_extra(stage: str) -> None:
    assert violations(stage, SERVER_ONLY) == []


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dicomhub.intake import service\n")
    assert "dicomhub.intake" in imports_of(module)
