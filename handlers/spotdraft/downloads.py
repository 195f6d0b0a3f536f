"""Storing a downloaded file whole or not at all.

The bytes go to a hidden temporary file beside the target, are fsynced, and the file is
renamed into place (then the directory is fsynced), so a reader or a crash sees either
no file or the complete one, never a torn copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from handlers.spotdraft.errors import PermanentError, StorageError
from handlers.spotdraft.exchange import DownloadedFile


def check_file_name(file_name: str) -> None:
    """Refuse a name that is not one plain file name (separators, ``..``, NUL)."""
    if (
        not file_name
        or file_name in (".", "..")
        or any(sep in file_name for sep in ("/", "\\", "\0"))
        or file_name.startswith(".")
    ):
        raise ValueError(f"not a plain file name: {file_name!r}")


async def stream_to_file(
    chunks: AsyncIterator[bytes], dest_dir: Path, file_name: str, max_bytes: int
) -> DownloadedFile:
    """Write ``chunks`` to ``dest_dir/file_name`` atomically; its sha256 and size."""
    target = dest_dir / file_name
    temporary = dest_dir / f".{file_name}.{secrets.token_hex(6)}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        # Owner-only, as the database: an executed contract is business data.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        async with anyio.wrap_file(os.fdopen(fd, "wb")) as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PermanentError(
                        f"the download of {file_name} is larger than {max_bytes} bytes; "
                        "raise the limit if such documents are expected"
                    )
                digest.update(chunk)
                await out.write(chunk)
            await out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
        await anyio.to_thread.run_sync(os.replace, temporary, target)
        await anyio.to_thread.run_sync(_fsync_dir, dest_dir)
    except OSError as exc:
        _remove(temporary)
        raise unstorable(file_name, dest_dir, exc) from exc
    except BaseException:
        _remove(temporary)
        raise
    return DownloadedFile(path=target, sha256=digest.hexdigest(), bytes=size)


def unstorable(file_name: str, dest_dir: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot store {file_name} in {dest_dir}: {exc.strerror or exc}; free space or let "
        "spotsync write to that folder (SPOTSYNC_DOCUMENTS_DIR), and it is tried again"
    )


def _remove(path: Path) -> None:
    # Synchronous on purpose: it must also run while the task is being cancelled.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
