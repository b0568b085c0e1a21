"""Raw decoding (stored BSON to JSON, no Document) gives what the Documents themselves hold."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from typing import Any

import mongoengine
from bson import DBRef, ObjectId

from tests.integration.api_helpers import api_app, customer, product, shop
from tests.legacy_models import Circle, Comment, Customer, Order, Product, Shape, Square


def via_document(value: Any) -> Any:
    """An independent rendering from Python attribute values (what a Document-based serializer gives)."""
    if isinstance(value, mongoengine.Document):
        return str(value.pk)
    if isinstance(value, DBRef):
        return str(value.id)
    if isinstance(value, mongoengine.EmbeddedDocument):
        return {name: via_document(getattr(value, name)) for name in value._fields_ordered if name != "_cls"}
    if isinstance(value, dict) and "_ref" in value:
        return {"_cls": value["_cls"], "id": str(value["_ref"].id)}
    if isinstance(value, list):
        return [via_document(v) for v in value]
    if isinstance(value, dt.datetime):
        millis = f".{value.microsecond // 1000:03d}" if value.microsecond else ""
        return value.strftime("%Y-%m-%dT%H:%M:%S") + millis + "Z"
    if isinstance(value, (decimal.Decimal, ObjectId, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def document_item(doc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(doc.pk)}
    if doc._meta.get("allow_inheritance"):
        out["_cls"] = doc._class_name
    pk = doc._meta["id_field"]
    for name in doc._fields_ordered:
        if name not in (pk, "_cls"):
            out[name] = via_document(doc._data.get(name))  # stored values, not dereferenced
    return out


def test_every_legacy_resource_reads_as_its_documents(mongodb_uri: str) -> None:
    with api_app(mongodb_uri) as app:
        ada, pen, _ = shop()
        customer("XYZ999", "Zed")  # fields left unset: defaults
        product("Ink", "0.10")
        Circle(name="c", radius=1.5).save()
        Square(name="s", side=2.0).save()
        Comment(subject=ada, body="great", created=dt.datetime(2024, 5, 6, 7, 8, 9, 123000)).save()
        Comment(subject=pen, body="sharp").save()
        client = app.test_client()
        checked = 0
        for name, doc_cls in [
            ("customers", Customer), ("products", Product), ("orders", Order),
            ("shapes", Shape), ("circle", Circle), ("square", Square), ("comment", Comment),
        ]:  # fmt: skip
            listed = client.get(f"/api/{name}?limit=100").get_json()["items"]
            with mongoengine.context_managers.no_dereference(doc_cls):
                expected = [document_item(doc) for doc in doc_cls.objects.order_by("pk")]
            assert listed == expected, name
            for item in listed:
                assert client.get(f"/api/{name}/{item['id']}").get_json() == item
                checked += 1
        assert checked == 11
