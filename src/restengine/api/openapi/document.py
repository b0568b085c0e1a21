"""The whole OpenAPI 3.1 document of an :class:`~restengine.api.Api`: its mounts, and the service paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from restengine import __version__
from restengine.api.fields import Schema
from restengine.api.openapi.components import (
    DIALECT,
    HEADERS,
    INDEX_SCHEMA,
    NOT_READY_SCHEMA,
    OPENAPI,
    PARAMETERS,
    PROBLEM_SCHEMA,
    READY_SCHEMA,
    RESPONSES,
    ROOT_SCHEMA,
    SECURITY_SCHEMES,
    header_refs,
    responses,
)
from restengine.api.openapi.paths import Operations
from restengine.api.openapi.schemas import Schemas, doc_text
from restengine.constants import JSON, PROBLEM_JSON
from restengine.profiles import openapi as profile_openapi

if TYPE_CHECKING:
    from restengine.api.registry import Api


@dataclasses.dataclass(frozen=True)
class Mount:
    """Where things are served, as paths below ``server`` (the server URL, relative by default).

    ``api``: the resources' prefix; ``openapi``: this document; ``health``:
    the ``/healthz`` and ``/readyz`` probes; ``root``: the service index.
    ``None`` leaves a part out.
    """

    api: str = "/api"
    server: str = "/"
    openapi: str | None = "/openapi.json"
    health: tuple[str, str] | None = None
    root: str | None = None


def build_document(api: Api, mount: Mount | None = None, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI document for ``api``'s resources as they are registered now."""
    mount = mount or Mount()
    info = info or {}
    schemas = Schemas(api)
    operations = Operations(schemas)
    resources = [api.resources[name] for name in sorted(api.resources)]
    for resource in resources:  # registered resources get the plain names
        schemas.resource_name(resource)
    paths: dict[str, Any] = {}
    tags: list[dict[str, Any]] = []
    profiled = None if api.profile == "native" else profile_openapi.PATHS[api.profile]
    for resource in resources:
        if profiled is None:
            paths.update(operations.resource_paths(resource, mount.api))
        else:
            paths.update(profiled(schemas, resource, mount.api))
        tag: dict[str, Any] = {"name": resource.name}
        description = doc_text(resource.doc_cls)
        if description:
            tag["description"] = description
        tags.append(tag)
    for extension in api.openapi_extensions:  # other mounts over the same resources (the Data API)
        paths.update(extension())
    paths.update(_service_paths(mount))
    tags.append({"name": "service", "description": "The resource index, health probes and this document."})
    schemas.schemas["Problem"] = PROBLEM_SCHEMA
    if profiled is not None:
        name, schema = profile_openapi.ERROR_SCHEMAS[api.profile]
        schemas.schemas[name] = schema
    document = {
        "openapi": OPENAPI,
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": "RestEngine API",
            "version": __version__,
            "description": (
                "MongoEngine documents served as REST resources. Every error is `application/problem+json` (RFC 9457)."
                if profiled is None
                else f"MongoEngine documents served as REST resources in the `{api.profile}` profile's wire format: "
                "its envelopes, parameters and error bodies."
            ),
            **info,
        },
        "servers": [{"url": mount.server}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.schemas.items())),
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "responses": RESPONSES,
        },
    }
    prefixes = [f"{mount.api}/{resource.name}" for resource in resources]
    refusal = responses if profiled is None else lambda *codes: profile_openapi.errors(api.profile, *codes)
    _limited(document, prefixes, refusal)
    if api.access is not None:
        _secure(document, prefixes, refusal)
    return document


def _limited(document: dict[str, Any], prefixes: list[str], responses: Callable[..., dict[str, Any]]) -> None:
    """The resources' operations may be refused by the rate limits or the cap on expensive queries: 429."""
    for path, item in document["paths"].items():
        if any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes):
            for operation in (value for key, value in item.items() if key != "parameters"):
                operation["responses"].update(responses("429"))


def _secure(document: dict[str, Any], prefixes: list[str], responses: Callable[..., dict[str, Any]]) -> None:
    """Bearer credentials for the resources' operations: optional, with their 401 and 403 answers."""
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, item in document["paths"].items():
        if not any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes):
            continue
        for operation in (value for key, value in item.items() if key != "parameters"):
            operation["security"] = [{}, {"bearer": []}]  # anonymous callers get what the policy gives them
            operation["responses"].update(responses("401", "403"))


def _revalidated(operation_id: str, summary: str, description: str, schema: Schema) -> dict[str, Any]:
    """A service GET answered with an ETag, 304 when ``If-None-Match`` holds it."""
    return {
        "tags": ["service"],
        "operationId": operation_id,
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
        "responses": {
            "200": {
                "description": description,
                "headers": header_refs("ETag-required"),
                "content": {JSON: {"schema": schema}},
            },
            **responses("304", "406", "500"),
        },
    }


def _service_paths(mount: Mount) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    tag = ["service"]
    index = _revalidated("api_index", "The resources and their URLs", "Every resource, sorted by name.", INDEX_SCHEMA)
    paths[f"{mount.api}/"] = {"get": index}
    if mount.openapi is not None:
        document = {"type": "object", "required": ["openapi", "paths"]}
        paths[mount.openapi] = {"get": _revalidated("openapi", "This document", "The OpenAPI 3.1 document.", document)}
    if mount.root is not None:
        paths[mount.root] = {
            "get": {
                "tags": tag,
                "operationId": "service_index",
                "summary": "What this service is, with links",
                "responses": {
                    "200": {"description": "Links.", "content": {JSON: {"schema": ROOT_SCHEMA}}},
                    **responses("500"),
                },
            }
        }
    if mount.health is not None:
        healthz, readyz = mount.health
        no_store = header_refs("Cache-Control")
        paths[healthz] = {
            "get": {
                "tags": tag,
                "operationId": "healthz",
                "summary": "Liveness (no I/O)",
                "responses": {
                    "200": {
                        "description": "The process is serving.",
                        "headers": no_store,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "ok"}},
                                    "required": ["status"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    **responses("500"),
                },
            }
        }
        paths[readyz] = {
            "get": {
                "tags": tag,
                "operationId": "readyz",
                "summary": "Readiness: pings the database and Redis",
                "responses": {
                    "200": {
                        "description": "Ready.",
                        "headers": no_store,
                        "content": {JSON: {"schema": READY_SCHEMA}},
                    },
                    "503": {
                        "description": "Not ready: `checks` says what failed.",
                        "headers": header_refs("Retry-After", "Cache-Control"),
                        "content": {PROBLEM_JSON: {"schema": NOT_READY_SCHEMA}},
                    },
                    **responses("500"),
                },
            }
        }
    return paths
