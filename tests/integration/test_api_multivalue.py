"""Repeated query parameters: list-valued ones concatenate, single-valued ones are a 400, none is dropped.

Generated clients (openapi-python-client, ``style: form, explode: true``) and
HTML forms send ``?fields=title&fields=price``; people write ``?fields=title,price``.
Both, and any mix, mean the concatenation in order.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask.testing import FlaskClient

from tests.integration.api_helpers import customer, ids, ok, order, problem, product


@pytest.fixture
def people() -> None:
    customer("ADA001", "Ada", joined=datetime(2020, 1, 1), tags=["vip", "new"])
    customer("BOB002", "Bob", joined=datetime(2021, 1, 1), tags=["vip"])
    customer("CAT003", "Cat", joined=datetime(2020, 1, 1), tags=["old"])
    customer("DOT004", "Dot", joined=datetime(2021, 1, 1), tags=["x"])


@pytest.mark.parametrize("query", ["fields=name&fields=email", "fields=name,email", "fields=name&fields=email,id"])
def test_fields_repeated_or_comma_separated_return_every_field(client: FlaskClient, people: None, query: str) -> None:
    listed = ok(client.get(f"/api/customers?{query}"))["items"]
    assert all(set(item) == {"id", "name", "email"} for item in listed), listed
    one = ok(client.get(f"/api/customers/ADA001?{query}"))
    assert one == {"id": "ADA001", "name": "Ada", "email": "ada001@example.com"}


@pytest.mark.parametrize("query", ["sort=-joined&sort=name", "sort=-joined,name", "sort=-joined&sort=name,-id"])
def test_sort_repeated_sorts_by_every_key_in_order(client: FlaskClient, people: None, query: str) -> None:
    assert ids(client, f"/api/customers?{query}") == ["BOB002", "DOT004", "ADA001", "CAT003"]
    assert ids(client, "/api/customers?sort=name&sort=-joined") == ["ADA001", "BOB002", "CAT003", "DOT004"]


def test_expand_repeated_expands_every_reference(client: FlaskClient) -> None:
    ada = customer("ADA001", "Ada")
    pen = product("Pen", "1.00")
    placed = order(ada, (pen, 2))
    for query in ("expand=customer&expand=lines.product", "expand=customer,lines.product"):
        body = ok(client.get(f"/api/orders/{placed.id}?{query}"))
        assert body["customer"]["name"] == "Ada" and body["lines"][0]["product"]["name"] == "Pen", body
        listed = ok(client.get(f"/api/orders?{query}"))["items"]
        assert listed[0]["customer"]["name"] == "Ada" and listed[0]["lines"][0]["product"]["name"] == "Pen"
    problem(client.get("/api/orders?expand=customer&expand=customer"), 400, "expand")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=1&limit=2", "limit"),
        ("limit=2&limit=2", "limit"),
        ("count=exact&count=estimated", "count"),
        ("cursor=abc&cursor=def", "cursor"),
        ("name=Ada&name=Bob", "name"),
        ("joined__gt=2020-01-01&joined__gt=2019-01-01", "joined__gt"),
        ("fields=name&fields=nope", "fields"),
        ("sort=name&sort=", "sort"),
        ("sort=name&sort=name", "sort"),
        ("tags__in=vip&tags__in=", "tags__in"),
    ],
)
def test_a_repeated_single_value_or_a_bad_value_is_a_400_naming_it(
    client: FlaskClient, people: None, query: str, param: str
) -> None:
    body = problem(client.get(f"/api/customers?{query}"), 400, param)
    assert list(body["errors"]) == [param]


@pytest.mark.parametrize("op", ["in", "nin", "all"])
def test_repeated_list_filters_concatenate(client: FlaskClient, people: None, op: str) -> None:
    split = ids(client, f"/api/customers?tags__{op}=vip&tags__{op}=new&sort=id")
    assert split == ids(client, f"/api/customers?tags__{op}=vip,new&sort=id")
    expected = {"in": ["ADA001", "BOB002"], "nin": ["CAT003", "DOT004"], "all": ["ADA001"]}[op]
    assert split == expected
    assert ids(client, f"/api/customers?tags__{op}=vip,new&tags__{op}=old&sort=id") == ids(
        client, f"/api/customers?tags__{op}=vip,new,old&sort=id"
    )


def test_next_repeats_every_value_so_following_it_alone_is_enough(client: FlaskClient) -> None:
    for i in range(7):
        customer(f"CUS{i:03d}", f"N{i % 3}", joined=datetime(2020, 1, 1 + i % 2), tags=["a" if i % 2 else "b"])
    query = "sort=-joined&sort=name&fields=name&fields=joined&tags__in=a&tags__in=b&limit=2"
    seen: list[str] = []
    page = ok(client.get(f"/api/customers?{query}"))
    first_next = page["next"]
    pairs = parse_qsl(urlsplit(first_next).query)
    assert [p for p in pairs if p[0] != "cursor"] == parse_qsl(query), "the same values, repeated, in order"
    while True:
        seen += [item["id"] for item in page["items"]]
        assert all(set(item) == {"id", "name", "joined"} for item in page["items"])
        if not page["next"]:
            break
        page = ok(client.get(page["next"]))
    assert seen == ids(client, "/api/customers?sort=-joined,name&limit=100")
