"""``aggregate`` pipelines, checked stage by stage and run behind the caller's scope and the fields it may see.

The Data API ran "an array of aggregation stages" (OpenAPI reference, ``operation-aggregate``) on any
collection its rules allowed. RestEngine runs them only on the resources ``RESTENGINE_DATA_API_AGGREGATE``
names, with the stages in :data:`STAGES` and the operators in :data:`EXPRESSIONS` and
:data:`ACCUMULATORS`: never ``$out``, ``$merge``, ``$unionWith``, code (``$function``, ``$accumulator``,
``$where``), regular expressions, variables, or a ``$lookup`` into a collection the caller may not read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bson.code import Code
from bson.regex import Regex
from mongoengine.base import get_document

from restengine.api import jsonquery, pagination
from restengine.api.model import UnknownField, resolve
from restengine.errors import InvalidParameter
from restengine.profiles.dataapi.bodies import MAX_INT

if TYPE_CHECKING:
    from restengine.api.resource import Resource

STAGES = ("$match", "$project", "$sort", "$limit", "$skip", "$group", "$count", "$unwind", "$lookup")
ACCUMULATORS = frozenset({"$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$count"})
EXPRESSIONS = frozenset(
    {
        "$add", "$subtract", "$multiply", "$divide", "$mod", "$abs", "$floor", "$ceil", "$round",
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp", "$and", "$or", "$not", "$cond", "$ifNull",
        "$concat", "$toLower", "$toUpper", "$strLenCP", "$size",
        "$year", "$month", "$dayOfMonth", "$dayOfWeek", "$hour", "$minute", "$second",
    }
)  # fmt: skip
"""Expression operators a pipeline may use: arithmetic, comparison, conditions, a few string, array and date
parts. Nothing that runs code (``$function``, ``$accumulator``, ``$where``) or reads variables (``$$``)."""
QUERY_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$size", "$all"})
MAX_EXPRESSION_DEPTH = 8
MAX_STAGES = 20
MAX_SORT_KEYS = pagination.MAX_SORT_KEYS


def _name(value: Any, where: str, *, dotted: bool = True) -> str:
    """A field name (or dotted path) a pipeline stage may write or read: no ``$`` step, ``__``, NUL."""
    if not isinstance(value, str) or not value or "__" in value or "\0" in value:
        raise InvalidParameter("pipeline", f"{where}: {value!r} is not a field name")
    steps = value.split(".")
    if (not dotted and len(steps) > 1) or any(not step or step.startswith("$") for step in steps):
        raise InvalidParameter("pipeline", f"{where}: {value!r} is not a field name")
    return value


def _reference(value: str, where: str) -> str:
    """``"$field"``, a reference to a field of the stage's input; ``$$`` variables are refused."""
    if value.startswith("$$"):
        raise InvalidParameter("pipeline", f"{where}: variables ({value!r}) are not allowed")
    _name(value[1:], where)
    return value


def _expression(value: Any, where: str, depth: int = 0) -> None:
    """Check an aggregation expression: field references, constants, objects of expressions, and
    :data:`EXPRESSIONS` operators."""
    if depth > MAX_EXPRESSION_DEPTH:
        raise InvalidParameter("pipeline", f"{where}: expressions nest at most {MAX_EXPRESSION_DEPTH} levels")
    if isinstance(value, str) and value.startswith("$"):
        _reference(value, where)
    elif isinstance(value, (Regex, re.Pattern, Code)):
        raise InvalidParameter("pipeline", f"{where}: regular expressions and code are not allowed")
    elif isinstance(value, list):
        for item in value:
            _expression(item, where, depth + 1)
    elif isinstance(value, dict):
        operators = [key for key in value if str(key).startswith("$")]
        if operators and (len(value) != 1 or operators[0] not in EXPRESSIONS):
            raise InvalidParameter("pipeline", f"{where}: operator {operators[0]!r} is not allowed")
        for key, item in value.items():
            if not operators:
                _name(key, where, dotted=False)
            _expression(item, where, depth + 1)


def _query(value: Any, where: str, depth: int = 0) -> None:
    """Check a ``$match`` on a later stage's documents: equality, :data:`QUERY_OPERATORS`, ``$and``/``$or``/``$nor``."""
    if not isinstance(value, dict):
        raise InvalidParameter("pipeline", f"{where}: a query is an object")
    if depth > jsonquery.MAX_DEPTH:
        raise InvalidParameter("pipeline", f"{where}: at most {jsonquery.MAX_DEPTH} levels of $and / $or / $nor")
    for key, condition in value.items():
        if key in jsonquery.LOGICAL:
            if not isinstance(condition, list) or not condition:
                raise InvalidParameter("pipeline", f"{where}: {key} takes a non-empty list of queries")
            for part in condition:
                _query(part, where, depth + 1)
            continue
        if str(key).startswith("$"):
            raise InvalidParameter("pipeline", f"{where}: operator {key!r} is not allowed")
        _name(key, where)
        if isinstance(condition, dict) and any(str(k).startswith("$") for k in condition):
            for op, operand in condition.items():
                if op not in QUERY_OPERATORS:
                    raise InvalidParameter("pipeline", f"{where}: operator {op!r} is not allowed (on {key!r})")
                _constant(operand, where)
        else:
            _constant(condition, where)


def _constant(value: Any, where: str) -> None:
    """A value compared against: plain data, no operators, no regular expression or code."""
    if isinstance(value, (Regex, re.Pattern, Code)):
        raise InvalidParameter("pipeline", f"{where}: regular expressions and code are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).startswith("$"):
                raise InvalidParameter("pipeline", f"{where}: operator {key!r} is not allowed here")
            _constant(item, where)
    elif isinstance(value, list):
        for item in value:
            _constant(item, where)


def _exposing(resource: Resource) -> dict[str, Any]:
    """The ``$project`` every pipeline starts with: the fields the caller sees, named as the API names them.

    A field a served subclass's own resource hides is left out for every document (a pipeline cannot tell
    classes apart field by field). Top-level fields are renamed from their ``db_field``; inside an embedded
    document, values keep their stored names.
    """
    hidden: set[str] = set()
    for name in resource.doc_cls._subclasses:
        hidden |= resource.hidden_for(name)
    classes = [resource.doc_cls, *(get_document(n) for n in resource.doc_cls._subclasses)]
    projection: dict[str, Any] = {"_id": 1}
    for name in sorted(resource.exposed - hidden - {resource.pk}):
        field = next((cls._fields[name] for cls in classes if name in cls._fields), None)
        if field is not None:
            projection[name] = 1 if field.db_field == name else "$" + field.db_field
    if resource.with_cls:
        projection["_cls"] = 1
    return projection


class Pipeline:
    """A client's pipeline checked stage by stage and made safe to run on one resource (see :meth:`build`).

    ``lookup(collection)`` gives the served resource of a ``$lookup``'s ``from``, as the caller may read it
    (``NotFound`` when none is served, ``Forbidden``/``Unauthorized`` when the policy refuses).
    """

    def __init__(self, resource: Resource, lookup: Callable[[str], Resource], cap: int) -> None:
        self.resource = resource
        self.lookup = lookup
        self.cap = cap

    def build(self, stages: Any) -> list[dict[str, Any]]:
        """The pipeline to run: the scope's ``$match``, the client's leading ``$match`` stages (through the
        resource's whitelist, on stored paths, where indexes serve them), the exposing ``$project``, the rest of
        the client's stages (on the API's field names), and a ``$limit`` one past the cap."""
        if not isinstance(stages, list) or not stages:
            raise InvalidParameter("pipeline", "must be a non-empty list of stages")
        if len(stages) > MAX_STAGES:
            raise InvalidParameter("pipeline", f"at most {MAX_STAGES} stages")
        leading: list[dict[str, Any]] = []
        rest: list[dict[str, Any]] = []
        for position, stage in enumerate(stages):
            where = f"stage {position}"
            if not isinstance(stage, dict) or len(stage) != 1:
                raise InvalidParameter("pipeline", f"{where}: a stage is an object with one operator")
            ((name, spec),) = stage.items()
            if name not in STAGES:
                raise InvalidParameter("pipeline", f"{where}: stage {name!r} is not allowed")
            if name == "$match" and not rest:
                leading.append({"$match": jsonquery.parse_query(self.resource, spec, "pipeline")})
            else:
                rest.append({name: getattr(self, "_" + name[1:])(spec, f"{where} ({name})")})
        base = self.resource.base_filter()
        scope = [{"$match": base}] if base else []
        return [*scope, *leading, {"$project": _exposing(self.resource)}, *rest, {"$limit": self.cap + 1}]

    def _match(self, spec: Any, where: str) -> Any:
        _query(spec, where)
        return spec

    def _project(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or not spec:
            raise InvalidParameter("pipeline", f"{where}: takes an object of fields")
        for key, value in spec.items():
            _name(key, where)
            if not isinstance(value, bool) and value not in (0, 1):
                _expression(value, where)
        return spec

    def _sort(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or not 0 < len(spec) <= MAX_SORT_KEYS:
            raise InvalidParameter("pipeline", f"{where}: takes 1 to {MAX_SORT_KEYS} fields")
        for key, direction in spec.items():
            _name(key, where)
            if isinstance(direction, bool) or direction not in (1, -1):
                raise InvalidParameter("pipeline", f"{where}: {key!r} takes 1 or -1")
        return spec

    def _limit(self, spec: Any, where: str) -> Any:
        if isinstance(spec, bool) or not isinstance(spec, int) or not 0 < spec <= MAX_INT:
            raise InvalidParameter("pipeline", f"{where}: takes a positive integer")
        return spec

    def _skip(self, spec: Any, where: str) -> Any:
        if isinstance(spec, bool) or not isinstance(spec, int) or not 0 <= spec <= MAX_INT:
            raise InvalidParameter("pipeline", f"{where}: takes a non-negative integer")
        return spec

    def _count(self, spec: Any, where: str) -> Any:
        return _name(spec, where, dotted=False)

    def _group(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, dict) or "_id" not in spec:
            raise InvalidParameter("pipeline", f"{where}: takes an object with _id")
        _expression(spec["_id"], where)
        for key, accumulator in spec.items():
            if key == "_id":
                continue
            _name(key, where, dotted=False)
            if not isinstance(accumulator, dict) or len(accumulator) != 1:
                raise InvalidParameter("pipeline", f"{where}: {key!r} takes one accumulator")
            ((op, operand),) = accumulator.items()
            if op not in ACCUMULATORS:
                raise InvalidParameter("pipeline", f"{where}: accumulator {op!r} is not allowed")
            if op == "$count" and operand != {}:
                raise InvalidParameter("pipeline", f"{where}: $count takes {{}}")
            _expression(operand, where)
        return spec

    def _unwind(self, spec: Any, where: str) -> Any:
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"].startswith("$"):
            raise InvalidParameter("pipeline", f'{where}: takes a path such as "$tags"')
        if set(spec) - {"path", "includeArrayIndex", "preserveNullAndEmptyArrays"}:
            raise InvalidParameter("pipeline", f"{where}: takes path, includeArrayIndex, preserveNullAndEmptyArrays")
        _reference(spec["path"], where)
        if "includeArrayIndex" in spec:
            _name(spec["includeArrayIndex"], where, dotted=False)
        if not isinstance(spec.get("preserveNullAndEmptyArrays", False), bool):
            raise InvalidParameter("pipeline", f"{where}: preserveNullAndEmptyArrays takes true or false")
        return spec

    def _lookup(self, spec: Any, where: str) -> Any:
        """A join on equal values into another served collection, which shows only what its caller may read."""
        keys = {"from", "localField", "foreignField", "as"}
        if not isinstance(spec, dict) or set(spec) != keys:
            raise InvalidParameter("pipeline", f"{where}: takes exactly from, localField, foreignField and as")
        if not isinstance(spec["from"], str):
            raise InvalidParameter("pipeline", f"{where}: from takes a collection name")
        target = self.lookup(spec["from"])
        if target.collection().database.name != self.resource.collection().database.name:
            raise InvalidParameter("pipeline", f"{where}: {spec['from']!r} is in another database")
        foreign = _name(spec["foreignField"], where)
        if foreign != "_id":
            try:
                path = resolve(target.doc_cls, foreign.replace(".", "__"))
            except UnknownField:
                path = None
            if path is None or path.attr_path[0] not in target.exposed:
                raise InvalidParameter("pipeline", f"{where}: {foreign!r} is not a field of {spec['from']!r}")
            foreign = path.db_path
        base = target.base_filter()
        inner = [*([{"$match": base}] if base else []), {"$project": _exposing(target)}]
        return {
            "from": target.collection_name,
            "localField": _name(spec["localField"], where),
            "foreignField": foreign,
            "pipeline": inner,
            "as": _name(spec["as"], where, dotted=False),
        }
