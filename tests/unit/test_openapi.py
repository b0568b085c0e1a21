"""The OpenAPI document, built with no database: its mappings, and the codec's output against its schemas.

The "kitchen" document has one field of every kind MongoEngine offers. Its
stored form comes from ``to_mongo()`` and is read by the codec exactly as a
response would be, then checked against the generated read schema; bodies
that ``writes.build`` and the Document's validation accept or refuse are
checked against the generated create schema. No database is involved.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import mongoengine
import pytest
from bson import ObjectId
from flask import Flask
from mongoengine import (
    BinaryField,
    BooleanField,
    ComplexDateTimeField,
    DateField,
    DateTimeField,
    DecimalField,
    DictField,
    Document,
    DynamicField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    EnumField,
    FloatField,
    GenericEmbeddedDocumentField,
    GeoPointField,
    IntField,
    ListField,
    LongField,
    MapField,
    ObjectIdField,
    PointField,
    ReferenceField,
    SequenceField,
    StringField,
    URLField,
    UUIDField,
)
from openapi_spec_validator import validate

from restengine import Api, create_app, db
from restengine.api import writes
from restengine.api.codec import decode_document
from restengine.api.openapi import Mount, build_document, ecma_pattern, nullable
from restengine.errors import InputError
from restengine.ops.processes import free_port
from tests.integration.api_helpers import legacy_registry
from tests.keys import TEST_SECRET
from tests.openapi_contract import Contract

CLOSED = f"mongodb://127.0.0.1:{free_port()}/nowhere?directConnection=true"


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    with legacy_registry():
        app = create_app(
            {
                "MONGODB_URI": CLOSED,
                "RESTENGINE_DOCUMENTS": "restengine.demo.bookstore,tests.legacy_models",
                "RESTENGINE_READY_TIMEOUT_MS": 100,
            }
        )
        yield app
        db.close_all()


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    with legacy_registry():
        response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["components"]["schemas"])


def non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A nullable property's one other alternative (``anyOf: [typed, {type: null}]``)."""
    others = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    return others[0] if len(others) == 1 and len(schema["anyOf"]) == 2 else schema


def parameters(spec: dict[str, Any], path: str, method: str = "get") -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spec["paths"][path][method].get("parameters", []) if "name" in p}


# ---------------------------------------------------------------- the served document


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["version"] == "0.1.0"
    assert spec["servers"] == [{"url": "/"}]
    assert {"/api/", "/openapi.json", "/", "/healthz", "/readyz", "/api/books", "/api/books/{id}"} <= set(spec["paths"])
    assert {t["name"] for t in spec["tags"]} >= {"books", "author", "shapes", "circle", "customers", "service"}


def test_the_document_is_cached_and_revalidates(app: Flask) -> None:
    client = app.test_client()
    with legacy_registry():
        first = client.get("/openapi.json")
        etag = first.headers["ETag"]
        assert client.get("/openapi.json").get_data() == first.get_data()
        assert client.get("/openapi.json", headers={"If-None-Match": etag}).status_code == 304
    api: Api = app.extensions["restengine.api"]
    with app.test_request_context("/openapi.json"), legacy_registry():
        built = api.openapi.rendered()
        assert api.openapi.rendered() is built, "built once per registry state"


def test_registering_rebuilds_the_document() -> None:
    class Gadget(Document):
        name = StringField()

    app = Flask("t")
    api = Api(app, secret_key=TEST_SECRET)
    api.register(Gadget)
    client = app.test_client()
    first = client.get("/openapi.json").get_json()
    assert "/api/gadget" in first["paths"]
    api.register(Gadget, name="gizmos", methods=["GET"])
    second = client.get("/openapi.json").get_json()
    assert "/api/gizmos" in second["paths"] and "/api/gadget" not in second["paths"]
    assert set(second["paths"]["/api/gizmos/{id}"]) == {"parameters", "get"}


def test_openapi_path_moves_or_turns_off_the_document() -> None:
    moved = Flask("moved")
    Api(moved, secret_key=TEST_SECRET, openapi_path="/spec.json")
    assert moved.test_client().get("/openapi.json").status_code == 404
    assert moved.test_client().get("/spec.json").get_json()["paths"]["/spec.json"]
    off = Flask("off")
    api = Api(secret_key=TEST_SECRET, openapi_path=None)
    api.docs_path = None  # a documentation page would need the document
    api.init_app(off)
    assert off.test_client().get("/openapi.json").status_code == 404


def test_service_endpoints_answer_as_described(app: Flask, spec: dict[str, Any]) -> None:
    contract = Contract(spec)
    client = app.test_client()
    contract.check("GET", "/healthz", client.get("/healthz"))
    not_ready = client.get("/readyz")  # no database here: 503 naming the failed check
    assert contract.check("GET", "/readyz", not_ready)["checks"]["database"].startswith("error")
    contract.check("GET", "/", client.get("/"))
    with legacy_registry():
        index = client.get("/api/")
        contract.check("GET", "/api/", index)
        contract.check("GET", "/api/", client.get("/api/", headers={"If-None-Match": index.headers["ETag"]}))


# ---------------------------------------------------------------- field mappings


def test_book_read_and_create_schemas(spec: dict[str, Any]) -> None:
    book, create = schemas(spec)["Book"], schemas(spec)["BookCreate"]
    assert book["required"] == ["id"], "?fields= may leave any other field out"
    assert book["additionalProperties"] is False
    props = book["properties"]
    assert props["id"] == {"type": "string", "pattern": "^[0-9a-f]{24}$"}
    assert props["title"] == {"type": ["string", "null"], "maxLength": 200}
    assert props["isbn"]["pattern"] == r"^\d{13}$"
    currency = {"$ref": "#/components/schemas/BookCurrency"}
    assert props["currency"] == {"anyOf": [currency, {"type": "null"}]}, "one named enum, null beside it"
    assert schemas(spec)["BookCurrency"] == {"type": "string", "enum": ["EUR", "USD", "GBP"]}
    assert non_null(props["price"])["type"] == "string" and non_null(props["price"])["format"] == "decimal"
    assert props["published"] == {
        "anyOf": [{"type": "string", "format": "date-time", "pattern": "Z$"}, {"type": "null"}]
    }, "a typed, formatted alternative and null: generators make datetime | None of it"
    assert non_null(props["pages"])["minimum"] == 1 and non_null(props["pages"])["type"] == "integer"
    assert props["reviews"]["items"] == {"anyOf": [{"$ref": "#/components/schemas/Review"}, {"type": "null"}]}
    author = props["author"]["anyOf"]
    assert author[0]["x-reference"] == "author" and "Author" in author[0]["description"]
    assert author[1] == {"$ref": "#/components/schemas/Author"}, "?expand=author gives the author"
    assert author[2] == {"type": "null"}

    assert set(create["required"]) == {"title", "author"}
    cprops = create["properties"]
    assert cprops["title"] == {"type": "string", "maxLength": 200}, "required: null is refused"
    assert cprops["author"]["x-reference"] == "author" and cprops["author"]["pattern"] == "^[0-9a-fA-F]{24}$"
    assert cprops["in_stock"]["default"] is True
    assert cprops["reviews"]["items"] == {"$ref": "#/components/schemas/ReviewInput"}
    assert cprops["currency"] == props["currency"], "the same enum for reads and writes"
    assert schemas(spec)["BookPatch"]["properties"]["currency"] == props["currency"]
    assert cprops["published"]["anyOf"] == [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "null"},
    ], "typed alternatives, each with its format (not format-only ones under a shared type)"
    assert schemas(spec)["Review"]["required"] == ["reviewer", "rating", "text", "created"], "all, as decoded"
    review = schemas(spec)["ReviewInput"]
    assert set(review["required"]) == {"reviewer", "rating"}
    assert review["properties"]["rating"]["minimum"] == 1 and review["properties"]["rating"]["maximum"] == 5


def test_legacy_keys_formats_and_references(spec: dict[str, Any]) -> None:
    s = schemas(spec)
    assert non_null(s["Customer"]["properties"]["email"])["format"] == "email"
    create = s["CustomerCreate"]
    assert create["anyOf"] == [{"required": ["id"]}, {"required": ["code"]}], "a string key must be sent"
    assert create["properties"]["code"]["pattern"] == r"^[A-Z]{3}\d{3}$"
    assert s["Product"]["properties"]["id"]["format"] == "uuid"
    assert s["Product"]["properties"]["blob"]["contentEncoding"] == "base64"
    assert "anyOf" not in s["ProductCreate"], "a UUID key with a default is generated"
    line = s["OrderLine"]["properties"]["product"]["anyOf"]
    assert line[0]["format"] == "uuid" and line[0]["x-reference"] == "products"
    subject = s["Comment"]["properties"]["subject"]
    assert subject["required"] == ["_cls", "id"] and "object" in subject["type"]
    classes = s["CommentCreate"]["properties"]["subject"]["properties"]["_cls"]["enum"]
    assert {"Customer", "Order", "Shape.Circle", "Book"} <= set(classes), "any served class"
    assert "Review" not in classes, "not an embedded document"
    assert "OaKitchen" not in classes, "a Document class MongoEngine knows but this API does not serve"
    assert s["Order"]["properties"]["shipping"]["anyOf"][0] == {"$ref": "#/components/schemas/Address"}
    assert s["OrderPatch"]["properties"]["shipping"]["anyOf"][0] == {"$ref": "#/components/schemas/AddressPatch"}
    item_id = spec["paths"]["/api/customers/{id}"]["parameters"][0]
    assert item_id["in"] == "path" and item_id["schema"]["not"] == {"const": "_bulk"}, "/customers/_bulk is not an id"
    expand = parameters(spec, "/api/orders")["expand"]["schema"]["items"]["enum"]
    assert expand == ["customer", "lines.product"]


def test_only_served_classes_and_their_subclasses_may_be_referenced() -> None:
    from tests.legacy_models import Circle, Comment, Customer, Shape

    with legacy_registry():
        api = Api(secret_key=TEST_SECRET)
        comments = api.register(Comment)
        shapes = api.register(Shape)  # its subclasses are served through it
        assert api.resource_for(Circle) is shapes and api.resource_for(Customer) is None
        spec = build_document(api)
        validate(spec)
        subject = schemas(spec)["CommentCreate"]["properties"]["subject"]["properties"]["_cls"]
        assert subject == {"enum": ["Comment", "Shape", "Shape.Circle", "Shape.Square"]}
        circle = {"_cls": "Shape.Circle", "id": str(ObjectId())}
        built = writes.build(comments, {"body": "b", "subject": circle})
        assert built._data["subject"]["_ref"].id == ObjectId(circle["id"]), "accepted (existence is checked later)"
        with pytest.raises(InputError) as refused:
            writes.build(comments, {"body": "b", "subject": {"_cls": "Customer", "id": "ABC123"}})
        assert refused.value.errors == {"subject": "'Customer' is not a class this API serves"}


def test_inheritance_is_one_of_the_classes_by_cls(spec: dict[str, Any]) -> None:
    s = schemas(spec)
    shape = s["Shape"]
    assert shape["oneOf"] == [{"$ref": f"#/components/schemas/Shape.{n}"} for n in ("Shape", "Circle", "Square")]
    assert shape["discriminator"]["propertyName"] == "_cls"
    assert shape["discriminator"]["mapping"]["Shape.Circle"] == "#/components/schemas/Shape.Circle"
    circle = s["Shape.Circle"]
    assert circle["properties"]["_cls"] == {"const": "Shape.Circle"} and set(circle["required"]) == {"id", "_cls"}
    assert "side" not in circle["properties"] and "radius" in circle["properties"]
    assert s["Circle"]["properties"]["_cls"] == {"const": "Shape.Circle"}, "the subclass resource too"
    contract = Contract(spec)
    assert contract.valid("Shape", {"id": "0" * 24, "_cls": "Shape.Circle", "name": "c", "radius": 1.5})
    assert not contract.valid("Shape", {"id": "0" * 24, "name": "c"}), "_cls always comes with inheritance"
    assert not contract.valid("Shape", {"id": "0" * 24, "_cls": "Shape.Square", "radius": 1.5})
    create = s["ShapeCreate"]["oneOf"]
    assert "_cls" not in create[0].get("required", []) and create[1]["required"] == ["_cls"]
    assert contract.valid("ShapeCreate", {"name": "plain"})
    assert contract.valid("ShapeCreate", {"_cls": "Shape.Circle", "radius": 2})
    assert not contract.valid("ShapeCreate", {"radius": 2}), "a Shape has no radius"


def test_filters_sort_and_paging_parameters(spec: dict[str, Any]) -> None:
    params = parameters(spec, "/api/books")
    assert params["pages__lt"]["schema"]["type"] == "integer"
    assert params["published__gte"]["schema"] == {"type": "string", "format": "date-time"}
    assert params["title__icontains"]["schema"]["maxLength"] == 200
    assert params["tags__all"]["style"] == "form" and params["tags__all"]["explode"] is True
    assert params["tags__size"]["schema"]["minimum"] == 0
    assert params["author__in"]["schema"]["items"]["pattern"] == "^[0-9a-fA-F]{24}$"
    assert params["reviews__rating__gte"]["schema"]["type"] == "integer"
    assert "reviews__size" in params and "reviews__rating__contains" not in params
    assert "price__contains" not in params and "title__size" not in params
    assert params["price__gte"]["schema"] == {"type": "number", "exclusiveMinimum": -1e26, "exclusiveMaximum": 1e26}, (
        "a Decimal with 2 places is quantized within 28 digits: larger values are a 400"
    )
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}
    assert params["count"]["schema"]["enum"] == ["exact", "estimated"] if "count" in params else True
    sort = params["sort"]["schema"]["items"]["enum"]
    assert {"title", "-published", "id", "-price"} <= set(sort)
    names = dict(zip(sort, params["sort"]["schema"]["items"]["x-enum-varnames"], strict=True))
    assert names["-published"] == "PUBLISHED_DESC" and names["title"] == "TITLE" and names["-id"] == "ID_DESC"
    for name in ("sort", "fields", "expand", "tags__in", "author__nin"):
        assert (params[name]["style"], params[name]["explode"]) == ("form", True), "sent as repeated parameters"
        assert params[name]["schema"]["type"] == "array"
    assert "repeat" in params["sort"]["description"].lower()
    next_url = schemas(spec)["BookList"]["properties"]["next"]
    assert "repeats every parameter" in next_url["description"] and "alone" in next_url["description"]
    assert "tags" not in sort and "reviews" not in sort, "lists cannot be sorted on"
    assert params["fields"]["schema"]["items"]["enum"][0] == "id"
    assert {"$ref": "#/components/parameters/IfNoneMatch"} in spec["paths"]["/api/books"]["get"]["parameters"]


def test_every_operation_lists_its_statuses(spec: dict[str, Any]) -> None:
    books, item = spec["paths"]["/api/books"], spec["paths"]["/api/books/{id}"]
    assert set(books["get"]["responses"]) == {"200", "304", "400", "406", "414", "422", "429", "500", "503"}
    assert set(books["post"]["responses"]) == {
        "429",
        "201",
        "400",
        "406",
        "409",
        "413",
        "414",
        "415",
        "422",
        "500",
        "503",
        "504",
    }
    assert set(item["get"]["responses"]) == {"200", "304", "400", "404", "405", "406", "414", "429", "500", "503"}
    writes = {"200", "400", "404", "405", "406", "409", "412", "413", "414", "415", "422", "429", "500", "503", "504"}
    for method in ("put", "patch"):
        assert set(item[method]["responses"]) == writes
    assert set(item["delete"]["responses"]) == {
        "204", "404", "405", "406", "409", "412", "414", "429", "500", "503", "504"
    }  # fmt: skip
    assert set(spec["paths"]["/api/books/_bulk"]["post"]["responses"]) == {
        "200", "400", "406", "409", "413", "414", "415", "422", "429", "500", "503", "504"
    }  # fmt: skip
    limited = spec["components"]["responses"]["TooManyRequests"]["headers"]
    assert set(limited) == {"Retry-After", "RateLimit", "RateLimit-Policy"}
    assert "content" not in spec["components"]["responses"]["URITooLong"], "gunicorn's or nginx's own page"
    assert set(item["patch"]["requestBody"]["content"]) == {"application/merge-patch+json", "application/json"}
    problem = spec["components"]["responses"]["NotFound"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert schemas(spec)["Problem"]["required"] == ["type", "title", "status"]
    unavailable = spec["components"]["responses"]["ServiceUnavailable"]
    assert unavailable["headers"]["Retry-After"] == {"$ref": "#/components/headers/Retry-After"}
    assert "outcome-unknown" in spec["components"]["responses"]["OutcomeUnknown"]["description"]
    key = {"$ref": "#/components/parameters/IdempotencyKey"}
    assert key in books["post"]["parameters"] and key in spec["paths"]["/api/books/_bulk"]["post"]["parameters"]
    assert spec["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    assert "Idempotent-Replayed" in books["post"]["responses"]["201"]["headers"]
    array = books["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert array["maxItems"] == 1000, "RESTENGINE_MAX_BATCH"


# ---------------------------------------------------------------- options


class OaSecret(Document):
    """A document with a secret."""

    name = StringField(required=True)
    password = StringField()
    created = DateTimeField()
    score = IntField()
    note = StringField()

    meta: dict[str, Any] = {"collection": "oa_secrets"}


def options_spec(**options: Any) -> dict[str, Any]:
    api = Api(secret_key=TEST_SECRET)
    api.register(OaSecret, **options)
    spec = build_document(api, Mount())
    validate(spec)
    return spec


def test_hidden_fields_never_appear() -> None:
    spec = options_spec(hidden=["password"])
    text = str({k: v for k, v in spec.items() if k != "info"})
    assert "password" not in text


def test_read_only_fields_are_read_only_and_not_created() -> None:
    spec = options_spec(read_only=["created"])
    s = schemas(spec)
    assert s["OaSecret"]["properties"]["created"]["readOnly"] is True
    assert "created" not in s["OaSecretCreate"]["properties"]
    assert s["OaSecretReplace"]["properties"]["created"]["readOnly"] is True, "may be sent back unchanged"
    contract = Contract(spec)
    assert not contract.valid("OaSecretCreate", {"name": "n", "created": "2024-01-01T00:00:00Z"})


def test_fields_option_limits_what_is_shown() -> None:
    spec = options_spec(fields=["name", "score"])
    s = schemas(spec)
    assert set(s["OaSecret"]["properties"]) == {"id", "name", "score", "_unreadable"}
    assert set(s["OaSecretCreate"]["properties"]) == {"id", "_cls", "name", "score"}
    assert {"const": "OaSecret"} in s["OaSecretCreate"]["properties"]["_cls"]["anyOf"], "its own class name is accepted"
    assert not {"note", "note__ne", "password"} & set(parameters(spec, "/api/oa_secrets"))


def test_methods_filterable_and_sortable_are_respected() -> None:
    spec = options_spec(
        methods=["GET", "PATCH"], filterable={"score": ["gte", "lt"], "name": ["eq"]}, sortable=["name"]
    )
    assert set(spec["paths"]["/api/oa_secrets"]) == {"get"}
    assert set(spec["paths"]["/api/oa_secrets/{id}"]) == {"parameters", "get", "patch"}
    assert "/api/oa_secrets/_bulk" not in spec["paths"]
    params = parameters(spec, "/api/oa_secrets")
    assert {n for n in params if n.startswith(("score", "name", "note", "id", "created"))} == {
        "score__gte", "score__lt", "name"
    }  # fmt: skip
    assert params["sort"]["schema"]["items"]["enum"] == ["name", "-name"]


def test_filterable_list_form_allows_paths_below() -> None:
    spec = options_spec(filterable=["score"])
    params = parameters(spec, "/api/oa_secrets")
    assert {"score", "score__gte", "score__in", "score__exists"} <= set(params)
    assert "name" not in params


def test_helpers() -> None:
    assert ecma_pattern(r"^\d{13}$") == r"^\d{13}$"
    assert ecma_pattern(r"[a-z]+") == "^(?:[a-z]+)", "re.match anchors at the start"
    assert ecma_pattern(r"^a|b") == "^(?:^a|b)"
    assert ecma_pattern(r"(?P<x>a)(?P=x)\Z") == r"^(?:(?<x>a)\k<x>$)"
    assert nullable({"type": "string", "enum": ["a"]}) == {"type": ["string", "null"], "enum": ["a", None]}
    assert nullable({"type": "string", "format": "date", "description": "d"}) == {
        "description": "d",
        "anyOf": [{"type": "string", "format": "date"}, {"type": "null"}],
    }
    assert nullable({"anyOf": [{"type": "string"}], "description": "d"}) == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "d",
    }
    assert nullable({"$ref": "#/x"}) == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}
    assert nullable({"anyOf": [{"type": "string"}]}) == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert nullable({}) == {}
    twice = nullable({"type": "string", "enum": ["a"]})
    assert nullable(twice) == twice and nullable(nullable({"$ref": "#/x"})) == nullable({"$ref": "#/x"})


# ---------------------------------------------------------------- every field type, through the codec


class OaColor(enum.Enum):
    RED = "red"
    BLUE = "blue"


class OaPart(EmbeddedDocument):
    label = StringField(required=True, min_length=2)
    weight = FloatField(min_value=0)

    meta: dict[str, Any] = {"allow_inheritance": True}


class OaBolt(OaPart):
    thread = IntField()


class OaNote(EmbeddedDocument):
    text = StringField()


class OaTarget(Document):
    code = IntField(primary_key=True)

    meta: dict[str, Any] = {"collection": "oa_targets"}


class OaKitchen(Document):
    seq = SequenceField()
    big = LongField(max_value=10)
    color = EnumField(OaColor)
    colors = ListField(EnumField(OaColor))
    site = URLField()
    day = DateField()
    precise = ComplexDateTimeField()
    other = ObjectIdField()
    token = UUIDField(binary=False)
    scores = MapField(IntField())
    extra = DictField()
    where = GeoPointField()
    point = PointField()
    part = EmbeddedDocumentField(OaPart)
    anything = GenericEmbeddedDocumentField(choices=[OaNote, OaPart])
    size = StringField(choices=(("S", "Small"), ("L", "Large")))
    amount = DecimalField(precision=3, default=Decimal("1.5"))
    raw = BinaryField(max_bytes=6)
    flag = BooleanField(default=False)
    when = DateTimeField()
    nums = ListField(FloatField(), max_length=3)
    dyn = DynamicField()
    target = ReferenceField(OaTarget)
    kind = StringField(default="plain", regex=r"[a-z]+")

    meta: dict[str, Any] = {"collection": "oa_kitchen"}


@pytest.fixture(scope="module")
def kitchen() -> Contract:
    api = Api(secret_key=TEST_SECRET)
    api.register(OaKitchen)
    api.register(OaTarget)  # a reference reads as the id or, expanded, the item of a served class
    spec = build_document(api)
    validate(spec)
    return Contract(spec)


def full_kitchen() -> OaKitchen:
    return OaKitchen(
        id=ObjectId(),
        seq=7,
        big=3,
        color=OaColor.RED,
        colors=[OaColor.BLUE],
        site="https://example.com/a",
        day=date(2024, 2, 29),
        precise=datetime(2024, 1, 2, 3, 4, 5, 678901),
        other=ObjectId(),
        token=uuid.uuid4(),
        scores={"a": 1},
        extra={"any": ["thing", 1, None]},
        where=[1.5, 2.5],
        point=[3.0, 4.0],
        part=OaBolt(label="b1", weight=2.0, thread=8),
        anything=OaNote(text="hi"),
        size="S",
        amount=Decimal("2.25"),
        raw=b"\x00\xff\x10",
        flag=True,
        when=datetime(2024, 1, 2, 3, 4, 5),
        nums=[1.0, 2.5],
        dyn={"x": 1},
        target=OaTarget(code=5),
        kind="fancy",
    )


def read_errors(contract: Contract, raw: dict[str, Any]) -> list[str]:
    item = decode_document(OaKitchen, raw, None, False)
    return [f"{e.message} at {list(e.path)}" for e in contract.schema("OaKitchen").iter_errors(item)]


def test_every_field_type_reads_as_its_schema_says(kitchen: Contract) -> None:
    raw = full_kitchen().to_mongo().to_dict()
    assert read_errors(kitchen, raw) == []
    assert read_errors(kitchen, {**raw, "part": OaPart(label="p1").to_mongo().to_dict()}) == []
    assert read_errors(kitchen, {**raw, "anything": OaPart(label="p2").to_mongo().to_dict()}) == []
    assert read_errors(kitchen, {"_id": raw["_id"]}) == [], "missing fields read as null or defaults"
    assert read_errors(kitchen, {**dict.fromkeys(raw, None), "_id": raw["_id"]}) == [], "stored nulls read as null"
    assert read_errors(kitchen, {**raw, "day": "not a date"}) == [], "an unreadable value reads as null"
    item = decode_document(OaKitchen, {**raw, "day": "not a date"}, None, False)
    assert item["day"] is None and item["_unreadable"] == ["day"]
    assert list(kitchen.schema("OaKitchen").iter_errors({**item, "day": "x"})), "the schema does catch a wrong value"


def test_the_read_schemas_map_each_type(kitchen: Contract) -> None:
    props = kitchen.spec["components"]["schemas"]["OaKitchen"]["properties"]
    named = kitchen.spec["components"]["schemas"]
    assert non_null(props["big"])["format"] == "int64" and non_null(props["big"])["maximum"] == 10
    assert non_null(props["color"]) == {"$ref": "#/components/schemas/OaColor"}, "named after the Enum class"
    assert named["OaColor"] == {"type": "string", "enum": ["red", "blue"]}
    assert props["colors"]["items"] == props["color"], "one enum wherever it is used"
    assert non_null(props["site"])["format"] == "uri" and non_null(props["day"])["format"] == "date"
    assert props["other"]["pattern"] == "^[0-9a-f]{24}$" and non_null(props["token"])["format"] == "uuid"
    assert non_null(props["scores"]["additionalProperties"])["type"] == "integer"
    assert props["where"]["minItems"] == 2 and props["point"]["properties"]["type"] == {"const": "Point"}
    assert non_null(props["size"]) == {"$ref": "#/components/schemas/OaKitchenSize"}
    assert named["OaKitchenSize"] == {"type": "string", "enum": ["S", "L"]}
    assert props["raw"]["maxLength"] == 8 and props["nums"]["maxItems"] == 3
    assert props["kind"]["pattern"] == "^(?:[a-z]+)"
    assert props["target"]["anyOf"][0] == {
        "type": "string",
        "pattern": "^-?[0-9]+$",
        "x-reference": "oa_targets",
        "description": "The id of the referenced OaTarget (`oa_targets`).",
    }
    assert props["target"]["anyOf"][1] == {"$ref": "#/components/schemas/OaTarget"}
    # codec reads a missing DecimalField with a constant default as the raw stored float, not a string
    assert {"const": 1.5} in props["amount"]["anyOf"]


def accepted(body: dict[str, Any]) -> bool:
    """Whether the service's own write path takes ``body`` (conversion, then the Document's validation)."""
    api = Api(secret_key=TEST_SECRET)
    resource = api.register(OaKitchen)
    api.register(OaTarget)  # only a served class may be referenced
    try:
        doc = writes.build(resource, body)
        doc.validate()
    except (InputError, mongoengine.ValidationError):
        return False
    return True


WRITES: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"big": 10, "color": "blue", "colors": ["red"], "site": "https://example.com"}, True),
    ({"day": "2024-02-29", "precise": "2024-01-02T03:04:05.123Z", "when": "2024-01-02T03:04:05+02:00"}, True),
    ({"other": "0123456789abcdef01234567", "token": str(uuid.uuid4()), "scores": {"a": 2}}, True),
    ({"extra": {"k": [1]}, "where": [1, 2], "point": [1.0, 2.0], "size": "L", "amount": "3.5"}, True),
    ({"part": {"label": "ok", "weight": 1}, "anything": {"_cls": "OaNote", "text": "t"}}, True),
    ({"raw": "AAEC", "flag": False, "nums": [1, 2.5], "target": 5, "kind": "abc", "amount": 4}, True),
    ({"big": 11}, False),
    ({"big": "1"}, False),
    ({"big": True}, False),
    ({"color": "green"}, False),
    ({"size": "M"}, False),
    ({"nums": [1, 2, 3, 4]}, False),
    ({"part": {"label": "x"}}, False),
    ({"part": {"weight": 1}}, False),
    ({"part": {"label": "ok", "nope": 1}}, False),
    ({"raw": "not base64"}, False),
    ({"token": "nope"}, False),
    ({"flag": "yes"}, False),
    ({"kind": "ABC"}, False),
    ({"unknown": 1}, False),
    ({"scores": {"a": "b"}}, False),
    ({"anything": {"_cls": "OaPart", "text": "not a part field"}}, False),
]


@pytest.mark.parametrize(("body", "ok"), WRITES)
def test_create_schema_agrees_with_the_write_path(kitchen: Contract, body: dict[str, Any], ok: bool) -> None:
    assert accepted(body) is ok, "the service itself"
    assert kitchen.valid("OaKitchenCreate", body) is ok, "the document"


FREE_FORM_WRITES: list[tuple[dict[str, Any], bool]] = [
    ({"extra": {"a": {"b": [1, {"c": None}]}}}, True),
    ({"extra": {"$set": 1}}, False),
    ({"extra": {"a.b": 1}}, False),
    ({"scores": {"$inc": 1}}, False),
    ({"scores": {"a.b": 1}}, False),
    ({"dyn": {"$where": "1"}}, False),
    ({"dyn": [1, "x"]}, True),
    ({"when": "0001-01-01T00:00:00+01:00"}, False),
]


@pytest.mark.parametrize(("body", "ok"), FREE_FORM_WRITES)
def test_free_form_values_in_the_create_schema_agree_with_the_write_path(
    kitchen: Contract, body: dict[str, Any], ok: bool
) -> None:
    assert accepted(body) is ok, "the service itself"
    if "when" not in body:  # a date-time's range in UTC is not in its schema (format: date-time)
        assert kitchen.valid("OaKitchenCreate", body) is ok, "the document"
