"""The download path end to end against a local HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import logging
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recbench.data.amazon import P5SequenceSource
from recbench.data.dataset import load_dataset
from recbench.data.download import DownloadError, RemoteFile, fetch
from recbench.data.movielens import MovieLens1MSource
from recbench.errors import DataError, MissingDataError, RefusedError
from recbench.utils.instantiate import instantiate as instantiate_user

from .conftest import CONF_DIR, FIXTURES


@dataclass
class Behaviour:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # send only this many bytes of a response body, then drop the connection
    cut_times: int = 0  # how many responses are cut (then complete ones)
    honour_range: bool = True
    requests: list[str | None] = field(default_factory=list)  # the Range header of each request


def make_handler(b: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            b.requests.append(rng)
            body = b.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if rng and b.honour_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if b.cut_times > 0 and b.cut_after is not None:
                b.cut_times -= 1
                self.wfile.write(chunk[: b.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(behaviour))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.rglob("*") if p.suffix in (".part",) or p.name.startswith(".extract")
    )


def test_download_verifies_and_renames(server, tmp_path):
    url, b = server
    b.files["f.bin"] = PAYLOAD
    path = fetch(RemoteFile(f"{url}/f.bin", "raw/f.bin", f"sha256:{SHA}"), tmp_path)
    assert path == tmp_path / "raw/f.bin" and path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == []
    fetch(RemoteFile(f"{url}/f.bin", "raw/f.bin", f"sha256:{SHA}"), tmp_path)  # verified copy: no request
    assert len(b.requests) == 1


def test_md5_pins_work_too(server, tmp_path):
    url, b = server
    b.files["f.bin"] = PAYLOAD
    fetch(RemoteFile(f"{url}/f.bin", "f.bin", f"md5:{hashlib.md5(PAYLOAD).hexdigest()}"), tmp_path)


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, b = server
    b.files["f.bin"] = PAYLOAD
    with pytest.raises(
        DownloadError, match=r"f.bin: downloaded 1,048,576 bytes whose sha256 is .* expected 00ff"
    ):
        fetch(RemoteFile(f"{url}/f.bin", "f.bin", "sha256:00ff"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin.lock"]


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    url, b = server
    b.files["f.bin"], b.cut_after, b.cut_times = PAYLOAD, 100_000, 2
    path = fetch(RemoteFile(f"{url}/f.bin", "f.bin", f"sha256:{SHA}"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert b.requests == [None, "bytes=100000-", "bytes=200000-"]


def test_truncation_that_persists_is_an_error_and_leaves_nothing(server, tmp_path):
    url, b = server
    b.files["f.bin"], b.cut_after, b.cut_times = PAYLOAD, 10, 100
    with pytest.raises(DownloadError, match=r"truncated: received 40 of 1,048,576 bytes after 3 resumed"):
        fetch(RemoteFile(f"{url}/f.bin", "f.bin", f"sha256:{SHA}"), tmp_path)
    # only the (empty) lock file that serialises concurrent downloads of the same file remains
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin.lock"]


def test_a_partial_file_from_an_interrupted_run_is_resumed(server, tmp_path):
    url, b = server
    b.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:300_000])
    fetch(RemoteFile(f"{url}/f.bin", "f.bin", f"sha256:{SHA}"), tmp_path)
    assert b.requests == ["bytes=300000-"] and (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    url, b = server
    b.files["f.bin"], b.honour_range = PAYLOAD, False
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 1000)
    assert fetch(RemoteFile(f"{url}/f.bin", "f.bin", f"sha256:{SHA}"), tmp_path).read_bytes() == PAYLOAD


def test_http_errors_are_clear(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match=r"missing.bin: HTTP 404"):
        fetch(RemoteFile(f"{url}/missing.bin", "m.bin", f"sha256:{SHA}"), tmp_path)
    assert not (tmp_path / "m.bin.part").exists()


def ml1m_zip() -> tuple[bytes, str]:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("ratings.dat", "movies.dat"):
            z.write(FIXTURES / "movielens/ml-1m" / name, f"ml-1m/{name}")
    data = buf.getvalue()
    return data, hashlib.md5(data).hexdigest()


def test_source_downloads_extracts_and_loads(server, tmp_path):
    url, b = server
    b.files["ml-1m.zip"], md5 = ml1m_zip()
    remote = RemoteFile(f"{url}/ml-1m.zip", "ml-1m.zip", f"md5:{md5}", extract=True)
    src = MovieLens1MSource(
        str(tmp_path / "data"), "ml-1m/ratings.dat", "ml-1m/movies.dat", downloads=[remote]
    )
    ds = load_dataset(
        "ml", src, cache_dir=tmp_path / "cache", expected_stats={"users": 2, "interactions": 11}
    )
    assert ds.item_text["title"].str.len().gt(0).all()
    assert leftovers(tmp_path) == []
    load_dataset("ml", src, cache_dir=tmp_path / "cache")  # files present: nothing fetched again
    assert len(b.requests) == 1


def zip_of(*members: tuple[str, bytes] | str | zipfile.ZipInfo) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for m in members:
            if isinstance(m, tuple):
                z.writestr(*m)
            else:  # a name or a ZipInfo, with a short body
                z.writestr(m, "x")
    return buf.getvalue()


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16  # a Unix symlink
    return info


@pytest.mark.parametrize(
    "bad,why",
    [
        ("../evil.txt", "would be written outside"),
        ("/abs/evil.txt", "absolute"),
        ("ml-1m\\..\\..\\evil.txt", "Windows path"),
        (symlink_member("ml-1m/link"), "not a plain file"),
    ],
)
def test_a_bad_zip_member_refuses_the_whole_archive(server, tmp_path, bad, why):
    """Every member is checked before any is written: the good member before the bad one is not extracted."""
    url, b = server
    b.files["evil.zip"] = data = zip_of(("ml-1m/ratings.dat", b"1::1::5::1\n"), bad)
    md5 = hashlib.md5(data).hexdigest()
    src = MovieLens1MSource(
        str(tmp_path / "data"),
        "ml-1m/ratings.dat",
        None,
        downloads=[RemoteFile(f"{url}/evil.zip", "evil.zip", f"md5:{md5}", True)],
    )
    with pytest.raises(RefusedError, match=why):
        src.files()
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "data/ml-1m").exists()  # nothing extracted, not even the good member
    assert leftovers(tmp_path) == []


def test_a_file_without_a_pinned_checksum_needs_allow_unverified(server, tmp_path, caplog):
    url, b = server
    b.files["f.bin"] = PAYLOAD
    with pytest.raises(RefusedError, match=r"no checksum is pinned for f\.bin.*allow_unverified=true"):
        fetch(RemoteFile(f"{url}/f.bin", "f.bin"), tmp_path)
    assert b.requests == [] and not (tmp_path / "f.bin").exists()  # refused before any request
    path = fetch(RemoteFile(f"{url}/f.bin", "f.bin", allow_unverified=True), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert SHA in caplog.text and "accepted unverified" in caplog.text


def test_a_file_name_cannot_leave_the_data_folder(server, tmp_path):
    url, b = server
    with pytest.raises(RefusedError, match="would be written outside"):
        fetch(RemoteFile(f"{url}/f.bin", "../../f.bin", f"sha256:{SHA}"), tmp_path / "root")
    assert b.requests == []


def test_shipped_downloads_use_https_and_pin_or_ask():
    """Every download a dataset config names uses https and pins a checksum, or is refused unless the
    user passes allow_unverified=true."""
    import yaml

    seen = fallbacks = 0
    for path in sorted((Path(CONF_DIR) / "data").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        for where in ("source", "fallback"):
            for remote in (cfg.get(where) or {}).get("downloads") or []:
                assert remote["url"].startswith("https://"), f"{path.name}: {remote['url']}"
                checksum = remote.get("checksum")
                assert checksum is None or checksum.split(":")[0] in ("sha256", "md5"), path.name
                assert remote.get("allow_unverified") == "${allow_unverified}", path.name
                # a fallback stands in for pinned files without being asked: it must pin its own
                assert where == "source" or checksum, f"{path.name}: an unpinned fallback"
                seen += 1
                fallbacks += where == "fallback"
    assert seen >= 13 and fallbacks >= 4


def test_allow_unverified_changes_no_hash(tmp_path):
    from recbench.results.builder import config_hashes

    def hashes(*extra: str) -> tuple[str, str]:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=["data=amazon_beauty_raw", *extra])
        return config_hashes(cfg)

    assert hashes() == hashes("allow_unverified=true")


def test_the_ml_1m_raw_config_downloads_through_its_url(server, tmp_path):
    url, b = server
    b.files["ml-1m.zip"], md5 = ml1m_zip()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data=ml_1m_raw",
                f"paths.data_dir={tmp_path}",
                f"paths.cache_dir={tmp_path}/cache",
                f"paths.output_dir={tmp_path}",
                f"data.source.downloads.0.url={url}/ml-1m.zip",
                f"data.source.downloads.0.checksum=md5:{md5}",
                "~data.expected_stats",
            ],
        )
    ds = instantiate(cfg.data)
    assert (ds.num_users, ds.num_interactions) == (2, 11)
    assert (tmp_path / "movielens_1m/ml-1m/ratings.dat").is_file()


def test_a_large_download_reports_its_progress(server, tmp_path, caplog):
    import logging

    url, b = server
    big = PAYLOAD * 11  # 11.5 MB: above the size where progress is reported
    b.files["big.bin"] = big
    with caplog.at_level(logging.INFO, logger="recbench.data.download"):
        fetch(RemoteFile(f"{url}/big.bin", "big.bin", f"sha256:{hashlib.sha256(big).hexdigest()}"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if "download big.bin" in r.getMessage()]
    assert lines and "11 MBs to go" in lines[0]  # the announced size, up front
    assert any("11/11" in line for line in lines)  # and the end


# ---- a dataset whose local copy is absent is fetched through its fallback --------------------------------
P5_FIXTURE = FIXTURES / "amazon_2014/p5/user_sequence.txt"


def compose_toys(tmp_path: Path, *extra: str):
    """data=amazon_toys under an empty data root, its fallback pointed at ``extra``'s URL and pin."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            "config",
            overrides=[
                "data=amazon_toys",
                f"paths.data_dir={tmp_path}/data",
                f"paths.cache_dir={tmp_path}/cache",
                f"paths.output_dir={tmp_path}",
                "~data.expected_stats",
                *extra,
            ],
        )


def test_a_dataset_without_its_files_is_fetched_from_its_published_copy(server, tmp_path, caplog):
    from recbench.embeddings.text import render_texts

    url, b = server
    body = P5_FIXTURE.read_bytes()
    b.files["user_sequence.txt"] = body
    fixture = P5SequenceSource(str(P5_FIXTURE.parent.parent), "p5/user_sequence.txt").read("amazon_toys")
    cfg = compose_toys(
        tmp_path,
        f"data.fallback.downloads.0.url={url}/user_sequence.txt",
        f"data.fallback.downloads.0.checksum=sha256:{hashlib.sha256(body).hexdigest()}",
        f"data.fingerprint={fixture.fingerprint()}",
    )
    with caplog.at_level(logging.INFO):
        ds = instantiate_user(cfg.data)
    assert ds.fingerprint() == fixture.fingerprint() and ds.num_users == 6
    assert ds.meta["source"] == "P5SequenceSource: raw/user_sequence.txt"
    assert (tmp_path / "data/amazon_toys/raw/user_sequence.txt").read_bytes() == body
    said = caplog.text
    assert f"no local copy under {tmp_path}/data/amazon_toys" in said
    assert f"downloaded {url}/user_sequence.txt ({len(body)} bytes, sha256 verified) to {tmp_path}" in said
    # the published copy has no item text: text models say why, and what would give it
    with pytest.raises(KeyError, match=r"read from the downloaded copy .*items_title_categories\.jsonl\.gz"):
        render_texts(ds.item_text, "{title}")
    # the second load reads the downloaded copy through the cache: nothing is fetched again
    assert instantiate_user(cfg.data).fingerprint() == ds.fingerprint() and len(b.requests) == 1


def test_without_internet_the_error_names_the_files_and_the_one_command(tmp_path):
    cfg = compose_toys(tmp_path, "data.fallback.downloads.0.url=http://127.0.0.1:9/user_sequence.txt")
    with pytest.raises(MissingDataError) as e:
        instantiate_user(cfg.data)
    said = str(e.value)
    assert f"  - {tmp_path}/data/amazon_toys/raw/user_sequence_asin.txt.gz" in said
    assert "could not be downloaded instead: http://127.0.0.1:9/user_sequence.txt" in said
    assert "python -m recbench.data fetch data=amazon_toys" in said
    assert leftovers(tmp_path) == []


def test_the_pinned_fingerprint_refuses_other_sequences(server, tmp_path):
    url, b = server
    b.files["user_sequence.txt"] = body = P5_FIXTURE.read_bytes()
    cfg = compose_toys(
        tmp_path,
        f"data.fallback.downloads.0.url={url}/user_sequence.txt",
        f"data.fallback.downloads.0.checksum=sha256:{hashlib.sha256(body).hexdigest()}",
    )  # the fingerprint stays Toys' own
    with pytest.raises(DataError, match=r"fingerprint [0-9a-f]{64}, the dataset config pins 35c91f27"):
        instantiate_user(cfg.data)


def test_fallbacks_are_not_hashed():
    """Rows made before the fallbacks existed keep their setting hash (their dataset is pinned anyway)."""
    from recbench.results.builder import config_hashes

    def hashes(*extra: str) -> tuple[str, str]:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return config_hashes(compose("config", overrides=["data=amazon_beauty", *extra]))

    assert hashes() == hashes("~data.fallback", "~data.fingerprint")


def test_the_fetch_command_downloads_builds_and_says_where(server, tmp_path, capsys, caplog):
    from recbench.data.__main__ import main

    url, b = server
    b.files["user_sequence.txt"] = body = P5_FIXTURE.read_bytes()
    remote = "data.fallback.downloads.0"
    args = ["fetch", "data=amazon_toys", f"paths.data_dir={tmp_path}/data", f"paths.cache_dir={tmp_path}/c",
            "~data.expected_stats", "data.fingerprint=null", f"{remote}.url={url}/user_sequence.txt",
            f"{remote}.checksum=sha256:{hashlib.sha256(body).hexdigest()}"]  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    assert "source         P5SequenceSource: raw/user_sequence.txt" in capsys.readouterr().out
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("downloaded ")]
    assert len(said) == 1 and said[0].endswith(f"to {tmp_path}/data/amazon_toys/raw/user_sequence.txt")
