"""Caption files users open in other tools: ``.txt`` sidecars, CSV and JSON lines.

Every write goes to a temporary file in the destination folder and is moved over
the target with :func:`os.replace`, so another program (or a crash) only ever
sees the old file or the complete new one. Failures raise
:class:`~imgcap_desktop.core.errors.SaveError` and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from imgcap_desktop.core.errors import SaveError, SidecarExistsError
from imgcap_desktop.core.records import CSV_COLUMNS, csv_row

__all__ = [
    "SidecarExistsError",
    "atomic_writer",
    "check_writable",
    "export_csv",
    "export_jsonl",
    "read_sidecar",
    "sidecar_path",
    "write_sidecar",
]

SIDECAR_SUFFIX = ".txt"


# --- atomic writing (shared with metadata.py) --------------------------------


def _reason(exc: OSError) -> str:
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the disk is read-only",
        errno.ENOSPC: "the disk is full",
        errno.ENOENT: "the folder does not exist",
        errno.ENAMETOOLONG: "the name is too long",
    }
    if exc.errno in reasons:
        return reasons[exc.errno]
    return (exc.strerror or str(exc)).lower()


def save_error(path: Path, exc: OSError) -> SaveError:
    """Turn an ``OSError`` met while writing ``path`` into a user-facing error."""
    if isinstance(exc, PermissionError) and os.name == "nt":
        # On Windows os.replace fails like this when a viewer holds the file open.
        return SaveError(
            path, f"Cannot write {path.name}: permission denied or it is open in another program."
        )
    return SaveError(path, f"Cannot write {path.name}: {_reason(exc)}.")


def _no_write_bit(mode: int) -> bool:
    # Root passes every os.access() write check, so a "read-only" chmod would be
    # ignored when the app (or the test suite, or a container) runs as root. We
    # honour the user's intent by also refusing when no write bit is set at all.
    return not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def check_writable(target: Path) -> None:
    """Raise SaveError unless ``target`` (existing or not) can be replaced.

    Checked up front so that a read-only file or folder is refused before any
    temporary file exists, even for root (see ``_no_write_bit``).
    """
    folder = target.parent
    try:
        st_dir = folder.stat()
    except OSError as exc:
        raise save_error(target, exc) from exc
    if not stat.S_ISDIR(st_dir.st_mode):
        raise SaveError(target, f"Cannot write {target.name}: {folder} is not a folder.")
    # Windows ignores the read-only attribute on folders (Explorer sets it on
    # ordinary ones), so only the file's attribute means anything there.
    folder_read_only = not os.access(folder, os.W_OK | os.X_OK) or (
        os.name != "nt" and _no_write_bit(st_dir.st_mode)
    )
    if folder_read_only:
        raise SaveError(target, f"Cannot write {target.name}: the folder is read-only.")
    try:
        st = target.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise save_error(target, exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise SaveError(target, f"Cannot write {target.name}: a folder has that name.")
    if not os.access(target, os.W_OK) or _no_write_bit(st.st_mode):
        raise SaveError(
            target,
            f"Cannot write {target.name}: the file is read-only; "
            "make it writable or save elsewhere.",
        )


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# Our temporary files: ".NAME.imgcap-PID-RANDOM.tmp" beside the target, so that the rename
# into place stays on one filesystem. A process killed mid-write leaves one behind; the name
# says it is ours and which process made it, so the next write in that folder removes it.
_TMP_MARK = ".imgcap-"
_STALE_AFTER_S = 24 * 3600  # a pid can be reused: past a day, a leftover is stale whoever has the pid
_swept: set[str] = set()


def _temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _owner_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    if os.name == "nt":
        return False  # no cheap liveness check: age alone decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, someone else's
    return False


def sweep_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that killed imgcap processes left in ``folder``; returns them."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp") and _TMP_MARK in name):
            continue
        try:
            pid = int(name.rsplit(_TMP_MARK, 1)[1].split("-", 1)[0])
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except (ValueError, OSError):
            continue
        if (_owner_gone(pid) or age > _STALE_AFTER_S) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _sweep_once(folder: Path) -> None:
    # Once per folder and process: Save All over a folder of thousands must not rescan it each time.
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        sweep_stale_temporaries(folder)


@contextlib.contextmanager
def atomic_writer(
    target: Path,
    *,
    binary: bool = True,
    newline: str | None = None,
    no_clobber: bool = False,
    clobber_error: type[SaveError] | None = None,
) -> Iterator[IO[Any]]:
    """Yield a file in ``target``'s folder that replaces ``target`` on success.

    The new file keeps the permission bits of the file it replaces; a brand-new
    file gets the usual umask-based ones (``os.open`` with 0o666 applies the
    umask without touching the process-wide umask, which is not thread-safe).
    With ``no_clobber`` an existing target raises ``clobber_error`` and is not
    touched, even if it appears while we write (hard link, where supported).
    """
    target = Path(target)
    check_writable(target)
    folder = target.parent
    _sweep_once(folder)
    tmp = _temp_name(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise save_error(target, exc) from exc
    try:
        with contextlib.ExitStack() as stack:
            if binary:
                fh = stack.enter_context(os.fdopen(fd, "wb"))
            else:
                fh = stack.enter_context(os.fdopen(fd, "w", encoding="utf-8", newline=newline))
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            old = target.stat()
        except FileNotFoundError:
            old = None
        if old is not None:
            if no_clobber:
                raise (clobber_error or SidecarExistsError)(target)
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                # Root saving someone's photo must not hand it over to root.
                with contextlib.suppress(OSError):
                    os.chown(tmp, old.st_uid, old.st_gid)
        if no_clobber:
            _link_no_clobber(tmp, target, clobber_error or SidecarExistsError)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise save_error(target, exc) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_folder(folder)


def _link_no_clobber(tmp: Path, target: Path, clobber_error: type[SaveError]) -> None:
    # os.link fails if the target exists, so a file created by another program
    # between our check and now is never overwritten. Filesystems without hard
    # links (FAT, some network shares) fall back to the check already made.
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise clobber_error(target) from None
    except OSError:
        if target.exists():
            raise clobber_error(target) from None
        os.replace(tmp, target)
        return
    _remove_quietly(tmp)


# --- sidecars ------------------------------------------------------------------


#: Caption file extensions: ``.txt`` (TagGUI, kohya's default) and ``.caption`` (kohya's
#: ``--caption_extension .caption``, OneTrainer).
CAPTION_SUFFIXES = (SIDECAR_SUFFIX, ".caption")


def sidecar_path(image: Path, suffix: str = SIDECAR_SUFFIX) -> Path:
    """``photo.jpg`` -> ``photo.txt`` in the same folder (the TagGUI / dataset convention).

    Two photos never share one caption file: when another image in the folder has the same
    stem (``photo.jpg`` and ``photo.png``), each gets its full name plus ``.txt``
    (``photo.jpg.txt``, ``photo.png.txt``) instead of both writing ``photo.txt``.
    """
    image = Path(image)
    if suffix not in CAPTION_SUFFIXES:
        raise ValueError(f"caption files end in {' or '.join(CAPTION_SUFFIXES)}, not {suffix!r}")
    if image.suffix.lower() in CAPTION_SUFFIXES:
        raise ValueError(f"{image.name} is already a text file, not an image")
    if _shares_stem(image):
        return image.with_name(image.name + suffix)
    return image.with_suffix(suffix)


def _shares_stem(image: Path) -> bool:
    from imgcap_desktop.core.images import IMAGE_EXTENSIONS

    stem = image.stem.casefold()
    try:
        with os.scandir(image.parent) as entries:
            return any(e.name != image.name and Path(e.name).stem.casefold() == stem
                       and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS for e in entries)
    except OSError:
        return False


def _one_line(caption: str) -> str:
    # Dataset tools read the whole file as one caption; a stray line break from
    # an edit box would be read as two, so line breaks become spaces.
    return " ".join(part.strip() for part in caption.splitlines() if part.strip())


def write_sidecar(image: Path, caption: str, *, overwrite: bool = False, suffix: str = SIDECAR_SUFFIX) -> Path:
    """Write ``caption`` (UTF-8, one line + ``\\n``) next to ``image``; return the path.

    Raises :class:`SidecarExistsError` when the sidecar exists and ``overwrite`` is
    false, so the caller can ask the user and call again with ``overwrite=True``.
    """
    target = sidecar_path(image, suffix)
    if not overwrite and target.exists():
        raise SidecarExistsError(target)
    data = (_one_line(caption) + "\n").encode("utf-8")
    with atomic_writer(target, no_clobber=not overwrite) as fh:
        fh.write(data)
    return target


def read_sidecar(image: Path, suffix: str = SIDECAR_SUFFIX) -> str | None:
    """The caption in ``image``'s sidecar, or ``None`` if there is no sidecar."""
    target = sidecar_path(image, suffix)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SaveError(target, f"Cannot read {target.name}: {_reason(exc)}.") from exc
    # utf-8-sig: Notepad and friends may add a BOM; bad bytes must not make the
    # caption unreadable, so they show as U+FFFD for the user to fix.
    return raw.decode("utf-8-sig", errors="replace").rstrip("\r\n")


# --- exports -------------------------------------------------------------------


def export_csv(records: Iterable[dict], out: Path) -> None:
    """Write records (core.records) as UTF-8 CSV with a header, atomically."""
    out = Path(out)
    # newline="" lets the csv module quote embedded line breaks itself (RFC 4180).
    with atomic_writer(out, binary=False, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for record in records:
            writer.writerow(csv_row(record))


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def export_jsonl(records: Iterable[dict], out: Path) -> None:
    """Write one JSON object per line (UTF-8, non-ASCII kept readable), atomically."""
    out = Path(out)
    with atomic_writer(out, binary=False, newline="\n") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=_json_default))
            fh.write("\n")
