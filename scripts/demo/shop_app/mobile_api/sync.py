"""Sync endpoint polled by the iOS and Android apps: cart, orders and refund changes since a cursor."""

from dataclasses import dataclass
from datetime import datetime, timezone

MAX_CHANGES_PER_PAGE = 100


@dataclass
class SyncPage:
    changes: list[dict]
    next_cursor: str
    has_more: bool


def parse_cursor(cursor: str | None) -> datetime:
    if not cursor:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return datetime.fromisoformat(cursor)


def sync_changes(change_log, customer_id: str, cursor: str | None, app_version: str) -> SyncPage:
    """Changes to the customer's cart, orders and refunds after `cursor`, oldest first."""
    since = parse_cursor(cursor)
    changes = change_log.for_customer(customer_id, since=since, limit=MAX_CHANGES_PER_PAGE + 1)
    has_more = len(changes) > MAX_CHANGES_PER_PAGE
    page = changes[:MAX_CHANGES_PER_PAGE]
    if not supports_refund_changes(app_version):
        page = [change for change in page if change["entity"] != "refund"]
    next_cursor = page[-1]["changed_at"].isoformat() if page else since.isoformat()
    return SyncPage(
        changes=[{"entity": c["entity"], "id": c["id"], "payload": c["payload"]} for c in page],
        next_cursor=next_cursor,
        has_more=has_more,
    )


def supports_refund_changes(app_version: str) -> bool:
    """Refund entities were added to the sync protocol in app version 4.2."""
    major, minor, *_ = (int(part) for part in app_version.split("."))
    return (major, minor) >= (4, 2)
