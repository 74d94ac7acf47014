"""`imgcap caption --engine ray`: the same records as the local CLI, from Ray Data batch inference.

Why Ray (Ray Data): it already schedules batches onto a pool of stateful actors across one
machine or a cluster, retries a batch whose worker died, backs off when memory runs short,
reads from any filesystem pyarrow knows (local, s3://, gs://, hdfs://) and writes sharded
JSON or Parquet. The captioner is the only part that is ours: one `Captioner` per actor,
loaded once.

How the model reaches the workers: the driver reads the model folder's files once and puts
them into Ray's object store; each actor writes them into a private temporary folder on its
own machine and loads from there. No worker reads the driver's disk by path, so a cluster
needs no shared filesystem for the model (the photos must be readable by the workers:
local paths on one machine or a shared mount, or URIs such as s3://...).

Resuming: the output folder is read first, and every photo that already has a record there
is skipped (and counted). Records of a run that was interrupted stay valid.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from imgcap_desktop.core.errors import ImgcapError

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'imgcap-desktop[distributed]'"
#: Files larger than this are not part of a model folder (a stray dataset, say).
MAX_MODEL_FILE = 2 * 1024**3


class DistributedError(ImgcapError):
    """A distributed run cannot start: a sentence for the user."""


@dataclass
class RunSummary:
    total: int
    skipped: int
    written: int
    failed: int
    out: Path
    missing: int = 0   # named sources that do not exist or cannot be listed


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the extra, not only the core
    except ImportError as exc:
        raise DistributedError(INSTALL_HINT + ".") from exc
    return ray


# --- inputs --------------------------------------------------------------------------------


def expand_sources(sources: Iterable[str]) -> tuple[list[str], list[str]]:
    """Photo paths and URIs from folders, files, text files of paths and URIs; returns (photos, problems)."""
    from pyarrow import fs as pafs

    from imgcap_desktop.core.images import IMAGE_EXTENSIONS, collect_images

    photos: list[str] = []
    problems: list[str] = []
    for source in sources:
        source = str(source)
        if "://" in source:
            try:
                filesystem, root = pafs.FileSystem.from_uri(source)
                info = filesystem.get_file_info(root)
                if info.type == pafs.FileType.Directory:
                    entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
                    scheme = source.split("://", 1)[0]
                    photos += sorted(f"{scheme}://{e.path}" for e in entries
                                     if e.type == pafs.FileType.File and Path(e.path).suffix.lower() in IMAGE_EXTENSIONS)
                elif info.type == pafs.FileType.File:
                    photos.append(source)
                else:
                    problems.append(f"{source}: no such file or folder")
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds; one sentence
                problems.append(f"{source}: cannot be listed ({exc})")
            continue
        path = Path(source)
        if path.is_file() and path.suffix.lower() in (".txt", ".lst"):
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            more, trouble = expand_sources([line for line in lines if line and not line.startswith("#")])
            photos += more
            problems += trouble
            continue
        if not os.path.lexists(path):
            problems.append(f"{path}: no such file or folder")
            continue
        photos += [str(p) for p in collect_images([path]).images]
    seen: set[str] = set()
    unique = [p for p in photos if not (p in seen or seen.add(p))]
    return unique, problems


def already_done(out: Path) -> set[str]:
    """Photos with a record in ``out`` from an earlier run (a half-written last line is ignored)."""
    done: set[str] = set()
    if not out.is_dir():
        return done
    for shard in out.iterdir():
        if shard.suffix == ".json":
            for line in shard.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    done.add(json.loads(line)["image"])
                except (ValueError, KeyError, TypeError):
                    continue
        elif shard.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                done.update(pq.read_table(shard, columns=["image"]).column("image").to_pylist())
            except Exception:  # noqa: BLE001 - a shard cut short by a kill: its photos run again
                continue
    return done


# --- the model, shipped by value ---------------------------------------------------------


def pack_model(folder: Path, encoder_weights: Path | None) -> dict[str, bytes]:
    """Every file of the model folder (and the encoder weights file, if given), by relative name."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue  # training checkpoints and the like
        if path.stat().st_size > MAX_MODEL_FILE:
            raise DistributedError(f"{path} is larger than any model file; is {folder} a model folder?")
        files[str(relative)] = path.read_bytes()
    if encoder_weights is not None:
        files[f".encoder/{encoder_weights.name}"] = encoder_weights.read_bytes()
    return files


def unpack_model(files: dict[str, bytes]) -> tuple[Path, Path | None]:
    root = Path(tempfile.mkdtemp(prefix="imgcap-model-"))
    encoder = None
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if name.startswith(".encoder/"):
            encoder = target
    return root, encoder


class CaptionActor:
    """One per Ray worker: loads the Captioner once, then captions batches of paths."""

    def __init__(self, model_files, decode: dict[str, Any], threads: int = 1):
        # As many threads as the CPUs Ray gave this actor: two actors with a thread per core
        # each on two cores ran slower than one actor (measured by benchmarks/bench_ray.py).
        for name in ("IMGCAP_THREADS", "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(name, str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
        from imgcap_desktop.core.captioner import Captioner

        ray = import_ray()
        files = ray.get(model_files) if isinstance(model_files, ray.ObjectRef) else model_files
        folder, encoder = unpack_model(files)
        self.captioner = Captioner.load(folder, encoder_weights=encoder)
        self.decode = decode
        self.scratch = Path(tempfile.mkdtemp(prefix="imgcap-photos-"))
        pid_file = os.environ.get("IMGCAP_RAY_PID_FOLDER")
        if pid_file:  # for the tests that kill a worker
            Path(pid_file, f"{os.getpid()}.pid").write_text(str(os.getpid()))

    def _local(self, image: str) -> Path:
        if "://" not in image:
            return Path(image)
        from pyarrow import fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(image)
        target = self.scratch / f"{abs(hash(image))}{Path(path).suffix}"
        with filesystem.open_input_stream(path) as stream:
            target.write_bytes(stream.read())
        return target

    def __call__(self, batch: dict) -> dict:
        from imgcap_desktop.core.records import make_record

        images = [str(i) for i in batch["image"]]
        records: dict[str, dict] = {}
        fetched: list[tuple[str, Path]] = []
        for image in images:
            try:
                fetched.append((image, self._local(image)))
            except Exception as exc:  # noqa: BLE001 - a photo that cannot be fetched is its own record
                records[image] = make_record(image, error=f"{image}: cannot be read ({exc}).")
        results = self.captioner.caption_paths([local for _, local in fetched], **self.decode)
        for (image, local), result in zip(fetched, results):
            # Errors name the file the worker read; the record names the photo as the user gave it.
            error = result.error.replace(local.name, image) if result.error and local != Path(image) else result.error
            records[image] = make_record(image, caption=result.caption, error=error)
            if local != Path(image):
                local.unlink(missing_ok=True)
        # An Arrow table with the record schema spelled out, so that a batch of failures (no
        # alternatives, no scores) has the same column types as any other.
        import pyarrow as pa

        return pa.Table.from_pylist([records[image] for image in images], schema=record_schema())


def record_schema():
    import pyarrow as pa

    alternative = pa.struct([("caption", pa.string()), ("score", pa.float64()), ("log_prob", pa.float64())])
    written = pa.struct([("target", pa.string()), ("path", pa.string()), ("result", pa.string()),
                         ("error", pa.string())])
    return pa.schema([("image", pa.string()), ("status", pa.string()), ("caption", pa.string()),
                      ("edited", pa.bool_()), ("score", pa.float64()), ("confidence", pa.float64()),
                      ("keywords", pa.list_(pa.string())), ("alternatives", pa.list_(alternative)),
                      ("error", pa.string()), ("written", pa.list_(written))])


# --- the run ------------------------------------------------------------------------------


def caption(sources: list[str], out: Path, *, model: str | None, encoder_weights: str | None,
            decode: dict[str, Any], address: str | None = None, workers: int | None = None,
            fmt: str = "jsonl", gpus_per_worker: float = 0.0, stream=sys.stderr) -> RunSummary:
    from imgcap_desktop.core.captioner import resolve_source

    ray = import_ray()
    photos, problems = expand_sources(sources)
    for problem in problems:
        print(f"imgcap: {problem}", file=stream)
    if not photos:
        raise DistributedError("no images to caption")
    out = Path(out)
    done = already_done(out)
    todo = [p for p in photos if p not in done]
    skipped = len(photos) - len(todo)
    if skipped:
        print(f"imgcap: skipped {skipped} photo(s) already captioned in {out}", file=stream)
    if not todo:
        return RunSummary(len(photos), skipped, 0, 0, out, len(problems))

    folder, beside = resolve_source(model)
    encoder = encoder_weights or beside
    files = pack_model(Path(folder), Path(encoder) if encoder else None)
    workers = workers or (os.cpu_count() or 1)
    started_here = not ray.is_initialized()
    if started_here:
        # The workers get this process's IMGCAP_* settings (runtime choice, test hooks).
        runtime_env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith("IMGCAP_")}}
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    try:
        model_ref = ray.put(files)  # kept referenced until the run ends, so restarted actors find it
        dataset = ray.data.from_items([{"image": p} for p in todo], override_num_blocks=max(1, min(len(todo), workers * 4)))
        batch = max(1, int(decode.get("batch_size") or 8))
        captioned = dataset.map_batches(CaptionActor,
                                        fn_constructor_kwargs={"model_files": model_ref, "decode": decode, "threads": 1},
                                        batch_size=batch, compute=ray.data.ActorPoolStrategy(size=workers),
                                        num_cpus=1, num_gpus=gpus_per_worker or None, batch_format="numpy")
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            captioned.write_parquet(str(out))
        else:
            captioned.write_json(str(out))
    finally:
        if started_here:
            ray.shutdown()
    new = [r for r in read_records(out) if r["image"] in set(todo)]
    failed = sum(r["status"] != "done" for r in new)
    return RunSummary(len(photos), skipped, len(new), failed, out, len(problems))


def read_records(out: Path) -> list[dict]:
    """Every record in a run's output folder, alternatives decoded (for tests and summaries)."""
    records: list[dict] = []
    for shard in sorted(out.iterdir()):
        if shard.suffix == ".json":
            rows = []
            for line in shard.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        elif shard.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(shard).to_pylist()
        else:
            continue
        records += rows
    return records
