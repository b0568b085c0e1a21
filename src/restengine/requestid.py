"""Request ids: taken from ``X-Request-ID`` (nginx sets one) or made here, echoed back.

The id is on ``flask.g.request_id`` for logs and is sent in the response,
where gunicorn's access log picks it up.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from flask import Response, g, request

from restengine.constants import REQUEST_ID_HEADER as HEADER

if TYPE_CHECKING:
    from flask import Flask

_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(incoming: str | None) -> str:
    """The client's (or nginx's) id when it looks like one, else a new one."""
    return incoming if incoming and _VALID.fullmatch(incoming) else os.urandom(16).hex()


def _assign() -> None:
    g.request_id = request_id(request.headers.get(HEADER))


def _echo(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    app.before_request(_assign)
    app.after_request(_echo)
