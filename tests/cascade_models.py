"""Documents whose delete rules reach further than one step: a Shelf's Boxes CASCADE, their Items CASCADE.

Not listed in any ``RESTENGINE_DOCUMENTS``: tests register them on an app's ``Api`` themselves.
"""

from __future__ import annotations

from mongoengine import CASCADE, DENY, NULLIFY, Document, ReferenceField, StringField


class Shelf(Document):
    name = StringField()
    meta = {"collection": "cascade_shelves"}


class Box(Document):
    label = StringField()
    shelf = ReferenceField(Shelf, reverse_delete_rule=CASCADE)
    meta = {"collection": "cascade_boxes"}


class Item(Document):
    name = StringField()
    box = ReferenceField(Box, reverse_delete_rule=CASCADE)
    meta = {"collection": "cascade_items"}


class Tag(Document):
    """Refers to an Item; deleting the Item (down the cascade) unsets the reference."""

    name = StringField()
    item = ReferenceField(Item, reverse_delete_rule=NULLIFY)
    meta = {"collection": "cascade_tags"}


class Sticker(Document):
    """Refers to a Box and forbids deleting it: a DENY met down the Shelf's CASCADE."""

    box = ReferenceField(Box, reverse_delete_rule=DENY)
    meta = {"collection": "cascade_stickers"}


class Folder(Document):
    """Refers to itself: deleting a Folder cascades to its subfolders (a cycle the invalidation walk must end)."""

    name = StringField()
    parent = ReferenceField("self", reverse_delete_rule=CASCADE)
    meta = {"collection": "cascade_folders"}
