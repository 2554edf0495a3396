"""The one reader of small settings files from outside (JSON and TOML): capped in size, UTF-8,
bounded in nesting, every failure one line naming the file and the fix.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError, MnistCnnError, first_line

MAX_SETTINGS_BYTES = 1_000_000  # a settings file holds a few hundred bytes; refuse anything absurd
MAX_DEPTH = 32  # settings are flat tables; deeper nesting is an attack, not a config


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists/dicts, counted without recursion (a hostile file may nest 100,000 deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_settings(path: Path, what: str, *, error: type[MnistCnnError] = ConfigError,
                  max_bytes: int = MAX_SETTINGS_BYTES, fix: str = "check the path") -> Any:
    """Parse `path` as JSON (`.json`) or TOML (anything else), refusing what no settings file is.

    `what` names the file in messages ("config file", "search space"); `error` is the
    exception raised; `fix` ends the message of an unreadable file.
    """
    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{what} {path} is over {max_bytes:,} bytes; it should hold a few settings")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}; {fix}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text; save it as UTF-8 {kind}") from None
    try:
        values = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except RecursionError:
        raise error(f"{what} {path} is nested too deeply; it should be a flat table of settings") from None
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise error(f"{what} {path} is not valid {kind}: {first_line(e)}") from None
    if _depth(values, MAX_DEPTH) > MAX_DEPTH:
        raise error(f"{what} {path} is nested more than {MAX_DEPTH} levels deep; it should be a flat table")
    return values
