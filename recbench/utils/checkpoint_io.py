"""How the Trainer writes and reads checkpoints: whole or not at all, and never running code on load.

Lightning's :class:`TorchCheckpointIO` writes through fsspec, whose local transaction writes a temp file
under the system temp folder and moves it over: across filesystems that is a copy, and a full disk leaves
a truncated ``best-epochNNN.ckpt`` under its final name, which a later resume or test then reads.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from recbench.errors import RefusedError
from recbench.utils.files import atomic_file


class SafeCheckpointIO(TorchCheckpointIO):
    """Saves through :func:`recbench.utils.files.atomic_file` (a temp file in the checkpoint's folder,
    fsynced, then renamed) and loads with ``weights_only=True`` always.

    ``weights_only=True`` is forced, whatever the caller or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` asks:
    ``resume_from=`` takes any path, and unpickling an arbitrary object can run arbitrary code. recbench's
    own checkpoints hold tensors and plain values only (callback states included), so they load.
    Checkpoints are local files (``paths.output_dir``); remote URLs are not written here.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        try:
            with atomic_file(path) as f:
                torch.save(checkpoint, f)
        except RuntimeError as e:
            # torch's zip writer reports a failed write (a full disk) as "unexpected pos 704 vs 598"; the
            # OSError it hit is the context: raise that, naming the checkpoint.
            if isinstance(e.__context__, OSError):
                raise OSError(e.__context__.errno, e.__context__.strerror, str(path)) from e
            raise

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:  # torch's weights_only refusal (and any malformed pickle)
            raise RefusedError(
                f"refusing to load checkpoint {path}: it holds more than tensors and plain values "
                f"({_reason(e)}), and unpickling that could run code. recbench's own checkpoints load; "
                "resume only from checkpoints written by recbench runs."
            ) from None


def _reason(error: pickle.UnpicklingError) -> str:
    """The specific line of torch's weights_only error (e.g. "unsupported GLOBAL posix.system"), without
    its advice to retry with weights_only=False."""
    paragraphs = [p.strip() for p in str(error).split("\n\n") if p.strip()]
    return paragraphs[1].rstrip(".") if len(paragraphs) > 2 else "not loadable with weights_only=True"
