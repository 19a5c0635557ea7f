"""Walking the TOML tree: typed reads with the dotted path of every key for errors."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Reader:
    """Walks one table of the TOML tree, remembering its dotted path for errors."""

    def __init__(self, source: str, path: str, table: Mapping[str, Any]) -> None:
        self.source = source
        self.path = path
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        return self.table.get(name, default)

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._get(name, default)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return ""
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {type(value).__name__}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...] | list[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise self.fail(name, "must be a finite number")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum:g}")
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, not {type(value).__name__}")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, not {type(value).__name__}")
        return value

    def duration(self, name: str, default: float, *, positive: bool = False) -> float:
        value = self._get(name, default)
        if isinstance(value, bool):
            raise self.fail(name, "must be a duration such as 30, '30s', '5m' or '7d'")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise self.fail(name, "must be a duration such as 30, '30s', '5m' or '7d'")
        if not math.isfinite(seconds):
            raise self.fail(name, "must be a finite duration")
        if seconds < 0:
            raise self.fail(name, "must not be negative")
        if positive and seconds == 0:
            raise self.fail(name, "must be more than 0")
        return seconds

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(name, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of strings")
        return tuple(value)

    def table_(self, name: str) -> Mapping[str, Any]:
        value = self._get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table")
        return value

    def secret(self, name: str, *, required: bool = False) -> str:
        """A secret given inline, as `name_env` (variable) or as `name_file` (path)."""
        inline = self._get(name, None)
        env = self._get(f"{name}_env", None)
        path = self._get(f"{name}_file", None)
        given = [k for k, v in ((name, inline), (f"{name}_env", env), (f"{name}_file", path)) if v]
        if len(given) > 1:
            raise self.fail(name, f"give only one of {', '.join(given)}")
        if env:
            if not isinstance(env, str):
                raise self.fail(f"{name}_env", "must be the name of an environment variable")
            if env not in os.environ:
                raise self.fail(f"{name}_env", f"environment variable {env} is not set")
            return os.environ[env]
        if path:
            if not isinstance(path, str):
                raise self.fail(f"{name}_file", "must be a path")
            try:
                return Path(path).read_text().strip()
            except OSError as e:
                raise self.fail(f"{name}_file", f"cannot read {path}: {e.strerror}") from e
            except ValueError as e:  # a NUL in the path
                raise self.fail(f"{name}_file", f"cannot read {path!r}: {e}") from e
        if inline is None or inline == "":
            if required:
                raise self.fail(name, f"is required (or {name}_env / {name}_file)")
            return ""
        if not isinstance(inline, str):
            raise self.fail(name, "must be a string")
        return inline

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key")
