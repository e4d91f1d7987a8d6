"""The one ``instantiate`` recbench calls: Hydra's, after checking every ``_target_`` it would call.

A config, a command-line override or a re-run result row chooses what Python calls through ``_target_``.
Hydra (>= 1.3.4) blocks a list of execution-capable targets (``os.system``, ``subprocess.*``), but any other
importable callable passes: ``builtins.open``, ``shutil.copyfile``, ``torch.save``. Here a target is
allowed only when it is

* a **class** defined under one of :data:`ALLOWED_MODULES` (checked on the object it resolves to, so
  ``recbench.run.shutil.copyfile`` does not pass as "under recbench"), or
* a **function** named in :data:`FACTORIES`.

Every ``_target_`` of the subtree (nested ones too: Hydra instantiates recursively) is checked before
anything is called. To use a component from another package, add its module prefix to
:data:`ALLOWED_MODULES` (a class) or its full name to :data:`FACTORIES` (a function), here, and say why.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import hydra.utils
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, Node

from recbench.errors import ConfigError, RecbenchError, RefusedError

# Module prefixes whose classes a config may name (checked on the module the class is defined in).
ALLOWED_MODULES: tuple[str, ...] = (
    "recbench.",  # our components
    "torch.optim.",  # optimizers and learning-rate schedulers
    "lightning.pytorch.callbacks.",  # ModelCheckpoint, EarlyStopping
)
# Classes a config may name by their exact public name, defined elsewhere than they are exported.
CLASSES: frozenset[str] = frozenset({"lightning.pytorch.Trainer"})
# Functions a config may name (factories that return a component), by their exact name.
FACTORIES: frozenset[str] = frozenset(
    {
        "recbench.data.dataset.load_dataset",
        "recbench.data.esci.load_search_dataset",
        "recbench.metrics.ranking.build_metrics",
        "recbench.utils.loggers.csv_logger",
        "recbench.utils.loggers.wandb_logger",
    }
)
_HERE = __name__.replace(".", "/") + ".py"
_RULE = (
    f"targets must be classes defined under {', '.join(ALLOWED_MODULES)}, or one of {sorted(CLASSES)}, "
    f"or one of the factory functions {sorted(FACTORIES)}. To allow another component, extend "
    f"ALLOWED_MODULES, CLASSES or FACTORIES in {_HERE}"
)


def targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(config key, target)`` of every ``_target_`` in ``node`` (a config, dict or list), depth first.
    Only the ``_target_`` values are resolved: other interpolations (``${hydra:…}``) may need a context."""
    if isinstance(node, DictConfig | dict):
        for key in node:
            where = f"{path}.{key!s}" if path else str(key)
            if key == "_target_":
                yield path or "<root>", node[key]
            elif isinstance(value := _child(node, key), DictConfig | ListConfig | dict | list | tuple):
                yield from targets(value, where)
    elif isinstance(node, ListConfig | list | tuple):
        for i in range(len(node)):
            if isinstance(value := _child(node, i), DictConfig | ListConfig | dict | list | tuple):
                yield from targets(value, f"{path}[{i}]")


def _child(node: Any, key: Any) -> Any:
    """``node[key]`` where it is (or may resolve to) a container; None for a config's plain leaves, which
    are never resolved here."""
    if isinstance(node, DictConfig | ListConfig):
        raw = node._get_node(key)
        if isinstance(raw, DictConfig | ListConfig):
            return node[key]
        if isinstance(raw, Node) and raw._is_interpolation():  # it may stand for a container
            try:
                return node[key]
            except Exception:  # e.g. ${hydra:…} outside an app: a run resolves it to a path, not a config
                return None
        return None
    return node[key]


def check_target(target: Any, key: str) -> None:
    """Raise :class:`RefusedError` unless ``target`` (at config key ``key``) is an allowed callable."""
    where = f"{key}._target_={target!r}"
    if not isinstance(target, str):
        raise RefusedError(f"{where}: a target must be a dotted name (a string)")
    exact = target in CLASSES or target in FACTORIES
    if not exact and not target.startswith(ALLOWED_MODULES):
        raise RefusedError(f"{where} is not allowed: {_RULE}")
    try:
        obj = hydra.utils.get_object(target)
    except Exception as e:
        raise ConfigError(f"{where}: no such class or function ({e})") from None
    if target in FACTORIES and inspect.isfunction(obj):
        return
    if inspect.isclass(obj) and (target in CLASSES or obj.__module__.startswith(ALLOWED_MODULES)):
        return
    # e.g. recbench.run.shutil.copyfile: a name under recbench. that resolves to something else
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
    raise RefusedError(f"{where} resolves to {name} ({type(obj).__name__}), which is not allowed: {_RULE}")


def check_targets(config: Any, path: str = "") -> None:
    """Check every ``_target_`` of ``config`` (see :func:`check_target`)."""
    if not path and isinstance(config, DictConfig):
        path = config._get_full_key(None) or ""
    for key, target in targets(config, path):
        check_target(target, key)


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """:func:`hydra.utils.instantiate`, after :func:`check_targets` on the config and on keyword arguments
    that are configs. An error a user caused (a :class:`RecbenchError` raised by the component, or a
    keyword the component does not take) comes out as itself, with its message as written, instead of
    Hydra's one-line repr inside an ``InstantiationException``."""
    check_targets(config)
    for name, value in kwargs.items():
        if isinstance(value, dict | DictConfig | list | ListConfig):
            check_targets(value, name)
    try:
        return hydra.utils.instantiate(config, *args, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or cause is None:
            raise
        if isinstance(cause, RecbenchError):
            raise cause from None
        if isinstance(cause, TypeError) and "argument" in str(cause):
            key = config._get_full_key(None) if isinstance(config, DictConfig) else ""
            raise ConfigError(f"{key or 'config'}: {cause}") from cause
        raise
