"""The access policy file and its decisions; the API's routes and the action each request takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from restengine.api.routes import Route, action, parse_route
from restengine.auth.policy import DEFAULT, load_policy
from restengine.auth.principal import ANONYMOUS, Principal
from restengine.config import ConfigError

RESOURCES = {"books": {"id", "title"}, "authors": {"id", "name"}, "orders": {"id", "customer", "note", "status"}}
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
        ("[roles.c.orders]\nactions = ['read']\nhidden = ['secret']", "orders.hidden: unknown fields ['secret']"),
        ("[roles.c.orders]\nactions = ['read']\nread_only = 'note'", "read_only: expected a list of field names"),
        ("[roles.c.orders]\nactions = ['read']\nwhere = 'customer'", "where: expected a table of field = value"),
        ("[roles.c.'*']\nactions = ['read']\nhidden = ['note']", 'need one resource, not "*"'),
        ("[roles.c.orders]\nverbs = ['read']", "expected actions (and where, hidden, read_only, rate_limit"),
        ("[everyone]\nbooks = ['read']", "unknown sections ['everyone']"),
        ("[anonymous]\nbooks = 'read'", "expected a list of actions"),
        ("[anonymous\n", "cannot read"),
    ],
)
def test_a_policy_that_cannot_be_applied_as_written_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="RESTENGINE_POLICY") as refused:
        load_policy(policy_file(tmp_path, text), RESOURCES)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_several_rules_for_one_action_merge_to_the_most_permissive(tmp_path: Path) -> None:
    text = """
[anonymous.orders]
actions = ["read"]
where = { status = "open" }
hidden = ["note", "status"]

[roles.customer.orders]
actions = ["read", "create"]
where = { customer = "{sub}" }
hidden = ["note"]
read_only = ["status"]

[roles.clerk.orders]
actions = ["read"]
where = { customer = "{shop}" }
"""
    policy = load_policy(policy_file(tmp_path, text), RESOURCES)
    anonymous = policy.view(ANONYMOUS, "orders", "read")
    assert anonymous is not None
    assert (anonymous.where, anonymous.hidden) == (({"status": "open"},), {"note", "status"})
    ada = Principal("jwt", "ABC123", frozenset({"customer"}))
    view = policy.view(ada, "orders", "read")
    assert view is not None
    assert view.where == ({"status": "open"}, {"customer": "ABC123"}), "either rule's documents"
    assert view.hidden == {"note"}, "hidden only where every granting rule hides it"
    create = policy.view(ada, "orders", "create")
    assert create is not None and create.read_only == {"status"} and create.where == ({"customer": "ABC123"},)
    clerk = Principal("jwt", "u", frozenset({"clerk"}))
    without_claim = policy.view(clerk, "orders", "read")
    assert without_claim is not None and without_claim.where == ({"status": "open"},), "a missing claim reaches nothing"
    with_claim = policy.view(Principal("jwt", "u", frozenset({"clerk"}), {"shop": "XYZ999"}), "orders", "read")
    assert with_claim is not None and {"customer": "XYZ999"} in with_claim.where
    assert policy.view(ANONYMOUS, "orders", "create") is None


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
    assert parse_route("/api/books/1/extra", "/api") == Route("books", item="1/extra")  # a string key with a /
    assert parse_route("/api/books//x", "/api") is None
    assert parse_route("/api/books/_bulk", "/api") == Route("books", bulk=True)
    assert parse_route("/api/books/x", "/api") == Route("books", item="x")
