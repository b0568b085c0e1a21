"""Documents whose ``objects`` managers differ: MongoEngine's own, and a custom one that reads a changing value."""

from __future__ import annotations

from typing import Any

from mongoengine import Document, StringField, queryset_manager

TENANT = {"name": "a"}  # what the custom manager filters on; tests change it between requests


class Plain(Document):
    meta = {"collection": "plain_notes"}
    text = StringField()


class Tenanted(Document):
    meta = {"collection": "tenant_notes"}
    tenant = StringField()
    text = StringField()

    @queryset_manager
    def objects(doc_cls: Any, queryset: Any) -> Any:
        return queryset.filter(tenant=TENANT["name"])
