"""One Document class per kind of primary key, and one class referring to each (tests/integration/test_primary_keys.py).

Plain MongoEngine: every class has a ``title`` to change and a ``rank`` to
sort and filter by; :class:`Holder` refers to each of them for ``expand``.
"""

from __future__ import annotations

import uuid

from mongoengine import (
    Document,
    IntField,
    LongField,
    ReferenceField,
    SequenceField,
    StringField,
    UUIDField,
)


class OidKey(Document):
    """The default key: an ObjectId under ``id``."""

    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_oid"}


class StrKey(Document):
    name = StringField(primary_key=True, max_length=40)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_str"}


class CodeKey(Document):
    """A custom key with a ``db_field``: MongoEngine stores it as ``_id`` regardless."""

    code = StringField(primary_key=True, db_field="c")
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_code"}


class IntKey(Document):
    number = IntField(primary_key=True)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_int"}


class LongKey(Document):
    """Stored as a BSON Int64 (an IntField stores small numbers as int32)."""

    number = LongField(primary_key=True)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_long"}


class BinaryUuidKey(Document):
    """A UUID stored as BSON binary (its subtype follows ``RESTENGINE_UUID_REPRESENTATION``)."""

    uid = UUIDField(primary_key=True, binary=True, default=uuid.uuid4)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_uuid_bin"}


class TextUuidKey(Document):
    """A UUID stored as its string (``binary=False``), as older schemas do."""

    uid = UUIDField(primary_key=True, binary=False, default=uuid.uuid4)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_uuid_str"}


class SeqKey(Document):
    """A counter MongoEngine assigns on save (in ``mongoengine.counters``)."""

    seq = SequenceField(primary_key=True)
    title = StringField(required=True)
    rank = IntField(default=0)
    meta = {"collection": "pk_seq"}


class Holder(Document):
    """Refers to one document of each kind (``expand``)."""

    label = StringField(required=True)
    oid = ReferenceField(OidKey)
    str_ref = ReferenceField(StrKey)
    code = ReferenceField(CodeKey)
    int_ref = ReferenceField(IntKey)
    long_ref = ReferenceField(LongKey)
    uuid_bin = ReferenceField(BinaryUuidKey)
    uuid_str = ReferenceField(TextUuidKey)
    seq = ReferenceField(SeqKey)
    meta = {"collection": "pk_holders"}
