"""Compatibility profiles: other systems' wire formats over the same resources.

A profile is a URL and body shape, not a second implementation: its views parse
that system's parameters into the native ones and render the native results in
its shape, through the same resources, access policy, cache, validation and
budgets (see :mod:`.eve`, :mod:`.mongorest`, :mod:`.dataapi`).

:class:`Mounts` is the WSGI layer that tells every later layer which profile a
request's path belongs to, so that a refusal answered before Flask runs (a rate
limit, the access check, admission control) comes in the profile's error shape
too, and that turns the Data API's ``apiKey`` header into the bearer credential
the access check reads.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mongoengine import fields as mf
from mongoengine.base import BaseField, get_document

from restengine.api.access import PRINCIPAL
from restengine.errors import ERROR_SHAPE, Problem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from restengine.api.views import Views

ErrorShape = Callable[[Problem], tuple[Any, str, int]]
"""A profile's error body for a problem, its media type and its status."""

NATIVE = "native"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A wire format of the resource URLs: its views, its error shape (``None``: problem+json), and the query
    parameters that embed referenced documents (the cache's fast path leaves those to the view)."""

    views: type[Views]
    error_shape: ErrorShape | None
    expanding: tuple[str, ...]
    strips_slash: bool = False  # its clients write collection and item URLs with a trailing slash


NAMES = (NATIVE, "eve", "mongorest")


@functools.cache
def profile(name: str) -> Profile:
    """The profile named ``name`` (one of :data:`NAMES`; its views import the API, which imports this package,
    hence on first use)."""
    from restengine.api.views import Views
    from restengine.profiles import eve, mongorest

    return {
        NATIVE: Profile(Views, None, ("expand",)),
        "eve": Profile(eve.EveViews, eve.error_shape, ("embedded",)),
        "mongorest": Profile(mongorest.MongoRestViews, mongorest.error_shape, (), strips_slash=True),
    }[name]


def _converter(field: BaseField | None, convert: Callable[[Any], Any], outgoing: bool) -> Callable[[Any], Any] | None:
    """What to do to a field's JSON value between the native form and Eve's: date-times in RFC 1123, decimals
    stored as numbers as numbers; ``None`` when nothing changes."""
    if isinstance(field, (mf.DateTimeField, mf.ComplexDateTimeField)):
        return convert
    if outgoing and isinstance(field, mf.DecimalField) and not field.force_string:
        return lambda value: float(value) if isinstance(value, str) else value
    if isinstance(field, mf.EmbeddedDocumentField):
        embedded = field.document_type
        return lambda value: converted(embedded, value, convert, outgoing) if isinstance(value, dict) else value
    if isinstance(field, mf.ListField):
        element = _converter(field.field, convert, outgoing)
        if element is None:
            return None
        each = element
        return lambda value: [None if v is None else each(v) for v in value] if isinstance(value, list) else value
    if isinstance(field, mf.MapField):
        element = _converter(field.field, convert, outgoing)
        if element is None:
            return None
        every = element
        return lambda value: {k: every(v) for k, v in value.items()} if isinstance(value, dict) else value
    return None


def converted(
    doc_cls: type[Any], values: dict[str, Any], convert: Callable[[Any], Any], outgoing: bool
) -> dict[str, Any]:
    """``values`` (a native item or body of ``doc_cls``) with every date-time value passed through ``convert``,
    and (``outgoing``) decimals stored as numbers shown as numbers, in embedded documents, lists and maps too."""
    if isinstance(values.get("_cls"), str) and values["_cls"] != doc_cls._class_name:
        try:
            doc_cls = get_document(values["_cls"])
        except Exception:  # an unknown subclass: its values are left as they are
            return values
    out = dict(values)
    for name, value in values.items():
        step = _converter(doc_cls._fields.get(name), convert, outgoing)
        if step is not None and value is not None:
            out[name] = step(value)
    return out


def api_key_as_bearer(environ: WSGIEnvironment) -> None:
    """The Data API's ``apiKey`` header as ``Authorization: Bearer <key>``, the credential the access check reads,
    unless the request sent an ``Authorization`` of its own or its caller is established already."""
    key = environ.get("HTTP_APIKEY")
    if key and not environ.get("HTTP_AUTHORIZATION") and PRINCIPAL not in environ:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key.strip()}"


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class Mounts:
    """WSGI layer: the error shape of the profile mounted at the request's path; ``apiKey`` as a bearer credential.

    ``shapes``: (path prefix, its error shape); ``api_key_paths``: prefixes where an ``apiKey`` header is
    accepted in place of ``Authorization: Bearer`` (the Data API's); ``slash_paths``: prefixes whose clients
    end URLs with a slash (Flask-MongoRest's), read without it (``/api/books/1/`` is ``/api/books/1``) by every
    later layer and the routes alike.
    """

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        shapes: Sequence[tuple[str, ErrorShape]],
        api_key_paths: Sequence[str] = (),
        slash_paths: Sequence[str] = (),
    ) -> None:
        self.wsgi_app = wsgi_app
        self.shapes = list(shapes)
        self.api_key_paths = list(api_key_paths)
        self.slash_paths = list(slash_paths)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.endswith("/") and any(path.startswith(p + "/") and len(path) > len(p) + 1 for p in self.slash_paths):
            path = environ["PATH_INFO"] = path[:-1]
        for prefix, shape in self.shapes:
            if under(path, prefix):
                environ[ERROR_SHAPE] = shape
                break
        if any(under(path, p) for p in self.api_key_paths):
            api_key_as_bearer(environ)
        return self.wsgi_app(environ, start_response)
