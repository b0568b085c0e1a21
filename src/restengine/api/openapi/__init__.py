"""The OpenAPI 3.1 document of an :class:`~restengine.api.Api`, generated from its registrations.

Nothing here is declared beside the code it describes: schemas come from the
MongoEngine fields through the field-type table (:mod:`restengine.api.fields`:
what the codec reads and parses), query parameters from the same checks the
views run (``filters.filter_parameter``, ``pagination.parse_sort``,
``reads.parse_expand``), and each operation lists every status its view can
answer with.

- :mod:`.serve`: :class:`OpenApi`, serving the document with an ETag, finding the mounts;
- :mod:`.document`: :func:`build_document` and :class:`Mount`, the service paths;
- :mod:`.schemas`: named schemas: fields, embedded documents, items and bodies;
- :mod:`.paths`: a resource's operations; :mod:`.parameters`: their query parameters;
- :mod:`.components`: the fixed schemas, parameters, headers and responses.
"""

from restengine.api.fields import ecma_pattern, nullable
from restengine.api.openapi.document import Mount, build_document
from restengine.api.openapi.serve import OpenApi

__all__ = ["Mount", "OpenApi", "build_document", "ecma_pattern", "nullable"]
