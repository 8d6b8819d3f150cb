"""Settings for the benchmark's uvicorn process: the project's, with persistent
database connections off. Under ASGI each request's sync work runs in a thread of
its own, so a connection kept for reuse is never reused; it only holds one of
PostgreSQL's slots until garbage collection (Django's docs advise CONN_MAX_AGE=0
under ASGI). Production should run the web process the same way."""

from project.settings import *  # noqa: F403

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
