"""The access policy file and its decisions; the API's routes and the action each request takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from restengine.api.routes import Route, action, parse_route
from restengine.auth.policy import DEFAULT, load_policy
from restengine.auth.principal import ANONYMOUS, Principal
from restengine.config import ConfigError

RESOURCES = {"books", "authors", "orders"}
EDITOR = Principal("key", "k1", frozenset({"editor"}))
CLERK = Principal("jwt", "u1", frozenset({"clerk"}))
ADMIN = Principal("key", "k2", frozenset({"admin"}))

POLICY = """
[anonymous]
books = ["read"]
authors = ["read"]

[roles.editor]
books = ["read", "create", "update", "delete"]
authors = ["read", "create", "update"]

[roles.clerk.orders]
actions = ["read", "create"]

[roles.auditor]
"*" = ["read"]
"""


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_the_documented_policy_decides_per_role_and_resource(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, POLICY), RESOURCES)
    assert policy.allows(ANONYMOUS, "books", "read") and not policy.allows(ANONYMOUS, "books", "create")
    assert not policy.allows(ANONYMOUS, "orders", "read")
    assert policy.allows(EDITOR, "books", "delete") and not policy.allows(EDITOR, "authors", "delete")
    assert not policy.allows(EDITOR, "orders", "read")
    assert policy.allows(CLERK, "orders", "create") and not policy.allows(CLERK, "orders", "update")
    assert policy.allows(CLERK, "books", "read"), "an authenticated caller may do what anonymous callers may"
    auditor = Principal("jwt", "a", frozenset({"auditor"}))
    assert all(policy.allows(auditor, name, "read") for name in RESOURCES)
    assert not policy.allows(auditor, "books", "update")
    assert not policy.allows(ADMIN, "books", "create"), "admin is nobody special in a policy that does not name it"


def test_the_default_policy_lets_everyone_read_and_admin_write() -> None:
    assert DEFAULT.allows(ANONYMOUS, "orders", "read") and not DEFAULT.allows(ANONYMOUS, "orders", "create")
    assert not DEFAULT.allows(EDITOR, "books", "update")
    assert all(DEFAULT.allows(ADMIN, "books", act) for act in ("read", "create", "update", "delete"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[anonymous]\nbooks = ['read', 'steal']", "anonymous.books: unknown actions ['steal']"),
        ("[anonymous]\nbook = ['read']", "anonymous.book: no resource named 'book' is served"),
        ("[roles.c.orders]\nactions = ['read']\nwhere = { customer = '{sub}' }", "where (row and field rules)"),
        ("[roles.c.orders]\nactions = ['read']\nhidden = ['note']", "hidden (row and field rules)"),
        ("[roles.c.orders]\nactions = ['read']\nread_only = ['note']", "read_only (row and field rules)"),
        ("[roles.c.orders]\nverbs = ['read']", "expected only 'actions'"),
        ("[everyone]\nbooks = ['read']", "unknown sections ['everyone']"),
        ("[anonymous]\nbooks = 'read'", "expected a list of actions"),
        ("[anonymous\n", "cannot read"),
    ],
)
def test_a_policy_that_cannot_be_applied_as_written_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="RESTENGINE_POLICY") as refused:
        load_policy(policy_file(tmp_path, text), RESOURCES)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RESTENGINE_POLICY: cannot read"):
        load_policy(tmp_path / "nope.toml", RESOURCES)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/books", "read"),
        ("HEAD", "/api/books/1", "read"),
        ("POST", "/api/books", "create"),
        ("PUT", "/api/books/1", "update"),
        ("PATCH", "/api/books/1", "update"),
        ("DELETE", "/api/books/1", "delete"),
        ("POST", "/api/books/_bulk", None),
        ("OPTIONS", "/api/books", None),
        ("DELETE", "/api/books", None),
        ("POST", "/api/books/1", None),
    ],
)
def test_each_request_takes_one_action(method: str, path: str, expected: str | None) -> None:
    route = parse_route(path, "/api")
    assert route is not None
    assert action(route, method) == expected


def test_only_resource_urls_are_routes() -> None:
    assert parse_route("/api/", "/api") is None
    assert parse_route("/api", "/api") is None
    assert parse_route("/apiary/books", "/api") is None
    assert parse_route("/api/books/1/extra", "/api") is None
    assert parse_route("/api/books/_bulk", "/api") == Route("books", bulk=True)
    assert parse_route("/api/books/x", "/api") == Route("books", item="x")
