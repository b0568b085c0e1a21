"""Who a request comes from, as the access policy sees it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Principal:
    """The caller: ``kind`` says how it was established (``anonymous``, ``key``, ``jwt`` or ``app``)."""

    kind: str
    subject: str | None = None
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal("anonymous")


def caller_of(principal: Principal, environ: Mapping[str, Any]) -> str:
    """Whose budget a request spends: the principal's subject, else the client address."""
    if principal.anonymous or not principal.subject:
        return f"addr:{environ.get('REMOTE_ADDR') or '-'}"
    return f"{principal.kind}:{principal.subject}"


class InvalidCredentials(Exception):
    """Credentials were sent and are not valid (malformed, unknown, revoked, expired, badly signed).

    ``str()`` is a short reason safe to show the client: it never repeats the credential.
    """
