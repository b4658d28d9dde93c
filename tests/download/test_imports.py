"""The downloader installs and runs without the server: its imports, and a run with them hidden."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.download.helpers import check_md5s, manifest_for, series_folders
from tests.download.site import Site
from tests.fixtures.public_data import BRAIN

SRC = Path(__file__).resolve().parents[2] / "src" / "dicomhub"
MODULES = [*sorted((SRC / "download").rglob("*.py")), SRC / "cli" / "download.py"]
#: The base dependencies the downloader may use, besides the standard library.
ALLOWED = {"httpx", "typer", "rich", "pydicom", "pydantic"}
ALLOWED_OWN = ("dicomhub.download", "dicomhub.errors")
SERVER = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pynetdicom",
          "boto3", "botocore", "argon2", "ldap3", "dask", "distributed", "jinja2", "multipart",
          "itsdangerous")  # fmt: skip


def imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_downloader_imports_only_base_dependencies() -> None:
    bad = []
    for path in MODULES:
        for name in imported(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED or top == "__future__":
                continue
            if any(name == own or name.startswith(own + ".") for own in ALLOWED_OWN):
                continue
            bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert bad == []


BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["dicomhub", *{args!r}]
runpy.run_module("dicomhub", run_name="__main__")
"""


def run_without_server(*args: str) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=SERVER, args=list(args))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def test_dicomhub_download_runs_without_the_server_extra(site: Site, tmp_path: Path) -> None:
    helped = run_without_server("--help")
    assert helped.returncode == 0, helped.stderr
    assert "download" in helped.stdout
    assert "serve" not in helped.stdout
    uids = site.catalogue.all_series(BRAIN)[:2]
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    done = run_without_server("download", str(manifest), "--dest", str(dest), "-q")
    assert done.returncode == 0, done.stderr
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    for folder in folders.values():
        check_md5s(folder)
