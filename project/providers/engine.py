"""Which engine a connection's server speaks: Responses or only Chat Completions.

"Test connection" asks with a POST /v1/responses that names no model. A server with the
route refuses it as invalid (OpenAI and Azure: 400 "Missing required parameter: 'model'",
a FastAPI server: 422); one without it answers 404 (llama.cpp, vLLM) or 405. Nothing is
generated, so the question costs nothing, and the key needs no model access to answer it.
"""

from __future__ import annotations

import httpx2

from project.providers.client import ClientOptions, ProviderError, ProviderNotFound, provider_call
from project.providers.models import Engine, ProviderConnection

# A route that exists but refuses the body; anything else (405 method not allowed, 501) means no route.
_ROUTE_EXISTS_STATUSES = frozenset({400, 422})
_NO_ROUTE_STATUSES = frozenset({404, 405, 501})


def engine_detect(connection: ProviderConnection, options: ClientOptions | None = None) -> str | None:
    """Engine.RESPONSES or Engine.CHAT_COMPLETIONS, or None when the answer says nothing
    about the route (a rejected key, an unreachable server, a 5xx)."""
    try:
        provider_call(connection, lambda client: client.post("/responses", body={"input": "ping"},
                                                             cast_to=httpx2.Response), options)
    except ProviderNotFound:
        return Engine.CHAT_COMPLETIONS
    except ProviderError as error:
        if error.status_code in _ROUTE_EXISTS_STATUSES:
            return Engine.RESPONSES
        if error.status_code in _NO_ROUTE_STATUSES:
            return Engine.CHAT_COMPLETIONS
        return None
    return Engine.RESPONSES


def engine_remember(connection: ProviderConnection, speaks_responses: bool | None) -> None:
    """Remember what a capability probe found (True: Responses; False: only Chat
    Completions; None: it could not tell, and what was known stays)."""
    _remember(connection, None if speaks_responses is None
              else Engine.RESPONSES if speaks_responses else Engine.CHAT_COMPLETIONS)


def _remember(connection: ProviderConnection, detected: str | None) -> None:
    # An admin's own choice (connection.engine) still wins over what was detected.
    if detected is not None and detected != connection.engine_detected:
        connection.engine_detected = detected
        connection.save(update_fields=["engine_detected"])


def engine_sentence(connection: ProviderConnection) -> str:
    return f"Engine: {connection.engine_description}."
