"""Atomic file output and hashing.

Every artifact interpkit writes goes through these helpers: content is written to a temporary file
in the destination folder and renamed over the target, so a crash leaves either the old file or the
new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    Args:
        path: the final destination.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
        encoding: text encoding (ignored in binary mode).

    Yields:
        The open temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 minus the umask)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_temp_path(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """A temporary path beside ``path`` for writers that want a file name (parquet, safetensors).

    The block writes to the yielded path; on success it is renamed over ``path``.
    """

    @contextlib.contextmanager
    def _cm() -> Iterator[Path]:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    return _cm()


def replace_dir(tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, keep_existing: bool = False) -> Path:
    """Move the finished folder ``tmp`` to ``final``, replacing an existing ``final`` as one step.

    The old folder is renamed aside first and removed only after the new one is in place (and put
    back if that fails), so a crash leaves either the old or the new folder at ``final``, never a
    half-written one.

    Args:
        tmp: the finished folder (beside ``final``, on the same file system).
        final: the destination.
        keep_existing: for content-keyed entries whose copies are equivalent (caches): when a
            non-empty ``final`` exists (a concurrent writer got there first), keep it and remove
            ``tmp`` instead of replacing it.
    """
    import shutil

    final = Path(final)
    if keep_existing:
        try:
            os.replace(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return final
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, prefix: str | None = None, keep_existing: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``path`` for the block to fill; `replace_dir` moves it to ``path``.

    If the block raises, the temporary folder is removed and ``path`` is left as it was.

    Args:
        path: the final folder (its parent is created).
        prefix: name prefix of the temporary folder (default ``.<name>.``; it ends in ``.tmp``).
        keep_existing: passed to `replace_dir`.

    Yields:
        The temporary folder (mode 0700, as ``mkdtemp`` makes it).
    """
    import shutil

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        replace_dir(tmp, final, keep_existing=keep_existing)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def dir_mode() -> int:
    """Permissions a new folder gets under the current umask (``mkdtemp`` folders are 0700)."""
    return 0o777 & ~_umask()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json_file(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    missing: str,
    invalid: Callable[[Path, json.JSONDecodeError], Exception],
) -> tuple[Path, Any]:
    """``(file, data)``: the JSON at ``path``, or at ``path/name`` when ``path`` is a folder.

    The one way readers open a JSON file: ``missing`` (``{path}`` in it replaced by the file) is the
    `FileNotFoundError`'s message, ``invalid(file, error)`` builds the reader's own error for a file that
    is not JSON (it has the line in ``error.lineno``).
    """
    p = Path(path)
    if name is not None and p.is_dir():
        p = p / name
    if not p.is_file():
        raise FileNotFoundError(missing.replace("{path}", str(p)))
    try:
        return p, json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise invalid(p, exc) from None


def slug(text: str, *, max_len: int = 40, empty: str = "f") -> str:
    """A file- and anchor-safe name for ``text``: runs of other characters become ``-``.

    Example:
        >>> slug("The next token is a unit (km, kg)!")
        'The-next-token-is-a-unit-km-kg'
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:max_len] or empty
