"""``restengine doctor``'s reading of ``explain`` answers (mongod's shapes and SecantusDB's) and its index rules."""

from __future__ import annotations

from typing import Any

import pytest

from restengine.ops.doctor.findings import Finding, key_text, meta_spec
from restengine.ops.doctor.indexes import Index, declared_indexes
from restengine.ops.doctor.queries import plan_stages, representative, serves_filter, serves_sort
from tests.stored_data_models import Car, Vehicle

IXSCAN = {"stage": "IXSCAN", "keyPattern": {"a": 1}, "indexName": "a_1", "direction": "forward"}


def planned(winning: Any) -> dict[str, Any]:
    return {"queryPlanner": {"namespace": "db.c", "winningPlan": winning, "rejectedPlans": []}, "ok": 1.0}


@pytest.mark.parametrize(
    ("winning", "stages"),
    [
        # mongod, classic engine (and SecantusDB, which answers the same way)
        ({"stage": "FETCH", "inputStage": IXSCAN}, ["FETCH", "IXSCAN"]),
        ({"stage": "COLLSCAN", "filter": {"a": {"$eq": 1}}, "direction": "forward"}, ["COLLSCAN"]),
        (
            {"stage": "SORT", "sortPattern": {"a": 1}, "inputStage": {"stage": "COLLSCAN"}, "memLimit": 104857600},
            ["SORT", "COLLSCAN"],
        ),
        # mongod 7+, slot-based engine: the stages under queryPlan
        (
            {
                "queryPlan": {"stage": "SORT", "planNodeId": 2, "inputStage": {"stage": "COLLSCAN", "planNodeId": 1}},
                "slotBasedPlan": {"slots": "$$RESULT=s5", "stages": "[2] sort [s4] ..."},
            },
            ["SORT", "COLLSCAN"],
        ),
        # an $or: one branch per index, or a scan
        (
            {"stage": "SUBPLAN", "inputStage": {"stage": "OR", "inputStages": [IXSCAN, {"stage": "COLLSCAN"}]}},
            ["SUBPLAN", "OR", "IXSCAN", "COLLSCAN"],
        ),
        # a sharded cluster (mongos): each shard's own winning plan
        (
            {
                "stage": "SHARD_MERGE",
                "shards": [{"shardName": "s0", "winningPlan": {"stage": "FETCH", "inputStage": IXSCAN}}],
            },
            ["SHARD_MERGE", "FETCH", "IXSCAN"],
        ),
        # mongod 8's fast path for _id
        ({"stage": "EXPRESS_IXSCAN", "keyPattern": "{ _id: 1 }"}, ["EXPRESS_IXSCAN"]),
    ],
)
def test_plan_stages_reads_every_winning_plan_shape(winning: Any, stages: list[str]) -> None:
    assert plan_stages(planned(winning)) == stages


def test_no_plan_to_judge_is_none() -> None:
    assert plan_stages(planned({"stage": "EOF"})) is None  # mongod, for a collection that does not exist
    assert plan_stages({"ok": 1.0}) is None
    assert plan_stages(planned(None)) is None


def test_index_rules_follow_mongod() -> None:
    pair = Index((("a", 1), ("_id", 1)))
    assert serves_sort([pair], [("a", 1), ("_id", 1)], False)
    assert serves_sort([pair], [("a", -1), ("_id", -1)], False)  # read backwards
    assert not serves_sort([pair], [("a", -1), ("_id", 1)], False)  # ?sort=-a: the tiebreak stays ascending
    assert not serves_sort([Index((("a", 1),))], [("a", 1), ("_id", 1)], False)  # no tiebreak in the index
    assert serves_sort([Index((("_id", 1),))], [("_id", -1)], False)
    assert serves_filter([pair], "a", False) and not serves_filter([pair], "_id", False)
    by_class = Index((("_cls", 1), ("a", 1), ("_id", 1)))
    assert serves_filter([by_class], "a", True) and not serves_filter([by_class], "a", False)
    assert serves_sort([by_class], [("a", 1), ("_id", 1)], True)
    partial = Index((("a", 1),), usable=False)
    assert not serves_filter([partial], "a", False)
    assert not serves_filter([Index((("a", "text"),))], "a", False)


def test_declared_indexes_are_what_ensure_indexes_builds() -> None:
    # a class with subclasses and no index of its own gets MongoEngine's _cls index
    assert [index.key for index in declared_indexes([Vehicle, Car])] == [(("_cls", 1),)]


def test_representative_values_come_from_the_sample_through_lists() -> None:
    sample = [{"_id": 1}, {"_id": 2, "lines": [{"sku": None}, {"sku": "P-1"}]}]
    assert representative(sample, "lines.sku") == "P-1"
    assert representative(sample, "missing") is None
    assert representative([{"tags": [["x"]], "d": {"k": 1}}], "d") is None  # documents and lists are no value


def test_fixes_are_written_as_the_shell_and_mongoengine_take_them() -> None:
    assert key_text((("published", -1), ("_id", 1))) == '{"published": -1, "_id": 1}'
    assert meta_spec([("published", -1), ("id", 1)]) == '("-published", "id")'
    assert meta_spec([("shipping.city", 1)]) == '"shipping.city"'
    finding = Finding("books", "books", "unindexed_filter", "detail", index=(("a", 1),))
    assert finding.as_json() == {
        "resource": "books",
        "collection": "books",
        "kind": "unindexed_filter",
        "detail": "detail",
        "index": {"a": 1},
    }
