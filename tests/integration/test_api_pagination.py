"""Pages: the list envelope, ``next`` links and ``Link`` headers, counts, and keyset cursors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from flask.testing import FlaskClient

from restengine.api.pagination import CursorCodec
from tests.integration.api_helpers import customer, ids, ok, order, problem, product
from tests.keys import TEST_SECRET


def walk(client: FlaskClient, url: str, between_pages: Callable[[int], None] | None = None) -> list[list[str]]:
    """Follow ``next`` links from ``url``; the ids of each page."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        body = ok(client.get(next_url))
        pages.append([item["id"] for item in body["items"]])
        next_url = body["next"]
        assert len(pages) <= 40, "next links never end"
        if next_url and between_pages:
            between_pages(len(pages))
    return pages


def sixty_customers() -> list[str]:
    base = datetime(2024, 1, 1)
    # three join dates only: sorting on them has many ties
    return [
        customer(f"CUS{i:03d}", f"Name {(i * 37) % 60:02d}", joined=base + timedelta(days=i % 3)).code
        for i in range(60)
    ]


def sixty_products() -> list[str]:
    return [str(product(f"P{i:02d}", ("1.00", "2.50", "10.00")[i % 3]).sku) for i in range(60)]


def sixty_orders() -> list[str]:
    ada, pen = customer("ADA001", "Ada"), product("Pen", "1.00")
    statuses = ("open", "paid", "shipped")
    return [str(order(ada, (pen, 1 + i % 4), status=statuses[i % 3]).id) for i in range(60)]


WALKS: list[tuple[str, Callable[[], list[str]], str]] = [
    ("/api/customers?sort=name&limit=7", sixty_customers, "name"),
    ("/api/customers?sort=-joined&limit=7", sixty_customers, "ties on a datetime"),
    ("/api/customers?sort=-joined,name&limit=7", sixty_customers, "two keys"),
    ("/api/products?sort=price&limit=7", sixty_products, "ties on a decimal, uuid keys"),
    ("/api/orders?sort=status&limit=7", sixty_orders, "ties on a string, objectid keys"),
    ("/api/orders?sort=-total&limit=7", sixty_orders, "descending decimal"),
]


@pytest.mark.parametrize(("url", "seed", "what"), WALKS, ids=[w[2] for w in WALKS])
def test_walking_next_links_yields_each_item_once_in_order(
    client: FlaskClient, url: str, seed: Callable[[], list[str]], what: str
) -> None:
    seeded = seed()
    pages = walk(client, url)
    assert [len(page) for page in pages] == [7] * 8 + [4]
    walked = [pk for page in pages for pk in page]
    assert Counter(walked) == Counter(seeded)
    path, _, query = url.partition("?")
    everything = [item["id"] for item in ok(client.get(f"{path}?{query.replace('limit=7', 'limit=100')}"))["items"]]
    assert walked == everything, "pages follow the sort order"


def test_next_links_keep_filters(client: FlaskClient) -> None:
    sixty_customers()
    customer("ZED999", "Other")
    pages = walk(client, "/api/customers?joined__exists=true&sort=name&limit=7")
    walked = [pk for page in pages for pk in page]
    assert len(walked) == 60 and "ZED999" not in walked


def test_list_envelope_next_and_link_header(client: FlaskClient) -> None:
    for i in range(3):
        customer(f"CUS{i:03d}", f"Name {i}")
    first = client.get("/api/customers?sort=name&limit=2")
    body = ok(first)
    assert set(body) == {"items", "next"}
    assert body["next"].startswith("http://localhost/api/customers?")
    assert first.headers["Link"] == f'<{body["next"]}>; rel="next"'
    last = client.get(body["next"])
    assert ok(last)["next"] is None
    assert "Link" not in last.headers


def test_count_exact(client: FlaskClient) -> None:
    for i in range(5):
        customer(f"CUS{i:03d}", f"Name {i}", tags=["vip"] if i < 3 else [])
    response = client.get("/api/customers?count=exact&limit=2")
    body = ok(response)
    assert body["count"] == 5 and response.headers["X-Total-Count"] == "5"
    assert len(body["items"]) == 2
    filtered = client.get("/api/customers?count=exact&tags=vip")
    assert ok(filtered)["count"] == 3 and filtered.headers["X-Total-Count"] == "3"
    plain = client.get("/api/customers")
    assert "count" not in ok(plain) and "X-Total-Count" not in plain.headers


def test_count_with_an_unknown_mode_is_400(client: FlaskClient) -> None:
    problem(client.get("/api/customers?count=roughly"), 400, "count")


@pytest.mark.parametrize("sort", ["name", "-name"])
def test_inserting_between_pages_neither_skips_nor_repeats(client: FlaskClient, sort: str) -> None:
    existing = [customer(f"CUS{i:03d}", f"M{i:02d}").code for i in range(30)]
    inserted: list[str] = []

    def insert(page: int) -> None:
        # one that sorts first, one among the seen ones, one among those still to come, one last
        for n, name in enumerate(["A", f"M{page * 7 - 3:02d}x", f"M{page * 7 + 5:02d}x", "Z"]):
            inserted.append(customer(f"NEW{page * 10 + n:03d}", f"{name}{page}").code)

    pages = walk(client, f"/api/customers?sort={sort}&limit=7", between_pages=insert)
    walked = Counter(pk for page in pages for pk in page)
    assert all(walked[pk] == 1 for pk in existing), "every pre-existing item exactly once"
    assert max(walked.values()) == 1, "no repeats"
    assert set(walked) <= set(existing) | set(inserted)


def _with_cursor(url: str, cursor: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["cursor"] = cursor
    return urlunsplit(parts._replace(query=urlencode(query)))


def _next_url(client: FlaskClient) -> tuple[str, str]:
    for i in range(5):
        customer(f"CUS{i:03d}", f"Name {i}")
    next_url = ok(client.get("/api/customers?sort=name&limit=2"))["next"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    return next_url, cursor


def test_a_modified_cursor_is_400(client: FlaskClient) -> None:
    next_url, cursor = _next_url(client)
    middle = len(cursor) // 2
    changed = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    problem(client.get(_with_cursor(next_url, changed)), 400, "cursor")


@pytest.mark.parametrize("cursor", ["not-a-cursor", "%%%", "eyJ9"])
def test_a_made_up_cursor_is_400(client: FlaskClient, cursor: str) -> None:
    next_url, _ = _next_url(client)
    problem(client.get(_with_cursor(next_url, cursor)), 400, "cursor")


def test_a_cursor_of_one_resource_is_400_on_another_with_the_same_sort(client: FlaskClient) -> None:
    for i in range(3):
        customer(f"CUS{i:03d}", f"Name {i}")
        product(f"P{i}", "1.00")
    next_url = ok(client.get("/api/customers?sort=id&limit=2"))["next"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    assert len(ok(client.get(_with_cursor(next_url, cursor)))["items"]) == 1, "valid where it was issued"
    body = problem(client.get(f"/api/products?sort=id&limit=2&cursor={cursor}"), 400, "cursor")
    assert body["errors"] == {"cursor": ["invalid or tampered cursor"]}


@pytest.mark.parametrize(
    "value", [{"$regex": "^"}, {"$ne": None}, ["Name 0", "Name 1"]], ids=["regex", "operator", "list"]
)
def test_a_cursor_signed_with_the_real_secret_cannot_inject_an_operator(client: FlaskClient, value: Any) -> None:
    """The MAC is valid (forged with the app's own secret), yet a value that is no plain scalar is refused."""
    for i in range(5):
        customer(f"CUS{i:03d}", f"Name {i}")
    forged = CursorCodec(TEST_SECRET.encode(), "customers").encode([("name", 1), ("_id", 1)], [value, ""])
    body = problem(client.get(f"/api/customers?sort=name&limit=2&cursor={forged}"), 400, "cursor")
    assert body["errors"] == {"cursor": ["invalid or tampered cursor"]}
    plain = CursorCodec(TEST_SECRET.encode(), "customers").encode([("name", 1), ("_id", 1)], ["Name 2", "CUS002"])
    assert ids(client, f"/api/customers?sort=name&limit=5&cursor={plain}") == ["CUS003", "CUS004"]
