"""The parsers of settings' values, and the error they raise: integers, ports, lists, origins, rates, networks,
URIs, secrets. :mod:`restengine.config` declares the settings with them (and re-exports them all); the stack's
settings and the access policy use them too. Nothing here does I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """A setting is missing or invalid; ``str()`` is a one-line reason naming it."""


def parse_int(name: str, raw: Any, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def parse_port(name: str, raw: Any) -> int:
    value = parse_int(name, raw, 1)
    if value > 65535:
        raise ConfigError(f"{name}: not a TCP port: {value}")
    return value


def parse_str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"{name}: expected a string, got {raw!r}")
    return raw.strip()


def parse_optional_str(name: str, raw: Any) -> str | None:
    return parse_str(name, raw) or None if raw is not None else None


def parse_list(name: str, raw: Any) -> tuple[str, ...]:
    items = [str(item).strip() for item in raw] if isinstance(raw, (list, tuple)) else parse_str(name, raw).split(",")
    return tuple(item for item in (i.strip() for i in items) if item)


def parse_url_prefix(name: str, raw: Any) -> str:
    value = parse_str(name, raw).rstrip("/")
    if not value.startswith("/") or any(c in value for c in "?#<> ") or "//" in value:
        raise ConfigError(f"{name}: expected a path such as /api, got {raw!r}")
    return value


def parse_origins(name: str, raw: Any) -> tuple[str, ...]:
    """Exact browser origins (``scheme://host[:port]``), or ``*`` alone; none: CORS off."""
    origins = parse_list(name, raw)
    if origins == ("*",):
        return origins
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin == "*" or not sep or scheme not in ("http", "https") or not rest or any(c in rest for c in "/?#*@ "):
            raise ConfigError(f"{name}: expected origins such as https://app.example.com (or * alone), got {origin!r}")
    return origins


def parse_expensive(name: str, raw: Any) -> tuple[str, ...]:
    """``*``, ``<resource>`` or ``<resource>.<path>[__<operator>]`` entries (see ``ResourceOptions.expensive``)."""
    entries = parse_list(name, raw)
    for entry in entries:
        if not re.fullmatch(r"\*|\w+(\.\w+)?", entry):
            raise ConfigError(f"{name}: expected *, a resource, or resource.field__operator, got {entry!r}")
    return entries


def parse_rate(name: str, raw: Any) -> str | None:
    """A rate such as ``600/minute`` or ``10 per second`` (the ``limits`` library's notation), or ``off``: ``None``."""
    value = parse_str(name, raw).lower()
    if value in ("off", "none", ""):
        return None
    from limits import parse_many  # notation only, no I/O

    try:
        rates = parse_many(value)
    except ValueError:
        rates = []
    if len(rates) != 1 or rates[0].amount < 1:
        raise ConfigError(f"{name}: expected a rate such as 600/minute (or off), got {raw!r}")
    return value


def parse_networks(name: str, raw: Any) -> tuple[str, ...]:
    """Addresses or networks (``10.0.0.0/8``, ``::1``), comma-separated."""
    import ipaddress

    entries = parse_list(name, raw)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: expected addresses or networks such as 10.0.0.0/8, got {entry!r}") from None
    return entries


def parse_choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = parse_str(name, raw).lower()
        if value not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def parse_mongodb_uri(name: str, raw: Any) -> str | None:
    uri = parse_optional_str(name, raw)
    if uri is None:
        return None
    if uri.startswith("mongodb+srv://"):
        return uri  # parsing an SRV URI resolves DNS; the driver checks it on connect
    if not uri.startswith("mongodb://"):
        raise ConfigError(f"{name}: must start with mongodb:// or mongodb+srv://, got {uri!r}")
    from pymongo.uri_parser import parse_uri  # pure parsing, no I/O

    try:
        parse_uri(uri)
    except Exception as exc:  # InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"{name}: {exc}") from None
    return uri


def parse_redis_url(name: str, raw: Any) -> str | None:
    """An optional Redis URL: one server, ``redis+sentinel://`` or ``redis+cluster://`` (:mod:`restengine.redisurl`).

    Raises :class:`ConfigError` naming the setting and what is wrong, the password never shown.
    """
    from restengine.redisurl import parse  # pure parsing, no I/O

    url = parse_optional_str(name, raw)
    if url is None:
        return None
    try:
        parse(url)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (got {_without_password(url)!r})") from None
    return url


def _without_password(url: str) -> str:
    """``url`` with the password of its user info masked, so an error message never shows a secret."""
    head, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{head}{sep}{userinfo.partition(':')[0]}:***@{hosts}"


MIN_SECRET_BYTES = 32
"""The shortest secret key accepted (UTF-8 bytes): a shorter one could be guessed, and cursors forged."""


def parse_secret(name: str, value: str | None) -> str | None:
    """An optional secret key (unset stays ``None``); a set one must pass :func:`check_secret`."""
    if value is not None:
        check_secret(value, name)
    return value


def check_secret(secret: str | bytes, name: str = "RESTENGINE_SECRET_KEY") -> bytes:
    """``secret`` as the bytes that sign cursors; raises :class:`ConfigError` naming ``name`` when it is too short."""
    data = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{name}: must be at least {MIN_SECRET_BYTES} bytes of random text (it signs pagination cursors), "
            f"got {len(data)}; make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return data


READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")
"""MongoDB's read preference modes, as the server and PyMongo spell them."""

MIN_MAX_STALENESS_S = 90
"""The smallest ``maxStalenessSeconds`` a server accepts (and PyMongo with the default heartbeat)."""


def parse_read_preference(name: str, raw: Any) -> str:
    """A read preference mode (``secondaryPreferred``...), matched without regard to case, in MongoDB's spelling."""
    value = parse_str(name, raw)
    for mode in READ_PREFERENCES:
        if value.lower() == mode.lower():
            return mode
    raise ConfigError(f"{name}: expected one of {', '.join(READ_PREFERENCES)}, got {raw!r}")


def parse_max_staleness(name: str, raw: Any) -> int | None:
    """Seconds for PyMongo's ``maxStalenessSeconds`` (at least 90, as the server requires); unset or ``off``:
    ``None``."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "off", "none")):
        return None
    value = parse_int(name, raw)
    if value < MIN_MAX_STALENESS_S:
        raise ConfigError(
            f"{name}: must be >= {MIN_MAX_STALENESS_S} (the server's smallest maxStalenessSeconds), got {value}"
        )
    return value
