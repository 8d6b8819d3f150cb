import os
import time
from typing import Any

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup(set_prefix=False)

from project.asgi_handler import BoundedASGIHandler  # noqa: E402 - after setup, as get_asgi_application does

# As django.core.asgi.get_asgi_application(), with uploads bounded (project.upload_limits) and
# the synchronous work of one process bounded (project.asgi_handler).
_django = BoundedASGIHandler(in_flight=settings.WEB_SYNC_REQUESTS)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # When the request reached Django: with DEBUG on, a timed view's Server-Timing header
    # has the time from here to the view as "before-view" (the body read, the wait for a
    # turn, the handler's thread, the middleware: session, user, team, CSRF), project.server_timing.
    scope["switchboard.received"] = time.perf_counter()
    await _django(scope, receive, send)
