"""Reading the environment: typed getters with embedded defaults.

Every setting Chatsite reads from the environment goes through here, so a value that
is set but wrong fails at startup with a message that names the variable.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def require_together(feature: str, names: list[str], *, optional: list[str] | None = None) -> bool:
    """True when `feature` is switched on; fail when only part of its variables are set.

    A half-configured integration is a deployment mistake: say which variables are missing
    instead of silently falling back to the embedded default.
    """
    present = [n for n in names if env_str(n)]
    if not present:
        return False
    missing = [n for n in names if not env_str(n)]
    if missing:
        raise ImproperlyConfigured(
            f"{feature} is half-configured: {', '.join(present)} set but {', '.join(missing)} missing"
        )
    return True
