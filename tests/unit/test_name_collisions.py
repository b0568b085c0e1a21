"""Served classes whose names collide (MongoEngine's class names, resource names) stop start-up, naming both.

``tests.collide_a`` and ``tests.collide_b`` both define ``Figure`` and ``Figure.Ring``;
``tests.collide_c`` defines a class under ``tests.collide_a.Figure``'s collection.
"""

from __future__ import annotations

import pytest

from restengine.api import Api
from restengine.config import ConfigError
from restengine.documents import load_documents
from tests import collide_a, collide_b, collide_c, legacy_models, legacy_models_for_discovery

CLASS_NAME = (
    "two served classes have the class name 'Figure': tests.collide_a.Figure and tests.collide_b.Figure"
    " (MongoEngine keeps one class per name; rename one of them)"
)


def test_two_modules_defining_the_same_class_names_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_documents(["tests.collide_a", "tests.collide_b"])
    assert str(info.value) == f"RESTENGINE_DOCUMENTS: {CLASS_NAME}"
    with pytest.raises(ConfigError, match=r"'Shape': tests\.legacy_models\.Shape and tests\.legacy_models_for_"):
        load_documents(["tests.legacy_models", "tests.legacy_models_for_discovery"])


def test_two_classes_under_one_resource_name_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_documents(["tests.collide_a", "tests.collide_c"])
    assert str(info.value) == (
        "RESTENGINE_DOCUMENTS: two served classes have the resource name 'collide_a_figures':"
        " tests.collide_a.Figure and tests.collide_c.Label (give one of them another collection)"
    )


def test_only_the_classes_served_together_count() -> None:
    """The other module's classes are imported (and MongoEngine's registry holds them): not served, no clash."""
    assert collide_b.Figure is not None
    assert load_documents(["tests.collide_a"]) == [collide_a.Figure, collide_a.Ring]
    assert load_documents(["tests.collide_b"]) == [collide_b.Figure, collide_b.Ring]
    assert legacy_models.Circle in load_documents(["tests.legacy_models"])
    assert legacy_models_for_discovery.Circle in load_documents(["tests.legacy_models_for_discovery"])
    assert load_documents(["tests.collide_a", "tests.collide_a"]) == [collide_a.Figure, collide_a.Ring]


def test_api_register_refuses_a_second_class_of_the_same_name() -> None:
    api = Api()
    api.register(collide_a.Figure)
    api.register(collide_a.Ring)
    api.register(collide_a.Figure, sortable=["name"])  # the same class again: its options replaced
    with pytest.raises(ConfigError) as info:
        api.register(collide_b.Figure, name="other_figures")
    assert str(info.value) == CLASS_NAME
    with pytest.raises(ConfigError, match=r"'Figure\.Ring': tests\.collide_a\.Ring and tests\.collide_b\.Ring"):
        api.register(collide_b.Ring, name="other_rings")
    with pytest.raises(ConfigError) as info:
        api.register(collide_c.Label)
    assert str(info.value) == (
        "two served classes have the resource name 'collide_a_figures': tests.collide_a.Figure and"
        " tests.collide_c.Label (register one under another name)"
    )
    assert isinstance(info.value, ValueError)
    api.register(collide_c.Label, name="labels")
    assert set(api.resources) == {"collide_a_figures", "ring", "labels"}


def test_register_module_refuses_a_colliding_module() -> None:
    api = Api()
    api.register_module("tests.collide_a")
    with pytest.raises(ConfigError, match=r"'Figure': tests\.collide_a\.Figure and tests\.collide_b\.Figure"):
        api.register_module(collide_b)
