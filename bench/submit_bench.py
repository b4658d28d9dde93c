"""End-to-end submission against de-identification only, on the de-identification corpus.

Usage: python bench/submit_bench.py [--instances N] [--rounds R] [--workers W] [--batch B]
[--threads T] [--json OUT]

Starts the real intake, ``dicomhub serve intake`` in its own process, over HTTPS on
loopback (a private CA and certificate made here; SQLite and the filesystem store, the
embedded default), makes a kit with ``dicomhub kits create`` and then, each round on a
fresh copy of the synthetic CT corpus of ``deid_bench.py`` (new UIDs each round):

* de-identify only: the submitter pipeline's dry run (worker processes read,
  de-identify and write every file; nothing is sent);
* end to end: the real run (the same de-identification, STOW-RS batches to the intake,
  then verification of every instance's sha256 against the intake's inventory);
* send only: the de-identified files of the dry run, STOW-RS as the pipeline batches
  them (same batch size and threads), nothing else: the intake's own pace, which bounds
  the end-to-end rate.

Rates are instances/s over each whole run (pool start-up and, end to end, the final
verification included). The goal is end to end at ≥ 70% of de-identify only. The intake
shares the machine's cores with the submitter, as it would not at a real site.

CPU time per instance is measured too, per part (from ``/proc``, Linux only): the
submitter's own process (scan, state database, STOW client and TLS), its de-identification
workers (the forkserver's reaped children) and the intake. On a shared machine the rates
follow whatever share of the cores each run gets; the CPU times do not, and their ratio
(de-identify only over end to end, all parts) is what the rate ratio tends to when both
runs have the cores to themselves.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from deid_bench import make_corpus  # noqa: E402

from dicomhub.submit.idmap import load_idmap  # noqa: E402
from dicomhub.submit.kit import Kit, load_kit  # noqa: E402
from dicomhub.submit.pipeline import Options, Pipeline  # noqa: E402
from dicomhub.submit.upload import Part, StowClient, make_client  # noqa: E402
from dicomhub.submit.verify import fetch_inventory  # noqa: E402

SECRET = "submit-bench-secret-key-0123456789"
UID_ROOT = "1.2.826.0.1.3680043.10.997"
COLLECTION, SITE = "BENCH", "SITE-1"
WARM_UP = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the intake exited with {proc.returncode}")
        with socket.socket() as sock, suppress(OSError):
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port}")


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1: (cert, key, CA bundle)."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, bundle = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return cert, key, bundle


def dicomhub(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dicomhub", *args], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"dicomhub {' '.join(args[:2])}: {done.stdout}{done.stderr}")
    return done.stdout


def _stat_seconds(pid: int | str, *, own: bool = True, children: bool = False) -> float:
    """CPU seconds of a process from ``/proc/PID/stat``: its own, its reaped children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    ticks = (utime + stime if own else 0) + (cutime + cstime if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_times(intake_pid: int) -> dict[str, float] | None:
    """CPU seconds so far: this process, its other children (the workers), the intake.

    Pool workers are children of the forkserver, which reaps them: once a pool has shut
    down, their time is in the forkserver's children's time (the forkserver's own, its
    start-up imports, is left out: it is paid once per process, not per run).
    """
    if not Path("/proc/self/stat").exists():
        return None
    me = str(os.getpid())
    workers = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(intake_pid):
            continue
        with suppress(OSError, IndexError, ValueError):
            if (entry / "stat").read_text().rpartition(")")[2].split()[1] == me:
                workers += _stat_seconds(entry.name, own=False, children=True)
    return {
        "submitter": _stat_seconds("self"),
        "workers": workers,
        "intake": _stat_seconds(intake_pid, children=True),
    }


@dataclass
class Served:
    """The running intake: a kit for it and its process id."""

    kit: Kit
    pid: int


@contextmanager
def intake(work: Path) -> Iterator[Served]:
    """``dicomhub serve intake`` over HTTPS, and a kit for it made by ``dicomhub kits``."""
    port = free_port()
    cert, key, bundle = certificates(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    db = f"sqlite:///{work / 'dicomhub.sqlite3'}"
    env.update(
        DICOMHUB_DATA_DIR=str(work / "var"), DICOMHUB_INTAKE_DATABASE_URL=db,
        DICOMHUB_PUBLIC_DATABASE_URL=db, DICOMHUB_SECRET_KEY=SECRET,
        DICOMHUB_UID_ROOT=UID_ROOT, DICOMHUB_INTAKE_HOST="127.0.0.1",
        DICOMHUB_INTAKE_PORT=str(port), DICOMHUB_INTAKE_TLS_CERT=str(cert),
        DICOMHUB_INTAKE_TLS_KEY=str(key), DICOMHUB_LOG_LEVEL="WARNING",
    )  # fmt: skip
    dicomhub(env, "db", "upgrade")
    dicomhub(env, "users", "add", "bench-site", "--no-password", "--role", "submitter",
             "--collection", COLLECTION, "--site", SITE)  # fmt: skip
    made = dicomhub(env, "tokens", "create", "bench-site", "--role", "submitter",
                    "--collection", COLLECTION, "--site", SITE)  # fmt: skip
    token = made.strip().splitlines()[-1].strip()
    kit_path = work / "kit.json"
    dicomhub(env, "kits", "create", "--collection", COLLECTION, "--site", SITE, "--token", token,
             "--intake-url", f"https://127.0.0.1:{port}", "--ca-bundle", str(bundle),
             "--out", str(kit_path))  # fmt: skip
    log = (work / "intake.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dicomhub", "serve", "intake"], env=env,
                            stdout=log, stderr=log)  # fmt: skip
    try:
        wait_port(port, proc)
        yield Served(load_kit(kit_path), proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def write_idmap(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submitter_patient_id", "archive_patient_id", "archive_patient_name"])
        writer.writerow(["MRN12345", f"{COLLECTION}-{SITE}-0001", ""])
    return path


def deidentify_only(kit: Kit, idmap: Path, corpus: Path, work: Path, workers: int) -> float:
    options = Options(folders=[corpus], work=work, workers=workers, dry_run=True,
                      out=work / "out")  # fmt: skip
    summary = Pipeline(kit, load_idmap(idmap), options).run()
    assert summary.complete, summary.to_dict()
    return summary.deidentified_this_run / summary.seconds


def end_to_end(
    kit: Kit, idmap: Path, corpus: Path, work: Path, workers: int, batch: int, threads: int
) -> float:
    body = kit.body
    with make_client(body.intake_url, body.credential.get_secret_value(), body.ca_bundle) as http:
        options = Options(folders=[corpus], work=work, workers=workers, batch_size=batch,
                          upload_threads=threads)  # fmt: skip
        pipeline = Pipeline(kit, load_idmap(idmap), options, stow=StowClient(http),
                            inventory=lambda: fetch_inventory(http).sha256)  # fmt: skip
        summary = pipeline.run()
    assert summary.complete, summary.to_dict()
    assert summary.unverified is None, summary.unverified
    return summary.stages["verified"] / summary.seconds


def send_only(kit: Kit, folder: Path, batch: int, threads: int) -> float:
    """STOW-RS of already de-identified files, as the pipeline batches them: the intake's pace."""
    parts = []
    for i, path in enumerate(sorted(folder.rglob("*.dcm"))):
        uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        parts.append(Part(i, uid, path, path.stat().st_size))
    batches = [parts[i : i + batch] for i in range(0, len(parts), batch)]
    body = kit.body
    with make_client(body.intake_url, body.credential.get_secret_value(), body.ca_bundle) as http:
        stow = StowClient(http)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(stow.store, batches))
        seconds = time.perf_counter() - start
    stored = sum(len(r.stored) for r in results)
    assert stored == len(parts), [r.failed for r in results if r.failed][:1]
    return stored / seconds


class CpuMeter:
    """CPU milliseconds per instance of each part, summed over the rounds of one mode."""

    def __init__(self, intake_pid: int) -> None:
        self.intake_pid = intake_pid
        self.totals: dict[str, dict[str, float]] = {}
        self.instances: dict[str, int] = {}

    @contextmanager
    def phase(self, mode: str, instances: int) -> Iterator[None]:
        before = cpu_times(self.intake_pid)
        yield
        after = cpu_times(self.intake_pid)
        if before is None or after is None:
            return
        total = self.totals.setdefault(mode, dict.fromkeys(before, 0.0))
        for part in before:
            total[part] += after[part] - before[part]
        self.instances[mode] = self.instances.get(mode, 0) + instances

    def per_instance(self) -> dict[str, dict[str, float]]:
        return {
            mode: {part: 1000 * cpu / self.instances[mode] for part, cpu in parts.items()}
            for mode, parts in self.totals.items()
        }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    deid: list[float] = []
    e2e: list[float] = []
    send: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, intake(Path(tmp)) as served:
        kit, meter = served.kit, CpuMeter(served.pid)
        idmap = write_idmap(Path(tmp) / "map.csv")
        # Untimed: the worker pool's forkserver starts (and imports the engine) once per
        # process, which would otherwise be charged to the first de-identify-only run.
        make_corpus(Path(tmp) / "warm-up", WARM_UP, first=1, seed=99)
        deidentify_only(kit, idmap, Path(tmp) / "warm-up", Path(tmp) / "warm-up-out", args.workers)
        for r in range(args.rounds):
            # two corpora alike but for their UIDs: one sent end to end, one de-identified
            # only (its output then sent as is, to show the intake's own pace)
            corpora = []
            for k in range(2):
                corpus = Path(tmp) / f"corpus{r}-{k}"
                first = (2 * r + k + 1) * 1_000_000
                for path in make_corpus(corpus, args.instances, first=first, seed=r):
                    path.read_bytes()
                corpora.append(corpus)
            dry = Path(tmp) / f"dry{r}"
            with meter.phase("deidentify_only", args.instances):
                deid.append(deidentify_only(kit, idmap, corpora[1], dry, args.workers))
            with meter.phase("end_to_end", args.instances):
                e2e.append(end_to_end(kit, idmap, corpora[0], Path(tmp) / f"run{r}",
                                      args.workers, args.batch, args.threads))  # fmt: skip
            with meter.phase("send_only", args.instances):
                send.append(send_only(kit, dry / "out", args.batch, args.threads))
    cpu = meter.per_instance()
    result: dict[str, Any] = {
        "instances": args.instances,
        "rounds": args.rounds,
        "workers": args.workers,
        "batch": args.batch,
        "threads": args.threads,
        "deidentify_only": statistics.median(deid),
        "end_to_end": statistics.median(e2e),
        "send_only": statistics.median(send),
        "ratio": statistics.median(e / d for e, d in zip(e2e, deid, strict=True)),
        "runs": {"deidentify_only": deid, "end_to_end": e2e, "send_only": send},
        "cpu_ms_per_instance": cpu,
    }
    if "deidentify_only" in cpu and "end_to_end" in cpu:
        alone, sent = cpu["deidentify_only"], cpu["end_to_end"]
        result["cpu_ratio"] = sum(alone.values()) / sum(sent.values())
        # what the submitter's own cores would allow, the intake running elsewhere
        result["cpu_ratio_intake_apart"] = sum(alone.values()) / (
            sent["submitter"] + sent["workers"]
        )
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"submission, {result['instances']} CT 512x512 files, {result['workers']} workers, "
          f"batches of {result['batch']} on {result['threads']} connections, "
          f"median of {result['rounds']} rounds")  # fmt: skip
    print(f"{'run':<54}{'inst/s':>8}")
    print(f"{'de-identify only (dry run)':<54}{result['deidentify_only']:>8.1f}")
    print(f"{'end to end (HTTPS to serve intake, verified)':<54}{result['end_to_end']:>8.1f}")
    print(f"{'send only (de-identified files, STOW-RS as batched)':<54}{result['send_only']:>8.1f}")
    verdict = "met" if result["ratio"] >= 0.7 else "NOT met"
    print(f"end to end / de-identify only: {result['ratio']:.1%} (goal >= 70%: {verdict})")
    print(f"end to end / send only (the intake's pace): "
          f"{result['end_to_end'] / result['send_only']:.1%}")  # fmt: skip
    cpu = result.get("cpu_ms_per_instance") or {}
    if cpu:
        print(f"{'CPU ms per instance':<28}{'submitter':>10}{'workers':>10}{'intake':>10}"
              f"{'all':>10}")  # fmt: skip
        for mode, parts in cpu.items():
            name = mode.replace("_", " ")
            print(f"{name:<28}{parts['submitter']:>10.2f}{parts['workers']:>10.2f}"
                  f"{parts['intake']:>10.2f}{sum(parts.values()):>10.2f}")  # fmt: skip
    if "cpu_ratio" in result:
        print(f"CPU-bound ceiling (de-identify only CPU / end to end CPU, all parts on the same "
              f"cores): {result['cpu_ratio']:.1%}; the intake on other cores: "
              f"{result['cpu_ratio_intake_apart']:.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=Options([], Path()).batch_size)
    parser.add_argument(
        "--threads",
        type=int,
        default=Options([], Path()).upload_threads,
        help="Concurrent STOW-RS requests (the pipeline's upload threads).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    result = measure(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
