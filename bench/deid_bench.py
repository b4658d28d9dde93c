"""De-identification throughput: dicomhub against dicognito, dicom-anonymizer and the limit.

Usage: python bench/deid_bench.py [--instances N] [--rounds R] [--peers-python PY] [--json OUT]

Writes N synthetic CT files (512x512, PHI planted in names, dates, free text, a private
block and nested sequences), then, on that corpus and in the same run, times four tools
each reading every file, de-identifying it and writing it (to memory):

* ``limit``: pydicom ``dcmread`` + ``save_as`` unchanged, the ceiling for any
  pydicom-based de-identifier;
* ``dicomhub``: the engine with the TCIA-like recipe (Basic Profile with modified dates,
  safe private, clean descriptors; the whole Table E.1-1 applied, patients mapped);
* ``dicognito`` 0.19 (``Anonymizer().anonymize``) and ``dicom-anonymizer`` 2.1
  (``anonymize_dataset``), each with its defaults, in a separate virtualenv (never a
  dependency of the project; made under /tmp on first use with pip).

Each tool runs in its own process(es), first on one core (pinned), then as 2 worker
processes over halves of the corpus (scaling); a few files are processed untimed first
so that imports and caches are warm for all alike. ``python -m dicognito -o DIR`` (its
command line, start-up included) is timed too, for orientation. Rounds interleave the
tools; the median of each is reported, with CPU time (fairer on a shared machine).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

if TYPE_CHECKING:  # numpy is imported where it is used: the peers' virtualenv has none
    import numpy as np

PEERS_VENV = Path(tempfile.gettempdir()) / "dicomhub-bench-peers"
PEERS = ("dicognito==0.19.0", "dicom-anonymizer==2.1.0")
TOOLS = ("limit", "dicomhub", "dicognito", "dicom-anonymizer")
WARMUP = 5


def make_ct(i: int, rng: np.random.Generator) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.840.99999.1.3.{i}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, kw, "20200115")
    for kw in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"):
        setattr(ds, kw, "101600")
    ds.AcquisitionDateTime = "20200115101600.123456-0500"
    ds.AccessionNumber = "ACC998877"
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = "General Hospital"
    ds.ReferringPhysicianName = "Smith^Jane"
    ds.StationName = "CT01"
    ds.StudyDescription = "CT chest for John Doe 2020-01-15"
    ds.SeriesDescription = "AXIAL 5mm"
    ds.OperatorsName = "Tech^Tom"
    ds.ManufacturerModelName = "LightSpeed"
    ds.PatientName = "Doe^John"
    ds.PatientID = "MRN12345"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "M"
    ds.PatientAge = "060Y"
    ds.PatientWeight = "80"
    ds.SliceThickness = "5"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "SN123"
    ds.SoftwareVersions = "1.0"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = "1.2.840.99999.1.1"
    ds.SeriesInstanceUID = "1.2.840.99999.1.2"
    ds.StudyID = "S1"
    ds.SeriesNumber = "2"
    ds.InstanceNumber = str(i + 1)
    ds.ImagePositionPatient = [0, 0, -i * 5.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = "1.2.840.99999.1.4"
    ds.SliceLocation = str(-i * 5.0)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 512
    ds.Columns = 512
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = f"1.2.840.99999.1.3.{max(i - 1, 0)}"
    ds.ReferencedImageSequence = Sequence([ref])
    req = Dataset()
    req.RequestedProcedureID = "RP1"
    req.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = Sequence([req])
    block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x01, "LO", "DOE^JOHN MRN12345")
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    for elem in range(0x20, 0x40):
        block.add_new(elem, "DS", "1.5")
    ds.PixelData = rng.integers(0, 4096, (512, 512), dtype="uint16").tobytes()
    return ds


def bench_recipe() -> Any:
    """The TCIA-like recipe: whole table, modified dates, safe private, clean descriptors."""
    from dicomhub.core.deid import Recipe

    return Recipe(
        kit_id="bench",
        uid_root="1.2.826.0.1.3680043.10.999",
        uid_secret="bench-secret-0123456789",
        date_offset_days=-3210,
        retain_long_modified_dates=True,
        retain_safe_private=True,
        clean_descriptors=True,
        body_part_examined="CHEST",
    )


def make_corpus(folder: Path, n: int, *, first: int = 0, seed: int = 0) -> list[Path]:
    """``n`` CT files named by index; ``first`` shifts the UIDs (a fresh corpus per round)."""
    import numpy

    rng = numpy.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(first, first + n):
        path = folder / f"ct{i:06d}.dcm"
        make_ct(i, rng).save_as(path, enforce_file_format=True)
        files.append(path)
    return files


# -- the driver: one tool over some files, in this process --------------------------------


def _step(tool: str) -> Callable[[Dataset], object] | None:
    if tool == "limit":
        return None
    if tool == "dicomhub":
        from dicomhub.core.deid import Deidentifier

        return Deidentifier(bench_recipe(), patients={"MRN12345": ("BENCH-0001", None)})
    if tool == "dicognito":
        from dicognito.anonymizer import Anonymizer  # type: ignore[import-not-found]

        return Anonymizer(seed="bench").anonymize  # type: ignore[no-any-return]
    if tool == "dicom-anonymizer":
        from dicomanonymizer import anonymize_dataset  # type: ignore[import-not-found]

        return anonymize_dataset  # type: ignore[no-any-return]
    raise SystemExit(f"unknown tool {tool}")


def _one(path: Path, step: Callable[[Dataset], object] | None) -> None:
    ds = dcmread(path)
    if step is not None:
        step(ds)
    ds.save_as(io.BytesIO(), enforce_file_format=True)


def _drive(tool: str, files: list[Path], core: int | None) -> dict[str, float]:
    """Warm up, then time ``files``; wall-clock start/end and CPU seconds."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    step = _step(tool)
    for path in files[:WARMUP]:
        _one(path, step)
    start, cpu = time.time(), time.process_time()
    for path in files:
        _one(path, step)
    return {"start": start, "end": time.time(), "cpu": time.process_time() - cpu}


def driver(tool: str, workers: int, listing: Path) -> None:
    """Run ``tool`` over the listed files in ``workers`` processes; print one JSON line."""
    files = [Path(line) for line in listing.read_text().splitlines() if line]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if workers == 1:
        parts = [_drive(tool, files, cores[0] if cores else None)]
    else:
        import multiprocessing

        chunks = [files[k::workers] for k in range(workers)]
        pin = [cores[k % len(cores)] if cores else None for k in range(workers)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.starmap(_drive, [(tool, c, p) for c, p in zip(chunks, pin, strict=True)])
    wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    cpu = sum(p["cpu"] for p in parts)
    print(json.dumps({"n": len(files), "wall": wall, "cpu": cpu}))


# -- the run --------------------------------------------------------------------------------


def peers_python(given: Path | None) -> Path | None:
    """The peers' virtualenv python, made with pip on first use; None if it cannot be."""
    if given is not None:
        return given
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {PEERS_VENV} with {', '.join(PEERS)} (once)", file=sys.stderr)
        made = subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=False)
        if made.returncode == 0:
            made = subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS],
                                  check=False)  # fmt: skip
        if made.returncode != 0:
            print("cannot install the peers: they are left out", file=sys.stderr)
            return None
    return python


def run_tool(python: Path, tool: str, workers: int, listing: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    if tool in ("dicognito", "dicom-anonymizer"):
        env.pop("PYTHONPATH")
    done = subprocess.run(
        [str(python), __file__, "--driver", tool, "--workers", str(workers), str(listing)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def dicognito_cli(python: Path, corpus: Path, out: Path) -> float:
    """Instances/s of ``python -m dicognito -o OUT CORPUS``, start-up included (one core)."""
    out.mkdir()
    cores = sorted(os.sched_getaffinity(0))[:1] if hasattr(os, "sched_getaffinity") else []
    pin = ["taskset", "-c", str(cores[0])] if cores and _has("taskset") else []
    count = len(list(corpus.glob("*.dcm")))
    start = time.perf_counter()
    subprocess.run([*pin, str(python), "-m", "dicognito", "--quiet", "--seed", "bench",
                    "-o", str(out), str(corpus)], check=True, capture_output=True)  # fmt: skip
    return count / (time.perf_counter() - start)


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    peers = peers_python(args.peers_python)
    tools = [t for t in TOOLS if peers is not None or t in ("limit", "dicomhub")]
    rates: dict[tuple[str, int], list[dict[str, float]]] = {}
    cli: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        files = make_corpus(corpus, args.instances)
        listing = Path(tmp) / "files.txt"
        listing.write_text("\n".join(map(str, files)))
        for path in files:  # into the page cache, for all alike
            path.read_bytes()
        for r in range(args.rounds):
            for workers in (1, 2):
                for tool in tools:
                    python = peers if tool in ("dicognito", "dicom-anonymizer") else None
                    figures = run_tool(python or Path(sys.executable), tool, workers, listing)
                    rates.setdefault((tool, workers), []).append(figures)
            if peers is not None:
                cli.append(dicognito_cli(peers, corpus, Path(tmp) / f"cli{r}"))
    return report(args.instances, args.rounds, rates, cli)


def report(
    n: int, rounds: int, rates: dict[tuple[str, int], list[dict[str, float]]], cli: list[float]
) -> dict[str, Any]:
    def median(tool: str, workers: int, key: str) -> float:
        runs = rates.get((tool, workers), [])
        if not runs:
            return float("nan")
        return statistics.median(r["n"] / r[key] for r in runs)

    result: dict[str, Any] = {"instances": n, "rounds": rounds, "tools": {}}
    for tool in TOOLS:
        if (tool, 1) not in rates:
            continue
        result["tools"][tool] = {
            "one_core": median(tool, 1, "wall"),
            "one_core_cpu": median(tool, 1, "cpu"),
            "two_workers": median(tool, 2, "wall"),
        }
    if cli:
        result["dicognito_cli"] = statistics.median(cli)
    return result


def print_report(result: dict[str, Any]) -> None:
    tools = result["tools"]
    ours = tools["dicomhub"]
    limit = tools["limit"]
    print(f"de-identification, {result['instances']} CT 512x512 files, read + de-identify + "
          f"write, median of {result['rounds']} interleaved rounds")  # fmt: skip
    print(f"{'tool':<20}{'1 core/s':>10}{'CPU/s':>9}{'2 workers/s':>13}{'scaling':>9}"
          f"{'of limit':>10}{'dicomhub x':>12}")  # fmt: skip
    for name, t in tools.items():
        scaling = t["two_workers"] / t["one_core"]
        of_limit = t["one_core"] / limit["one_core"]
        times = ours["one_core"] / t["one_core"]
        print(f"{name:<20}{t['one_core']:>10.1f}{t['one_core_cpu']:>9.1f}{t['two_workers']:>13.1f}"
              f"{scaling:>8.2f}x{of_limit:>10.0%}{times:>11.2f}x")  # fmt: skip
    if "dicognito_cli" in result:
        cli = result["dicognito_cli"]
        print(f"python -m dicognito -o DIR (start-up included, one core): {cli:.1f}/s; "
              f"dicomhub {ours['one_core'] / cli:.2f}x")  # fmt: skip
    for peer in ("dicognito", "dicom-anonymizer"):
        if peer in tools:
            ratio = ours["one_core"] / tools[peer]["one_core"]
            cpu = ours["one_core_cpu"] / tools[peer]["one_core_cpu"]
            verdict = "met" if ratio >= 2 else "NOT met"
            print(f"goal dicomhub >= 2x {peer} on one core: {ratio:.2f}x wall, {cpu:.2f}x CPU "
                  f"({verdict})")  # fmt: skip
    scaling = ours["two_workers"] / ours["one_core"]
    print(f"dicomhub scaling to 2 workers: {scaling:.2f}x (the limit: "
          f"{limit['two_workers'] / limit['one_core']:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=None,
        help="A python with dicognito and dicom-anonymizer installed.",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--driver", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("listing", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        driver(args.driver, args.workers, args.listing)
        return
    result = measure(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
