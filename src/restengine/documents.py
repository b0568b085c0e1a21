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
    return list(found)
