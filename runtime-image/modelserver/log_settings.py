"""Triton's logging extension (``GET/POST /v2/logging``, gRPC ``LogSettings``).

The settings drive the standard ``logging`` tree: the root level follows the most verbose
enabled kind, and a filter on the root handlers drops the kinds switched off. modelserver
always writes JSON lines to stderr, so only ``log_file: ""`` and ``log_format: "default"``
are accepted (anything else is refused naming the field, never silently ignored).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from modelserver.errors import InvalidInput

_BOOLS = ("log_info", "log_warning", "log_error")


@dataclass
class _Settings:
    log_file: str = ""
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_verbose_level: int = 0
    log_format: str = "default"


class _KindFilter(logging.Filter):
    def __init__(self, settings: _Settings) -> None:
        super().__init__("modelserver.log_settings")
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        s = self.settings
        if record.levelno >= logging.ERROR:
            return s.log_error
        if record.levelno >= logging.WARNING:
            return s.log_warning
        if record.levelno >= logging.INFO:
            return s.log_info
        return s.log_verbose_level > 0


class LogSettings:
    def __init__(self, root: logging.Logger | None = None) -> None:
        self.root = root or logging.getLogger()
        level = self.root.level
        self.settings = _Settings(
            log_info=level <= logging.INFO,
            log_warning=level <= logging.WARNING,
            log_error=level <= logging.ERROR,
            log_verbose_level=1 if level <= logging.DEBUG else 0,
        )
        self.filter = _KindFilter(self.settings)

    def get(self) -> dict[str, Any]:
        return asdict(self.settings)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate every field first (nothing changes on a bad request), then apply."""
        if not isinstance(changes, dict):
            raise InvalidInput("log settings: the request body must be a JSON object")
        new = _Settings(**asdict(self.settings))
        for key, value in changes.items():
            if key in _BOOLS:
                if not isinstance(value, bool):
                    raise InvalidInput(f"log settings: '{key}' must be a boolean, got {value!r}")
                setattr(new, key, value)
            elif key == "log_verbose_level":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise InvalidInput(f"log settings: 'log_verbose_level' must be an integer >= 0, got {value!r}")
                new.log_verbose_level = value
            elif key == "log_file":
                if value != "":
                    raise InvalidInput("log settings: 'log_file' must be \"\": modelserver logs to stderr only")
            elif key == "log_format":
                if value != "default":
                    raise InvalidInput("log settings: 'log_format' must be \"default\" (JSON lines on stderr)")
            else:
                raise InvalidInput(f"log settings: unknown setting '{key}'")
        for field, value in asdict(new).items():
            setattr(self.settings, field, value)
        self.apply()
        return self.get()

    def apply(self) -> None:
        s = self.settings
        if s.log_verbose_level > 0:
            level = logging.DEBUG
        elif s.log_info:
            level = logging.INFO
        elif s.log_warning:
            level = logging.WARNING
        else:
            level = logging.ERROR
        self.root.setLevel(level)
        for handler in self.root.handlers:
            if self.filter not in handler.filters:
                handler.addFilter(self.filter)
