"""Cache root and resumable, verified HTTP downloads (the lhotse ``download_*`` habit).

A download goes to ``<dest>.part`` and is renamed to ``dest`` only when the number of
bytes received equals the size the server announced (``Content-Length`` or the total
in ``Content-Range``) and, when given, the expected size. So a file at ``dest`` is
always whole, a second call is free (idempotent), and an interrupted call resumes from
the ``.part`` file with an HTTP ``Range`` request. A truncated transfer is an error,
never data.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from diareval.errors import DatasetError

CACHE_ENV = "DIAREVAL_DATA"
USER_AGENT = "diareval (+https://github.com/; dataset download)"
RETRY_DELAY = 1.0  # seconds before the first retry; doubles each time (tests set 0)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def cache_root(root: str | Path | None = None) -> Path:
    """Where datasets live: ``root`` if given, else ``$DIAREVAL_DATA``, else ``~/.cache/diareval``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "diareval"


class DownloadError(DatasetError):
    """A download failed or delivered the wrong number of bytes (the ``.part`` file is kept)."""


def publish_folder(tmp: Path, target: Path, marker: str = "dataset.json") -> None:
    """Rename the finished folder ``tmp`` to ``target``, for datasets built once and cached.
    Two processes may build the same set at once: when the other one published first
    (``target/marker`` exists, before the rename or instead of it), ``tmp`` is dropped and
    theirs is kept; a ``target`` without the marker is left alone and the rename's error
    raised."""
    if (target / marker).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        os.replace(tmp, target)
    except OSError:  # published between the check and the rename
        if not (target / marker).exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def remote_size(url: str, timeout: float = 30.0) -> int | None:
    """Size in bytes the server announces for ``url`` (HEAD request), or None if it does not say."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: cannot reach ({exc})") from exc
    return int(length) if length is not None else None


def download_file(url: str, dest: str | Path, *, expected_size: int | None = None,
                  progress: bool = True, retries: int = 3, timeout: float = 60.0,
                  chunk_size: int = 1 << 20, description: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download; return ``dest``.

    Nothing is done if ``dest`` already exists (only a verified download is ever renamed
    to ``dest``). Bytes go to ``dest + ".part"``; an interrupted transfer is resumed with
    an HTTP ``Range`` request (``retries`` times here, or by calling again later). When
    the server ignores ``Range`` (200 instead of 206) the file restarts from zero. The
    received size must equal the server's announced size and ``expected_size`` (if given),
    otherwise :class:`DownloadError` is raised and ``dest`` is not created.
    """
    dest = Path(dest)
    if dest.exists():
        if expected_size is not None and dest.stat().st_size != expected_size:
            raise DownloadError(f"{dest}: exists with {dest.stat().st_size} bytes, expected "
                                f"{expected_size}; delete it to download again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(RETRY_DELAY * 2.0 ** (attempt - 1), 10.0))
        try:
            _transfer(url, part, expected_size=expected_size, progress=progress,
                      timeout=timeout, chunk_size=chunk_size,
                      description=description or dest.name)
        except _Retryable as exc:
            last_error = exc.__cause__ or exc
            continue
        os.replace(part, dest)
        return dest
    have = part.stat().st_size if part.exists() else 0
    raise DownloadError(f"{url}: download interrupted ({last_error}); {have} bytes kept in "
                        f"{part}, run the download again to resume")


class _Retryable(Exception):
    pass


def _transfer(url: str, part: Path, *, expected_size: int | None, progress: bool,
              timeout: float, chunk_size: int, description: str) -> None:
    start = part.stat().st_size if part.exists() else 0
    if expected_size is not None and start > expected_size:
        part.unlink()  # cannot be a prefix of the right file
        start = 0
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            # Range not satisfiable: the part may already be complete. Check, else restart.
            total = remote_size(url, timeout)
            if total == start and (expected_size is None or expected_size == start):
                return
            part.unlink()
            raise _Retryable(f"server refused resuming at byte {start}") from exc
        if exc.code in (408, 429, 500, 502, 503, 504):
            raise _Retryable(str(exc)) from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(str(exc)) from exc
    with response:
        status = response.status
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                raise DownloadError(f"{url}: bad Content-Range "
                                    f"{response.headers.get('Content-Range')!r} for a "
                                    f"request from byte {start}")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            start = 0  # server ignored Range: start again
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            mode = "wb"
        if total is not None and expected_size is not None and total != expected_size:
            raise DownloadError(f"{url}: server announces {total} bytes, expected "
                                f"{expected_size}: wrong file (or mirror changed)")
        received = start
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=description, disable=not progress, leave=False)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(chunk_size)
                    except (OSError, http.client.HTTPException, socket.timeout) as exc:
                        raise _Retryable(f"connection lost after {received} bytes "
                                         f"({type(exc).__name__})") from exc
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    want = total if total is not None else expected_size
    if want is not None and received != want:
        if received < want:
            raise _Retryable(f"truncated: got {received} of {want} bytes")
        raise DownloadError(f"{url}: got {received} bytes, more than the {want} announced")


def copy_if_missing(source: Path, dest: Path) -> Path:
    """Copy a local file to ``dest`` unless it exists (atomically, via ``.part``)."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        shutil.copyfile(source, part)
        os.replace(part, dest)
    return dest
