"""An audit event in words, for the activity feed: "created the assistant Helpdesk", not
`assistant.create 4`. The platform names no feature's code here, only the action strings
features record (an unknown action is still shown as words)."""

from __future__ import annotations

from typing import Any

from project.teams.models import AuditEvent

# action → sentence, formatted with the event's details and its target; a detail missing
# from an older event falls back to the sentence without it.
_SENTENCES: dict[str, tuple[str, str]] = {
    "team.created": ("created the team {target}", "created the team"),
    "member.role_changed": ("changed {target}'s role from {old} to {new}", "changed {target}'s role"),
    "member.removed": ("removed {target} from the team", "removed a member"),
    "invitation.created": ("invited {target} as {role}", "invited {target}"),
    "invitation.accepted": ("accepted the invitation sent to {target}", "accepted an invitation"),
    "invitation.revoked": ("revoked the invitation to {target}", "revoked an invitation"),
    "connection.created": ("added the connection {target}", "added a connection"),
    "connection.updated": ("changed the connection {target}", "changed a connection"),
    "connection.deleted": ("deleted the connection {target}", "deleted a connection"),
    "file.uploaded": ("uploaded the file {target}", "uploaded a file"),
    "file.deleted": ("deleted the file {target}", "deleted a file"),
    "file.synced": ("synced the file library", "synced the file library"),
    "assistant.create": ("created the assistant {name}", "created an assistant"),
    "assistant.version": ("saved version {version} of the assistant {name}", "saved a new version of an assistant"),
    "assistant.rollback": ("rolled the assistant {name} back to version {to}", "rolled an assistant back"),
    "assistant.archive": ("archived the assistant {name}", "archived an assistant"),
    "assistant.restore": ("restored the assistant {name}", "restored an assistant"),
    "thread.delete": ("deleted the thread “{title}”", "deleted a thread"),
    "thread.start_with_model": ("started a chat with {model}", "started a chat with a model"),
    "finetune.dataset_uploaded": ("uploaded the training set {target}", "uploaded a training set"),
    "finetune.job_created": ("started a fine-tuning job on {model}", "started a fine-tuning job"),
    "finetune.job_cancel": ("cancelled a fine-tuning job", "cancelled a fine-tuning job"),
    "finetune.job_pause": ("paused a fine-tuning job", "paused a fine-tuning job"),
    "finetune.job_resume": ("resumed a fine-tuning job", "resumed a fine-tuning job"),
    "finetune.jobs_imported": ("imported fine-tuning jobs from {target}", "imported fine-tuning jobs"),
    "batch.built": ("built the batch {target}", "built a batch"),
    "batch.submitted": ("submitted the batch {target}", "submitted a batch"),
    "batch.cancelled": ("cancelled the batch {target}", "cancelled a batch"),
    "batch.discarded": ("discarded the batch {target}", "discarded a batch"),
    "budget.saved": ("set the budget of {target}", "set a budget"),
    "budget.deleted": ("removed the budget of {target}", "removed a budget"),
}


def event_sentence(event: AuditEvent) -> str:
    """What happened, in words: the event's action as a sentence with its details filled in."""
    values = {k: v for k, v in (event.details or {}).items() if v not in (None, "")}
    if event.target:
        values["target"] = event.target
    if event.action == "thread.start_with_model" and values.get("compare_model"):
        return f"started comparing {values.get('model', 'a model')} with {values['compare_model']}"
    full, short = _SENTENCES.get(event.action, ("", ""))
    for sentence in (full, short):
        if not sentence:
            continue
        try:
            return sentence.format_map(values)
        except (KeyError, ValueError):  # a detail this (older) event lacks
            continue
    return event.action.replace("_", " ").replace(".", " ")


def activity_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """The activity feed's rows: when, who, and what in words."""
    return [{"created_at": event.created_at, "actor": event.actor, "what": event_sentence(event)} for event in events]


def _change(before: Any, after: Any) -> list[dict[str, Any]]:
    """What a change of settings changed: one row per field whose value differs."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    return [{"field": key, "before": before.get(key), "after": after.get(key)}
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


def audit_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """The audit log's rows: the activity row, plus the object, the address and, for
    settings, roles, connections and budgets, what changed."""
    rows = []
    for event, row in zip(events, activity_rows(events), strict=True):
        details = event.details or {}
        changes = _change(details.get("before"), details.get("after"))
        if event.action == "member.role_changed":
            changes = [{"field": "role", "before": details.get("old"), "after": details.get("new")}]
        rows.append({**row, "action": event.action, "target": event.target, "address": event.address,
                     "changes": changes})
    return rows
