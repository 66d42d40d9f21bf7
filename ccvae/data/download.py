"""Checked, atomic downloads with a bounded wait.

``download_file`` streams a URL into a temporary file in the destination folder,
hashes it on the way, checks the length and the checksum, and only then renames it
into place with ``os.replace`` (atomic on one filesystem). A failed or interrupted
download therefore never leaves a file under the final name.

``download_from_mirrors`` tries a list of mirrors per file. Before the first download
it checks, within ``timeout`` seconds, which mirror hosts can be reached (name lookup
and TCP connect run in helper threads, all at once, because ``getaddrinfo`` itself has
no timeout). A mirror that cannot be reached, or that times out, is not tried again in
the same call, so a machine without a network gives up after about one timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from ccvae.errors import ChecksumError, DataError

# Seconds to wait for a connection or for the next chunk of data. Short on purpose:
# a machine without network must fall through to an offline source quickly.
DEFAULT_TIMEOUT = 5.0
_CHUNK = 1 << 16  # bytes per read; small enough for a smooth progress bar


class DownloadError(DataError):
    """A download that failed for a network reason: unreachable host, timeout, HTTP
    error status, or a body shorter than announced. ``status`` is the HTTP status code
    when the server answered with an error, else None."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(
    path: str | os.PathLike, md5: str | None = None, sha256: str | None = None
) -> None:
    """Raise :class:`ChecksumError` when the file's MD5 or SHA-256 differs from the given one."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        got = file_digest(path, algorithm)
        if got.lower() != expected.lower():
            raise ChecksumError(
                f"{path} has {algorithm.upper()} {got}, expected {expected.lower()}: the file is "
                "damaged or is not the published one. Delete it and download or copy it again."
            )


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def download_file(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The body goes to a temporary ``.<name>.*.part`` file beside ``dest``. The download
    fails with :class:`DownloadError` on an unreachable host, a timeout (``timeout``
    seconds without data), an HTTP error status, or fewer bytes than the server's
    ``Content-Length``; with :class:`ChecksumError` when ``md5``/``sha256`` is given and
    differs. In every failure the temporary file is deleted and ``dest`` is untouched.
    ``progress``: show a tqdm bar; None shows it only when stderr is a terminal.
    """
    if timeout is None or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h_md5, h_sha = hashlib.md5(), hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "ccvae"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None and length.isdigit() else None
                bar = None
                if _show_progress(progress):
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False)
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        h_md5.update(chunk)
                        h_sha.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise DownloadError(
                f"download of {url} was cut short: got {received} of {total} bytes. "
                "Try again, or another mirror.",
                url=url,
            )
        for name, expected, h in (("MD5", md5, h_md5), ("SHA-256", sha256, h_sha)):
            if expected is not None and h.hexdigest() != expected.lower():
                raise ChecksumError(
                    f"download of {url} has {name} {h.hexdigest()}, expected {expected.lower()}: "
                    "the server sent a damaged or different file, so it was deleted. "
                    "Try again, or another mirror."
                )
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as e:
        raise DownloadError(
            f"download of {url} failed: HTTP {e.code} {e.reason}", url=url, status=e.code
        ) from None
    except urllib.error.URLError as e:
        raise DownloadError(f"cannot reach {url}: {e.reason}", url=url) from None
    except (TimeoutError, socket.timeout) as e:
        raise DownloadError(
            f"download of {url} timed out after {timeout:g} s without data ({e})", url=url
        ) from None
    except http.client.IncompleteRead as e:
        raise DownloadError(
            f"download of {url} was cut short ({e}). Try again, or another mirror.", url=url
        ) from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise DownloadError(f"download of {url} failed: {type(e).__name__}: {e}", url=url) from None
    finally:
        tmp.unlink(missing_ok=True)


def host_unreachable_reasons(
    urls: Sequence[str], timeout: float = DEFAULT_TIMEOUT
) -> dict[str, str | None]:
    """For each URL: None when a TCP connection to its host opens within ``timeout``
    seconds, else a short reason. ``file:`` and other non-network URLs count as reachable.

    Every lookup and connect runs in its own daemon thread and all run at once, so a
    resolver that hangs (no network) costs at most ``timeout`` seconds in all.
    """
    outcome: dict[str, str | None] = {}
    workers: list[tuple[str, str, threading.Thread]] = []

    def attempt(url: str, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome[url] = None
        except OSError as e:  # includes socket.gaierror and timeouts
            outcome[url] = f"{type(e).__name__}: {e}"

    for url in dict.fromkeys(urls):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            outcome[url] = None
            continue
        if not parts.hostname:
            outcome[url] = f"no host in {url!r}"
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        worker = threading.Thread(
            target=attempt, args=(url, parts.hostname, port), name="ccvae-probe", daemon=True
        )
        worker.start()
        workers.append((url, f"{parts.hostname}:{port}", worker))
    deadline = time.monotonic() + timeout
    for url, where, worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if url not in outcome:
            outcome[url] = f"no answer from {where} within {timeout:g} s"
    return {url: outcome[url] for url in urls}


def host_unreachable_reason(url: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """:func:`host_unreachable_reasons` for one URL."""
    return host_unreachable_reasons([url], timeout)[url]


def _join_url(mirror: str, filename: str) -> str:
    return mirror.rstrip("/") + "/" + urllib.parse.quote(filename)


def download_from_mirrors(
    files: Mapping[str, str | None],
    mirrors: Sequence[str],
    dest_dir: str | os.PathLike,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> dict[str, Path]:
    """Download every ``filename -> md5`` (md5 may be None) into ``dest_dir``.

    A file already in ``dest_dir`` with the right MD5 is kept. Each missing file is
    tried on each mirror in order; a mirror that cannot be reached, or times out, is
    skipped for the rest of the call. Returns ``filename -> path``; raises
    :class:`DownloadError` naming every mirror's failure when some file could not be had.
    """
    if not mirrors:
        raise DownloadError("no download mirrors were given")
    dest = Path(dest_dir)
    dead: dict[str, str] = {}  # mirror -> why it is skipped
    probed = False
    paths: dict[str, Path] = {}
    for filename, md5 in files.items():
        target = dest / filename
        if target.is_file():
            try:
                verify_checksum(target, md5=md5)
                paths[filename] = target
                continue
            except ChecksumError:
                pass  # a stale or damaged copy: download it again over it
        if not probed:  # only when something must be fetched; all mirrors at once
            probed = True
            for mirror, reason in host_unreachable_reasons(mirrors, timeout).items():
                if reason is not None:
                    dead[mirror] = reason
        failures: list[str] = []
        for mirror in mirrors:
            if mirror in dead:
                failures.append(f"{mirror}: {dead[mirror]}")
                continue
            try:
                paths[filename] = download_file(
                    _join_url(mirror, filename), target, md5=md5, timeout=timeout, progress=progress
                )
                break
            except DownloadError as e:
                failures.append(f"{mirror}: {e}")
                if e.status is None:  # the connection itself failed: do not retry this mirror
                    dead[mirror] = str(e)
            except ChecksumError as e:
                failures.append(f"{mirror}: {e}")
        else:
            raise DownloadError(
                f"could not download {filename} from any mirror:\n  - " + "\n  - ".join(failures)
            )
    return paths
