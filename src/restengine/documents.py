"""Find the MongoEngine Document classes an application's modules define.

The classes are used as they are: nothing here changes them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import mongoengine

from restengine.config import ConfigError

SETTING = "RESTENGINE_DOCUMENTS"


def _import(path: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except Exception as exc:  # ImportError, or anything the module raised while importing
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{SETTING}: cannot import {path!r}: {type(exc).__name__}: {reason}") from exc


def _is_concrete_document(obj: object) -> bool:
    return (
        isinstance(obj, type)
        and issubclass(obj, mongoengine.Document)
        and not getattr(obj, "_meta", {}).get("abstract", False)
    )


def load_documents(modules: Sequence[str]) -> list[type[mongoengine.Document]]:
    """Import each module path and return the concrete Document classes defined in it.

    A class counts when it is a :class:`mongoengine.Document` subclass bound at
    module level whose ``__module__`` is that module (imported classes are
    skipped), and is not abstract. EmbeddedDocuments are never returned. The
    result keeps module order, then definition order, without duplicates.

    Importing runs the modules' top-level code. Raises :class:`ConfigError`
    naming ``RESTENGINE_DOCUMENTS`` when no module is given, a module cannot be
    imported (the chained exception has the traceback), or a module defines no
    concrete Document.
    """
    if not modules:
        raise ConfigError(f"{SETTING}: no module given")
    found: dict[type[mongoengine.Document], None] = {}
    for path in modules:
        module = _import(path.strip())
        defined = [
            obj for obj in vars(module).values() if _is_concrete_document(obj) and obj.__module__ == module.__name__
        ]
        if not defined:
            raise ConfigError(f"{SETTING}: module {path!r} defines no concrete mongoengine Document")
        found.update(dict.fromkeys(defined))
    classes = list(found)
    problem = collision(classes)
    if problem is not None:
        raise ConfigError(f"{SETTING}: {problem}")
    return classes


def qualified(cls: type) -> str:
    """``module.Class``: where a class is defined."""
    return f"{cls.__module__}.{cls.__qualname__}"


def collision(classes: Sequence[type[mongoengine.Document]]) -> str | None:
    """Why ``classes`` cannot be served together, or ``None``: two of them share a MongoEngine class name
    (``_class_name``, the key of its global registry, which keeps only the last one defined: ``_cls`` values and
    references by name would load the other) or a resource name (a URL, by default the collection's name).

    The reason names both classes by module path (:func:`qualified`).
    """
    from restengine.api.resource import default_name

    by_class_name: dict[str, type] = {}
    by_resource: dict[str, type] = {}
    for cls in classes:
        other = by_class_name.setdefault(cls._class_name, cls)
        if other is not cls:
            return (
                f"two served classes have the class name {cls._class_name!r}: {qualified(other)} and"
                f" {qualified(cls)} (MongoEngine keeps one class per name; rename one of them)"
            )
        name = default_name(cls)
        other = by_resource.setdefault(name, cls)
        if other is not cls:
            return (
                f"two served classes have the resource name {name!r}: {qualified(other)} and {qualified(cls)}"
                " (give one of them another collection)"
            )
    return None


def imported_documents() -> list[type[mongoengine.Document]]:
    """Every concrete Document class imported so far (MongoEngine's registry, in definition order), RestEngine's
    own aside: what is served for a host app (``RESTENGINE_APP``) when ``RESTENGINE_DOCUMENTS`` names nothing.

    Raises :class:`ConfigError` when there is none.
    """
    # Every subclass, not MongoEngine's registry: it keeps one class per name, and would hide a clash.
    found: list[type[mongoengine.Document]] = []
    pending: list[type[mongoengine.Document]] = [mongoengine.Document]
    while pending:
        for sub in pending.pop(0).__subclasses__():
            if sub not in found and sub not in pending:
                pending.append(sub)
            if _is_concrete_document(sub) and not sub.__module__.startswith("restengine.") and sub not in found:
                found.append(sub)
    reason = collision(found)
    if reason is not None:
        raise ConfigError(f"RESTENGINE_APP: {reason}")
    if not found:
        raise ConfigError(
            f"RESTENGINE_APP: the app imported no concrete mongoengine Document; name its modules in {SETTING}"
        )
    return found
