"""The address of the request being served, for the audit trail: set by
CurrentTeamMiddleware, read by audit_record, so no service has to pass it along."""

from __future__ import annotations

from contextvars import ContextVar

request_address: ContextVar[str | None] = ContextVar("request_address", default=None)
