"""``POST /api/<name>/_bulk``: ordered operations, all validated before anything is written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.integration.api_helpers import customer, ok, problem, raw, shop, stored_keys
from tests.legacy_models import Customer, Order, Product

NIA = {"code": "NEW001", "name": "Nia", "email": "nia@example.com"}


def bulk(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"ordered": True, "operations": list(operations)}


def test_bulk_applies_operations_in_order(client: FlaskClient) -> None:
    shop()
    customer("DEF456", "Dee")
    body = ok(
        client.post(
            "/api/customers/_bulk",
            json=bulk(
                {"op": "insert", "document": NIA},
                {"op": "update", "id": "ABC123", "patch": {"name": "Ada B", "joined": None}},
                {"op": "delete", "id": "DEF456"},
            ),
        )
    )
    results = body["results"]
    assert [(r["index"], r["op"]) for r in results] == [(0, "insert"), (1, "update"), (2, "delete")]
    assert results[0].items() >= {"status": 201, "id": "NEW001"}.items()
    assert all(200 <= r["status"] < 300 for r in results), results
    assert Customer.objects.get(code="NEW001").name == "Nia"
    ada = raw("customers", "ABC123")
    assert ada["name"] == "Ada B" and "j" not in ada
    assert set(ada) <= stored_keys(Customer) and set(raw("customers", "NEW001")) <= stored_keys(Customer)
    assert Customer.objects(code="DEF456").count() == 0


def test_bulk_insert_reports_generated_ids(client: FlaskClient) -> None:
    shop()
    body = ok(
        client.post("/api/products/_bulk", json=bulk({"op": "insert", "document": {"name": "Ink", "price": "2"}}))
    )
    (result,) = body["results"]
    assert result["status"] == 201
    assert Product.objects.get(sku=uuid.UUID(result["id"])).name == "Ink"


def test_bulk_updates_run_clean(client: FlaskClient) -> None:
    _, pen, placed = shop()
    line = {"product": str(pen.sku), "quantity": 10, "unit_price": "1.00"}
    ok(client.post("/api/orders/_bulk", json=bulk({"op": "update", "id": str(placed.id), "patch": {"lines": [line]}})))
    assert str(Order.objects.get(id=placed.id).total) == "10.00"


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("invalid document", {"op": "insert", "document": {"code": "NEW002"}}, "1"),
    ("unknown field", {"op": "insert", "document": {**NIA, "code": "NEW002", "mail": "x@y.z"}}, "1"),
    ("invalid patch", {"op": "update", "id": "ABC123", "patch": {"email": "not-an-email"}}, "1"),
    ("unknown op", {"op": "explode", "id": "ABC123"}, "1"),
    ("missing id", {"op": "delete"}, "1"),
    ("malformed id", {"op": "update", "id": "abc", "patch": {"name": "x"}}, "1"),
]


@pytest.mark.parametrize(("what", "operation", "index"), INVALID, ids=[case[0] for case in INVALID])
def test_one_invalid_operation_is_422_and_nothing_is_written(
    client: FlaskClient, what: str, operation: dict[str, Any], index: str
) -> None:
    shop()
    customer("DEF456", "Dee")
    before = {code: raw("customers", code) for code in ("ABC123", "DEF456")}
    operations = [
        {"op": "insert", "document": NIA},
        operation,
        {"op": "update", "id": "ABC123", "patch": {"name": "Ada B"}},
        {"op": "delete", "id": "DEF456"},
    ]
    body = problem(client.post("/api/customers/_bulk", json=bulk(*operations)), 422)
    assert index in body["errors"] and "0" not in body["errors"], body
    assert Customer.objects(code="NEW001").count() == 0
    assert {code: raw("customers", code) for code in ("ABC123", "DEF456")} == before


def test_bulk_order_insert_with_a_dangling_reference_is_422(client: FlaskClient) -> None:
    shop()
    line = {"product": str(uuid.uuid4()), "quantity": 1}
    document = {"customer": "ABC123", "lines": [line]}
    body = problem(client.post("/api/orders/_bulk", json=bulk({"op": "insert", "document": document})), 422)
    assert "0" in body["errors"]
    assert Order.objects.count() == 1


@pytest.mark.parametrize("operation", [{"op": "delete"}, {"op": "delete", "id": ""}, {"op": "update", "id": "x"}])
def test_a_malformed_object_id_in_bulk_is_422(client: FlaskClient, operation: dict[str, Any]) -> None:
    body = problem(client.post("/api/books/_bulk", json=bulk(operation)), 422)
    assert body["errors"] == {"0": {"id": "not a valid id for this resource"}}


@pytest.mark.parametrize("payload", [{}, {"operations": "all"}, {"operations": [42]}, [1, 2]])
def test_a_malformed_bulk_body_is_a_client_error(client: FlaskClient, payload: Any) -> None:
    response = client.post("/api/customers/_bulk", json=payload)
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    problem(response, response.status_code)
