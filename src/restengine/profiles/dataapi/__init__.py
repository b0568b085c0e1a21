"""The MongoDB Atlas Data API (v1) over the served resources: ``POST <base>/action/<action>``.

Clients written for the Data API (switched off by MongoDB in September 2025) keep working: the same actions,
request members and response bodies, over RestEngine's resources, through the same access policy, validation,
hidden and read-only fields, hooks, cache invalidation and query budgets as the native API. Nothing a client
sends reaches MongoDB unparsed: filters go through :mod:`restengine.api.jsonquery`'s whitelist, updates are
applied to the document as the API shows it and saved through :mod:`restengine.api.writes` (as a PATCH or PUT
is), inserts and deletes through the functions of POST and DELETE, and ``aggregate`` runs a pipeline checked
stage by stage behind a ``$match`` of the caller's scope and a ``$project`` of the fields it may see.

What the Data API documented, and this package follows: its OpenAPI reference
(mongodb.com/docs/api/doc/atlas-data-api-v1, one page per action) for the members of each request, the
response bodies, status 200 for every action and the error body (:mod:`.shape`); its "Data Formats" page for
JSON and EJSON (:mod:`.bodies`). Where they are silent, the module doing it says what RestEngine decides:
the default response format (JSON), ``dataSource`` (any non-empty name), ``database`` (the served one),
field names (the API's: attribute names, ``_id`` for the key), unknown members (refused), ``find`` without
``limit`` (refused past one page of the resource), and the ``error_code`` of undocumented errors.

:mod:`.actions` holds the views, :mod:`.bodies` the formats, :mod:`.updates` the update operators,
:mod:`.pipeline` the aggregation whitelist, :mod:`.openapi` the path items, :mod:`.shape` the error body.
"""

from restengine.profiles.dataapi.actions import ACTIONS, READS, DataApi

__all__ = ["ACTIONS", "READS", "DataApi"]
