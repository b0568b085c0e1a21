"""The access policy: which actions each kind of caller may take on each resource.

A policy file (``RESTENGINE_POLICY``, TOML) names, per resource, the actions
(``read``, ``create``, ``update``, ``delete``) of anonymous callers and of each
role; ``"*"`` stands for every resource::

    [anonymous]
    books = ["read"]

    [roles.editor]
    books = ["read", "create", "update", "delete"]
    "*" = ["read"]

    [roles.clerk.orders]          # a role's rule for one resource, as a table
    actions = ["read", "create"]

An authenticated caller may do what its roles allow and, in addition, what
anonymous callers may. Row rules (``where``) and field rules (``hidden``,
``read_only``) per role are refused with a clear error: they are not enforced
yet, and a policy that seemed to apply them would give a false sense of safety.

Without a policy file the default applies: anonymous callers (and every
authenticated caller) read every resource; the ``admin`` role may do
everything.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from restengine.auth.principal import Principal
from restengine.config import ConfigError

ACTIONS = ("read", "create", "update", "delete")
EVERY = "*"
ADMIN = "admin"
NOT_YET = ("where", "hidden", "read_only")

Rules = Mapping[str, frozenset[str]]  # resource name (or "*") -> actions


@dataclasses.dataclass(frozen=True)
class Policy:
    """Who may do what. ``anonymous`` and each of ``roles`` map resource names (or ``"*"``) to actions."""

    anonymous: Rules
    roles: Mapping[str, Rules]
    source: str = "the default policy"

    def allows(self, principal: Principal, resource: str, action: str) -> bool:
        """Whether ``principal`` may take ``action`` on the resource named ``resource``."""
        if _grants(self.anonymous, resource, action):
            return True
        return any(_grants(self.roles.get(role, {}), resource, action) for role in principal.roles)

    def anonymous_may_write(self) -> bool:
        """Whether any write is open to anonymous callers."""
        return any(actions - {"read"} for actions in self.anonymous.values())


def _grants(rules: Rules, resource: str, action: str) -> bool:
    return action in rules.get(resource, ()) or action in rules.get(EVERY, ())


DEFAULT = Policy(
    anonymous={EVERY: frozenset({"read"})},
    roles={ADMIN: {EVERY: frozenset(ACTIONS)}},
)


def load_policy(path: str | Path, resources: Collection[str]) -> Policy:
    """Read and check the policy file at ``path`` against the served ``resources``' names.

    Raises :class:`ConfigError` (one line, naming ``RESTENGINE_POLICY`` and the
    offending entry) for a file that cannot be read or parsed, an unknown
    action, resource or key, or a row or field rule.
    """
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"RESTENGINE_POLICY: cannot read {str(path)!r}: {exc}") from None
    unknown = set(document) - {"anonymous", "roles"}
    if unknown:
        raise ConfigError(f"RESTENGINE_POLICY: unknown sections {sorted(unknown)} (expected anonymous, roles)")
    anonymous = _rules(document.get("anonymous", {}), "anonymous", resources)
    roles_table = document.get("roles", {})
    if not isinstance(roles_table, Mapping):
        raise ConfigError("RESTENGINE_POLICY: roles must be a table of roles")
    roles = {str(role): _rules(rules, f"roles.{role}", resources) for role, rules in roles_table.items()}
    return Policy(anonymous, roles, source=str(path))


def _rules(table: Any, where: str, resources: Collection[str]) -> Rules:
    if not isinstance(table, Mapping):
        raise ConfigError(f"RESTENGINE_POLICY: [{where}] must be a table of resource = [actions]")
    rules: dict[str, frozenset[str]] = {}
    for resource, value in table.items():
        entry = f"{where}.{resource}"
        if resource != EVERY and resource not in resources:
            raise ConfigError(f"RESTENGINE_POLICY: {entry}: no resource named {resource!r} is served")
        if isinstance(value, Mapping):
            refused = sorted(set(value) & set(NOT_YET))
            if refused:
                raise ConfigError(
                    f"RESTENGINE_POLICY: {entry}: {', '.join(refused)} (row and field rules) are not supported yet"
                )
            if set(value) != {"actions"}:
                raise ConfigError(f"RESTENGINE_POLICY: {entry}: expected only 'actions', got {sorted(value)}")
            value = value["actions"]
        rules[resource] = _actions(value, entry)
    return rules


def _actions(value: Any, entry: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"RESTENGINE_POLICY: {entry}: expected a list of actions ({', '.join(ACTIONS)})")
    unknown = sorted(set(value) - set(ACTIONS))
    if unknown:
        raise ConfigError(f"RESTENGINE_POLICY: {entry}: unknown actions {unknown} (expected {', '.join(ACTIONS)})")
    return frozenset(value)


OPEN = Policy({EVERY: frozenset(ACTIONS)}, {}, source="RESTENGINE_AUTH=off")
"""Every action on every resource for everyone."""
