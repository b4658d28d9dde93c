"""`dicomhub demo`: set up an embedded instance with a sample collection and run it.

Everything goes through the real code path that exists: migrations, the
synthetic sample generator, and the archive's own services, so the demo always
shows the whole path from submission to publication as far as it is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dicomhub.cli.serve import run
from dicomhub.core.db.migrate import upgrade
from dicomhub.core.tls import ensure_self_signed
from dicomhub.settings import Settings, load_settings

console = Console()


def prepare(settings: Settings, patients: int) -> Settings:
    """Migrate, make TLS keys and the sample; return the settings to serve with."""
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (settings.intake_tls_cert and settings.intake_tls_key):
        cert, key = ensure_self_signed(data_dir / "keys", settings.intake_host)
        settings = settings.model_copy(update={"intake_tls_cert": cert, "intake_tls_key": key})
    for name, url in (("intake", settings.intake_db), ("public", settings.public_db)):
        upgrade(url)
        console.print(f"[green]✓[/green] {name} database ready")
    sample_dir = data_dir / "sample"
    if not (sample_dir / "manifest.json").exists():
        from dicomhub.sample import make_sample

        manifest = make_sample(sample_dir, patients=patients, seed=0, small=True)
        console.print(
            f"[green]✓[/green] sample collection: {len(manifest.files)} files in {sample_dir}"
        )
    else:
        console.print(f"[green]✓[/green] sample collection already in {sample_dir}")
    return settings


def demo(
    patients: Annotated[int, typer.Option(min=1, max=50, help="Sample patients.")] = 3,
    serve: Annotated[bool, typer.Option(help="Run the archive after setting up.")] = True,
) -> None:
    """Set up the embedded demo instance and run it (Ctrl-C stops it)."""
    settings = prepare(load_settings(demo=True), patients)
    console.print(f"data folder: {Path(settings.resolved_data_dir)}")
    if serve:
        run(settings)
