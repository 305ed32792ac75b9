"""
Loading (`load_config`) goes in four steps, and every problem found on the way is kept, so
one `ConfigError` lists all of them, one `path: message` per line (`targets[1].gatways:
unknown key (did you mean 'gateways'?)`):

1. The YAML file is parsed. Duplicate keys are errors (PyYAML would silently keep the last
   one). Two tags keep secrets out of the file: `!env NAME` is the value of the
   environment variable `NAME`; `!file PATH` is the content of a file (trailing newlines
   removed; a relative path is relative to the config file, as in Prometheus).
2. Environment overrides are applied. A variable named `ALIYUN_VPN_EXPORTER_` followed by
   a path whose steps are joined by a double underscore sets that key, whatever the file
   says::

       ALIYUN_VPN_EXPORTER_POLL__INTERVAL=1m
       ALIYUN_VPN_EXPORTER_TARGETS__0__INTERVAL=30s          # list items by index
       ALIYUN_VPN_EXPORTER_CREDENTIALS__PROD__ACCESS_KEY_SECRET=...
       ALIYUN_VPN_EXPORTER_API__RATE_LIMITS__GetVpnGatewayDiagnoseResult=96/min
       ALIYUN_VPN_EXPORTER_ADMIN__ALLOWED_DESTINATIONS='["10.0.0.0/8"]'

   Steps that name a field match it in any case; steps that name a map key (a profile, an
   action) match an existing key in any case, with `-` and `_` alike, or else are taken as
   written. A list item must already exist in the file. Values are strings, which the
   models convert (numbers, booleans, durations); where the path ends at a list or a
   mapping the value is JSON. Only names with a `__` after the prefix are overrides (other
   `ALIYUN_VPN_EXPORTER_*` variables are left to the command line), and an override that
   names no known key is an error like any misspelt key in the file.
3. `!env`/`!file` values are read.
4. The models validate the result, then the cross-references (profiles named by targets,
   unique target names, a gateway listed once).

Secrets (`SecretStr`) never reach an error message, `repr`, or `model_dump_json()`: error
messages are built from pydantic's message only, never from the input, and YAML errors
carry the line and column but not the offending text.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from exporter.config.model import Config
from exporter.config.problems import (
    child_annotation,
    field_names,
    is_model,
    translate_error,
    unwrap_annotation,
)
from exporter.config.values import (
    MAX_EXPANDED_VALUES,
    ConfigError,
    PathPart,
    expanded_size,
    format_duration,
    format_path,
)

ENV_PREFIX = "ALIYUN_VPN_EXPORTER_"
"""Prefix of the environment variables that override config keys (see the module doc)."""


# --- YAML -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EnvRef:
    """`!env NAME`, read once the document is complete (so errors can name the key)."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class _FileRef:
    """`!file PATH`, read once the document is complete."""

    path: str
    line: int


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""LibYAML's parser when PyYAML was built with it: a config listing 10,000 gateways parses
in some 0.1 s instead of 1 s (the constructor, where the checks below live, is the same)."""


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """Safe YAML with `!env` and `!file`, noting every duplicate key (PyYAML would keep the
    last one silently) so that all of them are reported at once."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[yaml.MarkedYAMLError] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set 0`: PyYAML names the problem
            return super().construct_mapping(node, deep=deep)
        seen: set[object] = set()
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                self.duplicates.append(
                    yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice",
                        key_node.start_mark,
                    )
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _tag_constructor(
    make: Callable[[str, int], object], needs: str
) -> Callable[[yaml.SafeLoader, yaml.Node], object]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag} needs {needs}", node.start_mark
            )
        return make(str(node.value).strip(), node.start_mark.line + 1)

    return construct


_Loader.add_constructor("!env", _tag_constructor(_EnvRef, "the name of an environment variable"))
_Loader.add_constructor("!file", _tag_constructor(_FileRef, "a file path"))


def _yaml_problem(source: str, error: yaml.YAMLError) -> str:
    # str(error) would quote the offending line, which may hold a secret.
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        text = f"{source}:{mark.line + 1}:{mark.column + 1}: {error.problem}"
        if error.context and error.context_mark is not None:
            text += f" ({error.context} at line {error.context_mark.line + 1})"
        return text
    if isinstance(error, yaml.reader.ReaderError):
        return f"{source}: not readable as text at position {error.position}: {error.reason}"
    return f"{source}: not valid YAML"


# --- loading ----------------------------------------------------------------------------


def _norm(key: str) -> str:
    return key.lower().replace("-", "_")


class _Overrides:
    """Environment overrides applied to the parsed document; remembers which variable set
    which path, so errors can name it."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.failed: set[str] = set()
        self.sources: dict[str, str] = {}

    def apply(self, data: dict[str, Any], environ: Mapping[str, str]) -> None:
        names = [
            name
            for name in environ
            if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
        ]
        # Shorter paths first: `TARGETS__0` (a whole target) before `TARGETS__0__INTERVAL`.
        for name in sorted(names, key=lambda name: (name.count("__"), name)):
            steps = name[len(ENV_PREFIX) :].split("__")
            if not all(steps):
                self.problems.append(("", f"{name}: empty step in the key path"))
                continue
            self._apply_one(data, name, steps, environ[name])

    def _apply_one(self, data: dict[str, Any], name: str, steps: list[str], value: str) -> None:
        node: Any = data
        annotation: Any = Config
        path: list[PathPart] = []
        for position, step in enumerate(steps):
            last = position == len(steps) - 1
            unwrapped, discriminator = unwrap_annotation(annotation)
            key: PathPart
            if isinstance(node, list):
                if not step.isdigit() or int(step) >= len(node):
                    where = format_path(path)
                    self.problems.append((where, f"{name}: no item {step} in this list"))
                    return
                key = int(step)
            elif isinstance(node, dict):
                if is_model(unwrapped) or discriminator:
                    fields = {_norm(field): field for field in field_names(annotation)}
                    key = fields.get(_norm(step), step.lower())
                else:
                    key = next((k for k in node if _norm(str(k)) == _norm(step)), step)
            else:
                self.problems.append(
                    (format_path(path), f"{name}: not a section, cannot hold keys")
                )
                return
            annotation, _ = child_annotation(annotation, key, node)
            path.append(key)
            if last:
                node[key] = self._value(name, value, annotation, path)
                self.sources[format_path(path)] = name
            else:
                if isinstance(node, dict) and key not in node:
                    sequence = typing.get_origin(unwrap_annotation(annotation)[0]) in (list, tuple)
                    node[key] = [] if sequence else {}
                node = node[key]

    def _value(self, name: str, value: str, annotation: Any, path: list[PathPart]) -> object:
        unwrapped, discriminator = unwrap_annotation(annotation)
        container = (
            is_model(unwrapped)
            or discriminator is not None
            or typing.get_origin(unwrapped) in (dict, list, tuple)
        )
        if not container:
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            where = format_path(path)
            self.problems.append((where, f"{name}: a list or mapping is given as JSON"))
            self.failed.add(where)
            return None

    def source_of(self, path: str) -> str | None:
        """The variable that set `path` or one of its sections, if any did."""
        for prefix, name in self.sources.items():
            if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
                return name
        return None


def _resolve_refs(
    node: Any,
    loc: list[PathPart],
    environ: Mapping[str, str],
    base_dir: Path,
    problems: list[tuple[str, str]],
    failed: set[str],
) -> Any:
    """`node` with `!env`/`!file` values read; a value that cannot be read is reported and
    left in place (so that validation can go on with the rest)."""
    if isinstance(node, dict):
        return {
            key: _resolve_refs(value, [*loc, key], environ, base_dir, problems, failed)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            _resolve_refs(value, [*loc, index], environ, base_dir, problems, failed)
            for index, value in enumerate(node)
        ]
    if isinstance(node, _EnvRef):
        if node.name in environ:
            return environ[node.name]
        problem = f"environment variable {node.name} is not set (!env, line {node.line})"
    elif isinstance(node, _FileRef):
        path = Path(node.path)
        try:
            path = path.expanduser()
            path = path if path.is_absolute() else base_dir / path
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, ValueError, RuntimeError) as error:
            # ValueError: not UTF-8, or a NUL in the path; RuntimeError: `~nosuchuser/`
            if isinstance(error, RuntimeError):
                reason = "no such home directory"
            elif isinstance(error, OSError):
                reason = error.strerror or "cannot read"
            elif isinstance(error, UnicodeDecodeError):
                reason = "not UTF-8 text"
            else:
                reason = "not a file path"
            problem = f"cannot read {path}: {reason} (!file, line {node.line})"
    else:
        return node
    where = format_path(loc)
    problems.append((where, problem))
    failed.add(where)
    return node


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override, resolve and validate the config file; `environ` (default
    `os.environ`) supplies overrides and `!env` values. Raises `ConfigError`."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            [("", f"{path}: cannot read the config file: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([("", f"{path}: the config file is not UTF-8 text")]) from None
    try:
        loader = _Loader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError([("", _yaml_problem(str(path), error))]) from None
    except RecursionError:
        raise ConfigError([("", f"{path}: not valid YAML (nested too deeply)")]) from None
    if loader.duplicates:
        raise ConfigError([("", _yaml_problem(str(path), error)) for error in loader.duplicates])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"{path}: the config file must hold a mapping of sections")])
    if expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise ConfigError(
            [
                (
                    "",
                    f"{path}: the config expands to more than {MAX_EXPANDED_VALUES:,} values "
                    "(YAML aliases repeating aliases?)",
                )
            ]
        )

    overrides = _Overrides()
    overrides.apply(data, environ)
    problems = list(overrides.problems)
    failed = set(overrides.failed)
    data = _resolve_refs(data, [], environ, path.parent, problems, failed)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            for where, message in translate_error(item):
                if where not in failed:
                    source = overrides.source_of(where)
                    problems.append((where, f"{message} (from {source})" if source else message))
    else:
        if not problems:
            return config
    raise ConfigError(problems)


def check_config(path: str | Path, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """`--check-config`: the exit code and what to print (every problem, or a summary
    that names profiles and their sources but never a secret)."""
    try:
        config = load_config(path, environ)
    except ConfigError as error:
        lines = [f"{path}: invalid configuration"]
        lines += [f"  {line}" for line in str(error).splitlines()]
        return 1, "\n".join(lines)
    return 0, summary(path, config)


def summary(path: str | Path, config: Config) -> str:
    """What `--check-config` prints of a valid config: profiles, targets, schedules."""
    poll = config.poll
    stale = (
        f"dropped after {format_duration(poll.stale_after)}"
        if poll.stale_after
        else "latest known kept"
    )
    lines = [
        f"{path}: OK",
        "  credentials: "
        + ", ".join(f"{name} ({profile.source})" for name, profile in config.credentials.items()),
        f"  poll: every {format_duration(poll.interval)}, data {stale}",
        f"  targets: {len(config.targets)}",
    ]
    for target in config.targets:
        details = [
            f"region {target.region_id}",
            f"profile {target.credentials}",
            f"every {format_duration(config.interval_for(target))}",
            f"gateways listed: {len(target.gateways)}",
        ]
        if target.discover is not None:
            details.append(f"discovery every {format_duration(target.discover.interval)}")
        lines.append(f"    {target.name}: " + ", ".join(details))
    diagnose = config.diagnose
    lines.append(
        f"  diagnose: every {format_duration(diagnose.interval)}"
        if diagnose.enabled
        else "  diagnose: off"
    )
    lines.append(f"  admin: {'on' if config.admin.enabled else 'off'}")
    warnings = config.warnings()
    if warnings:
        lines.append("  warnings:")
        lines += [f"    {path}: {message}" for path, message in warnings]
    return "\n".join(lines)
