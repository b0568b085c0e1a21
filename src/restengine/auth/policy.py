"""The access policy: which actions each kind of caller may take on each resource.

A policy file (``RESTENGINE_POLICY``, TOML) names, per resource, the actions
(``read``, ``create``, ``update``, ``delete``) of anonymous callers and of each
role; ``"*"`` stands for every resource::

    [anonymous]
    books = ["read"]

    [roles.editor]
    books = ["read", "create", "update", "delete"]
    "*" = ["read"]

    [roles.customer.orders]       # a role's rule for one resource, as a table
    actions = ["read", "create"]
    where = { customer = "{sub}" } # only documents whose customer is the caller's subject
    hidden = ["note"]              # fields this role never sees or writes
    read_only = ["status"]         # fields this role sees and never writes
    rate_limit = "120/minute"      # this role's reads of orders, counted apart (see below)

    [roles.partner."*"]
    actions = ["read"]
    rate_limit = "6000/minute"     # reads of every resource: the role's own limit
    write_rate_limit = "off"       # writes: no limit

An authenticated caller may do what its roles allow and, in addition, what
anonymous callers may. When several rules grant the same action on a
resource (anonymous and a role, or two roles), the most permissive wins: the
documents any of them reaches (the ``where`` conditions combined with *or*;
a rule without ``where`` reaches every document), and the fields every one
of them hides (or makes read-only). ``where`` compares fields with values,
which may name the caller's claims: ``{sub}`` is its subject, ``{name}`` the
claim ``name`` (a rule whose claims the caller lacks reaches no document).

``rate_limit`` and ``write_rate_limit`` override ``RESTENGINE_RATE_LIMIT`` and
``RESTENGINE_WRITE_RATE_LIMIT`` for the callers a section describes (anonymous
callers, or a role's members); a rule may set them without ``actions``. On
``"*"`` the limit replaces the default one, shared by every resource; on one
resource the requests to that resource are counted apart, against its own
limit. A caller with several roles gets the most generous limit among them;
an authenticated caller's limits come from its roles only.

``metrics = ["read"]`` in a role's section lets its members read ``/metrics``
from any address (not only the ones ``RESTENGINE_METRICS_ALLOW`` names).

Without a policy file the default applies: anonymous callers (and every
authenticated caller) read every resource; the ``admin`` role may do
everything.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from restengine.auth.principal import Principal
from restengine.config_values import ConfigError, parse_rate

ACTIONS = ("read", "create", "update", "delete")
EVERY = "*"
METRICS = "metrics"  # not a resource: ``metrics = ["read"]`` lets a role scrape /metrics from anywhere
ADMIN = "admin"
RULE_KEYS = frozenset({"actions", "where", "hidden", "read_only", "rate_limit", "write_rate_limit"})
LIMIT_KEYS = ("rate_limit", "write_rate_limit")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.:-]*)\}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one section grants on one resource: actions, and the documents and fields they reach."""

    actions: frozenset[str]
    where: Mapping[str, Any] | None = None  # client field path -> value, ``{claim}`` placeholders allowed
    hidden: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    rate_limit: str | None = None  # a rate (``600/minute``), ``off``, or ``None``: not set here
    write_rate_limit: str | None = None


Rules = Mapping[str, Rule]  # resource name (or "*") -> its rule


@dataclasses.dataclass(frozen=True)
class View:
    """What a caller reaches with one action on one resource: the merge of every rule that grants it.

    ``where`` holds the alternatives (each a field path -> value mapping with
    the caller's claims filled in); ``None`` means every document.
    """

    where: tuple[Mapping[str, Any], ...] | None
    hidden: frozenset[str]
    read_only: frozenset[str]

    @property
    def unrestricted(self) -> bool:
        return self.where is None and not self.hidden and not self.read_only


@dataclasses.dataclass(frozen=True)
class Policy:
    """Who may do what. ``anonymous`` and each of ``roles`` map resource names (or ``"*"``) to a :class:`Rule`."""

    anonymous: Rules
    roles: Mapping[str, Rules]
    source: str = "the default policy"

    def rules(self, principal: Principal, resource: str, action: str) -> list[Rule]:
        """The rules granting ``principal`` ``action`` on ``resource`` (none: refused)."""
        sections = [self.anonymous, *(self.roles.get(role, {}) for role in sorted(principal.roles))]
        found = [section.get(resource) or section.get(EVERY) for section in sections]
        return [rule for rule in found if rule is not None and action in rule.actions]

    def limits(self, principal: Principal, resource: str, key: str) -> list[tuple[str, str]]:
        """The rates (``600/minute`` or ``off``) the sections describing ``principal`` set with ``key``
        (``rate_limit`` or ``write_rate_limit``) for ``resource``, each with what it applies to: ``resource``
        (a rule of that resource) or ``"*"``. Anonymous callers are described by ``[anonymous]``, others by
        their roles' sections."""
        sections = [self.anonymous] if principal.anonymous else [self.roles.get(r, {}) for r in sorted(principal.roles)]
        found: list[tuple[str, str]] = []
        for section in sections:
            for scope in (resource, EVERY):
                rate = getattr(section.get(scope), key, None)
                if rate is not None:
                    found.append((scope, rate))
                    break
        return found

    def reads_metrics(self, principal: Principal) -> bool:
        """Whether one of ``principal``'s roles names ``metrics = ["read"]`` (``"*"`` never covers it)."""
        for role in principal.roles:
            rule = self.roles.get(role, {}).get(METRICS)
            if rule is not None and "read" in rule.actions:
                return True
        return False

    def allows(self, principal: Principal, resource: str, action: str) -> bool:
        """Whether ``principal`` may take ``action`` on the resource named ``resource``."""
        return bool(self.rules(principal, resource, action))

    def view(self, principal: Principal, resource: str, action: str) -> View | None:
        """What ``action`` on ``resource`` reaches for ``principal``; ``None`` when no rule grants it."""
        granted = self.rules(principal, resource, action)
        if not granted:
            return None
        hidden = frozenset.intersection(*(rule.hidden for rule in granted))
        read_only = frozenset.intersection(*(rule.read_only for rule in granted))
        if any(rule.where is None for rule in granted):
            return View(None, hidden, read_only)
        filled = [_filled(rule.where, principal) for rule in granted if rule.where is not None]
        return View(tuple(where for where in filled if where is not None), hidden, read_only)


def _filled(where: Mapping[str, Any], principal: Principal) -> Mapping[str, Any] | None:
    """``where`` with the caller's claims in place of its placeholders; ``None`` if a claim is missing."""
    claims = {**principal.claims, "sub": principal.subject}
    out: dict[str, Any] = {}
    for path, value in where.items():
        if not isinstance(value, str):
            out[path] = value
            continue
        names = _PLACEHOLDER.findall(value)
        if any(not isinstance(claims.get(name), (str, int)) or isinstance(claims.get(name), bool) for name in names):
            return None
        out[path] = _PLACEHOLDER.sub(lambda m: str(claims[m.group(1)]), value)
    return out


DEFAULT = Policy(
    anonymous={EVERY: Rule(frozenset({"read"}))},
    roles={ADMIN: {EVERY: Rule(frozenset(ACTIONS))}},
)


def load_policy(path: str | Path, resources: Mapping[str, Collection[str]]) -> Policy:
    """Read and check the policy file at ``path`` against the served resources (name -> field names).

    Raises :class:`ConfigError` (one line, naming ``RESTENGINE_POLICY`` and the
    offending entry) for a file that cannot be read or parsed, an unknown
    action, resource, key or field, or a rule on ``"*"`` that names fields.
    The values of ``where`` are checked against the fields' types when the
    API compiles the policy (:meth:`restengine.api.access.Access.compile`).
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


def _rules(table: Any, section: str, resources: Mapping[str, Collection[str]]) -> Rules:
    if not isinstance(table, Mapping):
        raise ConfigError(f"RESTENGINE_POLICY: [{section}] must be a table of resource = [actions]")
    rules: dict[str, Rule] = {}
    for resource, value in table.items():
        entry = f"{section}.{resource}"
        if resource not in (EVERY, METRICS) and resource not in resources:
            raise ConfigError(f"RESTENGINE_POLICY: {entry}: no resource named {resource!r} is served")
        if not isinstance(value, Mapping):
            rules[resource] = Rule(_actions(value, entry))
            continue
        unknown = sorted(set(value) - RULE_KEYS)
        if unknown or not ({"actions", *LIMIT_KEYS} & set(value)):
            raise ConfigError(
                f"RESTENGINE_POLICY: {entry}: expected actions (and where, hidden, read_only, rate_limit, "
                f"write_rate_limit), got {sorted(value)}"
            )
        if resource == EVERY and set(value) - {"actions", *LIMIT_KEYS}:
            raise ConfigError(f'RESTENGINE_POLICY: {entry}: where, hidden and read_only need one resource, not "*"')
        fields = resources.get(resource, ())
        where = value.get("where")
        if where is not None and (not isinstance(where, Mapping) or not where):
            raise ConfigError(f"RESTENGINE_POLICY: {entry}.where: expected a table of field = value")
        rules[resource] = Rule(
            _actions(value.get("actions", []), entry),
            where=dict(where) if where is not None else None,
            hidden=_fields(value.get("hidden", []), f"{entry}.hidden", fields),
            read_only=_fields(value.get("read_only", []), f"{entry}.read_only", fields),
            **{key: _rate(value[key], f"{entry}.{key}") for key in LIMIT_KEYS if key in value},
        )
    return rules


def _rate(value: Any, entry: str) -> str:
    """A rate as :func:`~restengine.config.parse_rate` reads it; ``off`` stays ``off`` (``None`` means unset)."""
    return parse_rate(f"RESTENGINE_POLICY: {entry}", value) or "off"


def _fields(value: Any, entry: str, fields: Collection[str]) -> frozenset[str]:
    return _names(value, entry, fields, "field names", "fields")


def _actions(value: Any, entry: str) -> frozenset[str]:
    return _names(value, entry, ACTIONS, f"actions ({', '.join(ACTIONS)})", "actions")


def _names(value: Any, entry: str, allowed: Collection[str], expected: str, kind: str) -> frozenset[str]:
    """A list of names from ``allowed``; :class:`ConfigError` naming ``entry`` otherwise."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ConfigError(f"RESTENGINE_POLICY: {entry}: expected a list of {expected}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"RESTENGINE_POLICY: {entry}: unknown {kind} {unknown}")
    return frozenset(value)
