"""moto's S3 server, with its conditional writes atomic as S3's are: ``python tests/s3_server.py PORT``.

S3 checks a PUT's ``If-Match``/``If-None-Match`` and writes in one step (a second conditional write
of the key in flight gets a 409). moto's threaded server checks, then writes: two batches committing
a leaf's manifest at once could both pass the check, and the lake's optimistic commit
(``lake.versioned``) would lose one, on the test server only. Conditional PUTs are taken one at a
time here; everything else is moto's own server, spoken to over HTTP.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

CONDITIONS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")


def atomic_conditional_writes(app: Callable) -> Callable:
    """``app`` with its conditional PUTs serialised."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT" and any(name in environ for name in CONDITIONS):
            with lock:
                # The whole answer inside the lock: moto writes the object while the body is made.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serve


if __name__ == "__main__":
    os.environ.setdefault("MOTO_PORT", sys.argv[1])  # as moto's own server sets it
    run_simple(
        "127.0.0.1",
        int(sys.argv[1]),
        atomic_conditional_writes(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
