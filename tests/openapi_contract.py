"""Checks a response (or a request body) against the service's OpenAPI document, as a contract tester would.

For a response: its status is listed for the operation, its media type is
one the document gives, its body validates against that schema (JSON Schema
2020-12, formats asserted, every ``$ref`` resolved inside the document), and
every header the document declares validates, required ones present.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

SPEC_URI = "urn:restengine:openapi"


def pointer(*parts: str) -> str:
    """A URI fragment naming ``parts`` inside the document (JSON pointer, percent-encoded)."""
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + quote(escaped, safe="/~")


class Contract:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource(contents=spec, specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    # ------------------------------------------------------------ lookups

    def _deref(self, value: Any) -> Any:
        while isinstance(value, dict) and "$ref" in value:
            node: Any = self.spec
            for part in value["$ref"].removeprefix("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            value = node
        return value

    def operation(self, method: str, path: str) -> dict[str, Any]:
        operations = self.spec["paths"].get(path)
        assert operations is not None, f"{path} is not in the document"
        operation = operations.get(method.lower())
        assert operation is not None, f"{method} {path} is not in the document"
        return dict(operation)

    def validator(self, *parts: str) -> Draft202012Validator:
        """A validator for the schema at ``parts`` in the document (e.g. ``components``, ``schemas``, ``Book``)."""
        return Draft202012Validator(
            {"$ref": SPEC_URI + pointer(*parts)},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def schema(self, name: str) -> Draft202012Validator:
        return self.validator("components", "schemas", name)

    # ------------------------------------------------------------ checks

    def check(self, method: str, path: str, response: TestResponse) -> Any:
        """Assert ``response`` is one the document allows for ``method path``; returns its JSON body."""
        operation = self.operation(method, path)
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{method} {path} answered {status}, not listed: {sorted(operation['responses'])}",
            response.get_data(as_text=True)[:500],
        )
        declared = self._deref(operation["responses"][status])
        ref = operation["responses"][status]
        for name, header in (declared.get("headers") or {}).items():
            header = self._deref(header)
            value = response.headers.get(name)
            if value is None:
                assert not header.get("required"), f"{method} {path} {status}: header {name} missing"
                continue
            schema = header.get("schema", {})
            instance: Any = int(value) if schema.get("type") == "integer" else value
            errors = list(Draft202012Validator(schema).iter_errors(instance))
            assert not errors, f"{method} {path} {status}: header {name}={value!r}: {errors[0].message}"
        content = declared.get("content")
        body = response.get_data()
        if not content:
            assert body == b"", f"{method} {path} {status}: a body where the document has none"
            return None
        assert response.mimetype in content, f"{method} {path} {status}: {response.mimetype} not in {list(content)}"
        data = json.loads(body)
        if "$ref" in ref:  # a shared response: its schema lives under components/responses
            parts = ["components", "responses", ref["$ref"].rsplit("/", 1)[1]]
        else:
            parts = ["paths", path, method.lower(), "responses", status]
        validator = self.validator(*parts, "content", response.mimetype, "schema")
        error = next(iter(sorted(validator.iter_errors(data), key=lambda e: e.path)), None)
        assert error is None, f"{method} {path} {status}: {error.message} at {list(error.path)}\n{data}"
        return data

    def request_errors(self, method: str, path: str, body: Any, media_type: str = "application/json") -> list[str]:
        """Why ``body`` is not a valid request body for ``method path`` (empty: it is valid)."""
        operation = self.operation(method, path)
        assert media_type in operation["requestBody"]["content"], media_type
        validator = self.validator("paths", path, method.lower(), "requestBody", "content", media_type, "schema")
        return [f"{e.message} at {list(e.path)}" for e in validator.iter_errors(body)]

    def valid(self, name: str, instance: Any) -> bool:
        try:
            self.schema(name).validate(instance)
        except ValidationError:
            return False
        return True
