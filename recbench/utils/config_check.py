"""Config errors caught before any work: an unknown key, a value of the wrong type, a value out of range.

Two checks, both raising :class:`~recbench.errors.ConfigError` with the key, the value and what was
expected:

* :func:`check_command_line` reads the command line before Hydra composes it (``python -m recbench.run``
  calls it first). Each ``key=value`` override must name a key the composed config has (else: "did you
  mean …", the closest existing keys; never Hydra's advice to append it with ``+``), and its value must
  be of the default's kind (a number where the default is a number, a bool where it is a bool …).
* :func:`check_values` reads the composed config at the start of :func:`recbench.run.run`, before data
  is read: the keys users set most (epochs, seed, threads, learning rate, batch size, layer sizes,
  dropout) against their types and ranges, whether they came from the command line or an experiment file.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from recbench.errors import ConfigError

# Options after which the next argument is the option's value, not an override.
_TAKES_VALUE = {"-c", "--cfg", "-p", "--package", "--info", "-i", "--experimental-rerun"}
# Options that change which config is composed, or that print help: leave the command line to Hydra.
_HANDS_OFF = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-h", "--help",
              "--hydra-help", "--version", "-sc", "--shell-completion", "--experimental-rerun"}  # fmt: skip
# Keys whose components accept several kinds (Lightning: devices=1 | "auto" | [0, 1]; limits: int | float):
# their default's kind says nothing about what else is valid.
ANY_KIND = ("trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.precision",
            "trainer.accelerator", "trainer.limit_*", "trainer.val_check_interval", "trainer.gradient_clip_*",
            "trainer.overfit_batches", "trainer.plugins", "trainer.profiler")  # fmt: skip
_MAX_GROUP_COMBINATIONS = 32  # group sweeps (model=a,b data=c,d): each combination is checked, up to this


def command_line_overrides(argv: Sequence[str]) -> list[str] | None:
    """The override arguments of a ``recbench.run`` command line, or None when Hydra should have it alone
    (help, another config, a rerun)."""
    overrides: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _HANDS_OFF:
            return None
        if arg.startswith("-"):
            skip = name in _TAKES_VALUE and "=" not in arg
            continue
        overrides.append(arg)
    return overrides


def check_command_line(argv: Sequence[str], config_dir: Path, config_name: str = "config") -> None:
    """Raise :class:`ConfigError` for an override of a key the composed config lacks, or with a value of
    another kind than the key's default. ``argv``: ``sys.argv[1:]``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    lines = command_line_overrides(argv)
    if not lines:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException:
        return  # a syntax error: Hydra's own message says where
    groups, values = [], []
    for o in parsed:
        key = o.key_or_group
        if key.split("/")[0].split(".")[0] == "hydra":
            continue  # Hydra's own settings (hydra.sweep.dir=…, hydra/launcher=…)
        if (config_dir / key).is_dir():
            groups.append(o)
        elif o.type == OverrideType.CHANGE and "@" not in key:
            values.append(o)
    if not values:
        return
    fixed = [o.input_line for o in values if not o.is_sweep_override() and o.input_line]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            for choice in _group_choices(groups):
                try:
                    reference = compose(config_name, overrides=choice)
                except HydraException:
                    return  # a missing config file or group option: Hydra's message lists the options
                where = f"model={reference.model.get('name')}" if "model" in reference else "the config"
                for o in values:
                    line = o.input_line or o.key_or_group
                    _check_override(reference, o.key_or_group, line, _values_of(o), where)
                    if o.is_sweep_override():  # a fixed value is checked in the composed config below
                        for value in _values_of(o) or []:
                            _check_rule(o.key_or_group, value)
                composed = compose(config_name, overrides=choice + fixed)
                check_values(composed)
                check_data_present(composed)
    finally:
        GlobalHydra.instance().clear()


def check_data_present(cfg: DictConfig) -> None:
    """Raise the source's :class:`~recbench.errors.MissingDataError` (the files, the folder, the command
    that fetches them) before any work, for sources that read local files only. Sources that download
    what is missing (``downloads``, the Hugging Face hub) are left to the run; any other problem too."""
    from recbench.errors import MissingDataError
    from recbench.utils.instantiate import instantiate

    source = cfg.get("data", {}).get("source") if isinstance(cfg.get("data"), DictConfig) else None
    if (
        not isinstance(source, DictConfig)
        or source.get("downloads")
        or "amazon2023" in str(source.get("_target_", ""))
    ):
        return
    try:
        files = getattr(instantiate(source), "files", None)
        if callable(files):
            files()
    except MissingDataError:
        raise
    except Exception:  # not this check's business: the run reports it with its context
        return


def _group_choices(groups: Sequence[Any]) -> Iterable[list[str]]:
    """Every combination of the group overrides' values (``model=a,b`` counts as two), up to a limit."""
    options = []
    for o in groups:
        key = o.get_key_element()
        choices = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        options.append([f"{key}={c}" for c in choices])
    return (list(c) for c in itertools.islice(itertools.product(*options), _MAX_GROUP_COMBINATIONS))


def _values_of(o: Any) -> list[Any] | None:
    """The values an override sets (each value of a choice sweep), or None for ranges and intervals."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = o.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    if isinstance(value, IntervalSweep | RangeSweep):
        return None
    return [value]


def _check_override(reference: DictConfig, key: str, line: str, values: list[Any] | None, where: str) -> None:
    parent_key, _, leaf = key.rpartition(".")
    parent = _select(reference, parent_key) if parent_key else reference
    if isinstance(parent, ListConfig):
        return
    if not isinstance(parent, DictConfig) or not _has(parent, leaf):
        raise ConfigError(_unknown_key(reference, key, line, where))
    default = parent._get_node(leaf)
    raw = default._value() if default is not None else None
    if raw is None or (isinstance(raw, str) and "${" in raw) or values is None:
        return  # no default to compare with (null, an interpolation), or a range of numbers
    if any(fnmatch.fnmatchcase(key, pattern) for pattern in ANY_KIND):
        return
    for value in values:
        expected = _kind_mismatch(raw, value)
        if expected:
            shown = OmegaConf.to_container(raw) if isinstance(raw, DictConfig | ListConfig) else raw
            raise ConfigError(f"{line}: {key} expects {expected} (its default is {shown!r}), got {value!r}")


def _has(node: DictConfig, key: str) -> bool:
    return key in node.keys()  # noqa: SIM118 (``in node`` is False for a key whose value is ``???``)


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    except Exception:  # an interpolation that needs Hydra's runtime: not a node we can inspect
        return None


def _unknown_key(reference: DictConfig, key: str, line: str, where: str) -> str:
    """The message for an override of a missing key: the closest keys that exist, and no ``+`` advice."""
    parts = key.split(".")
    node: Any = reference
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig) or not _has(node, part):
            prefix = ".".join(parts[:depth])
            siblings = [str(k) for k in node] if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, siblings, n=3, cutoff=0.6)
            full = [f"{prefix}.{c}" if prefix else c for c in close]
            hint = f"; did you mean {' or '.join(full)}?" if full else ""
            listing = ", ".join(sorted(siblings)) if siblings else "nothing"
            return f"{line}: {where} has no key {key}{hint} ({prefix or 'the top level'} holds: {listing})"
        node = _select(node, part)
    return f"{line}: {where} has no key {key}"


def _kind_mismatch(default: Any, value: Any) -> str | None:
    """What ``value`` should have been, given the key's default; None when it is of that kind."""
    if value is None:
        return None  # many keys take null (no limit, no file, the library's default)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int | float):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if isinstance(default, ListConfig):
        return None if isinstance(value, list) else "a list, e.g. [1,2]"
    if isinstance(default, DictConfig):
        return None if isinstance(value, dict) else "a mapping, e.g. {a:1}"
    return None  # a string key takes any scalar as its text


# The keys users set most, with what each must be. Patterns are fnmatch globs on dotted keys.
def _integer(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an integer >= {low}"


def _number(low: float, high: float | None = None, *, open_low: bool = False, open_high: bool = True):
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if v < low or (open_low and v == low):
            return False
        return high is None or v < high or (not open_high and v == high)

    left = "(" if open_low else "["
    right = "inf)" if high is None else (f"{high})" if open_high else f"{high}]")
    return ok, f"a number in {left}{low}, {right}"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

RULES: list[tuple[str, tuple[Callable[[Any], bool], str]]] = [
    (
        "compile",
        ((lambda v: isinstance(v, bool) or v in COMPILE_MODES), f"true, false or one of {COMPILE_MODES}"),
    ),
    ("trainer.max_epochs", _integer(-1)),
    ("trainer.max_steps", _integer(-1)),
    ("trainer.min_epochs", _integer(0)),
    ("trainer.check_val_every_n_epoch", _integer(1)),
    ("trainer.log_every_n_steps", _integer(1)),
    ("trainer.accumulate_grad_batches", _integer(1)),
    ("seed", _integer(0)),
    ("torch_threads", _integer(1)),
    ("callbacks.early_stopping.patience", _integer(0)),
    ("model.optimizer.lr", _number(0)),  # 0 is allowed: a frozen model, as a diagnostic
    ("model.optimizer.weight_decay", _number(0)),
    ("datamodule.batch_size", _integer(1)),
    ("datamodule.eval_batch_size", _integer(1)),
    ("datamodule.max_len", _integer(1)),
    ("model.net.*dropout*", _number(0, 1)),
    ("model.net.embedding_size", _integer(1)),
    ("model.net.hidden_size", _integer(1)),
    ("model.net.num_layers", _integer(1)),
    ("model.net.num_heads", _integer(1)),
    ("model.net.max_len", _integer(1)),
]


def check_values(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first key of :data:`RULES` whose value is of the wrong type or
    out of range; null passes (the component's own default applies)."""
    for key, value in _leaves(cfg, {pattern.split(".")[0] for pattern, _ in RULES}):
        _check_rule(key, value)
    _check_validation_runs(cfg)


def _check_validation_runs(cfg: DictConfig) -> None:
    """A row's epoch is selected, and early stopping decided, on validation: a run that would never
    validate has nothing to select, and Lightning would stop it at the end of its first epoch."""
    trainer = cfg.get("trainer") or {}
    instead = (
        f"the epoch is selected and early stopping decided on {cfg.get('monitor')}; to time a few training "
        "steps, set +trainer.max_steps=N instead (the row says `cap N steps`)"
    )
    limit = trainer.get("limit_val_batches")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit == 0:
        raise ConfigError(f"trainer.limit_val_batches={limit!r} turns validation off, but {instead}")
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    if isinstance(every, int) and isinstance(epochs, int) and 0 < epochs < every:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}: no epoch would be "
            f"validated, but {instead}"
        )


def _check_rule(key: str, value: Any) -> None:
    for pattern, (ok, expected) in RULES:
        if value is not None and fnmatch.fnmatchcase(key, pattern) and not ok(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")


def _leaves(cfg: DictConfig, roots: set[str], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, resolved scalar) of every leaf under ``roots``; interpolations that cannot be resolved
    here (they need Hydra's runtime) are skipped."""
    for name in cfg:
        key = f"{prefix}{name!s}"
        if not prefix and name not in roots:
            continue
        try:
            value = cfg[name]
        except Exception:
            continue
        if isinstance(value, DictConfig):
            yield from _leaves(value, roots, f"{key}.")
        elif not isinstance(value, ListConfig):
            yield key, value
