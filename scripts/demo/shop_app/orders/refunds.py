"""Refund requests, submission to the payment gateway and refund status updates."""

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from checkout.gateway_client import GatewayClient, GatewayError
from notifications.email import queue_email

logger = logging.getLogger(__name__)

REFUND_STATUSES = ("pending", "submitted", "completed", "rejected")


@dataclass
class RefundRequest:
    refund_request_id: str
    order_number: str
    authorisation_id: str
    amount: Decimal
    reason: str
    status: str = "pending"
    gateway_refund_id: str | None = None
    requested_at: datetime | None = None


def request_refund(refunds, order, amount: Decimal, reason: str) -> RefundRequest:
    """Record a customer's refund request; it stays pending until the nightly job submits it."""
    if amount <= 0 or amount > order.amount_paid:
        raise ValueError("refund amount must be between 0 and the amount paid")
    refund = RefundRequest(
        refund_request_id=refunds.next_id(),
        order_number=order.order_number,
        authorisation_id=order.authorisation_id,
        amount=amount,
        reason=reason,
        requested_at=datetime.now(timezone.utc),
    )
    refunds.save(refund)
    return refund


def process_pending_refunds(refunds, gateway: GatewayClient, batch_size: int = 200) -> int:
    """Nightly job: submit pending refund requests to the gateway, oldest first."""
    submitted = 0
    for refund in refunds.with_status("pending", limit=batch_size):
        try:
            answer = gateway.refund(refund.authorisation_id, str(refund.amount), refund.refund_request_id)
        except GatewayError as error:
            logger.error("refund %s failed: %s", refund.refund_request_id, error)
            continue
        if answer["status"] == "received":
            refund.status, refund.gateway_refund_id = "submitted", answer["refund_id"]
            refunds.save(refund)
            submitted += 1
    return submitted


def update_refund_status(refunds, gateway: GatewayClient, customer_email_for) -> None:
    """Poll the gateway for submitted refunds and tell the customer when one completes."""
    for refund in refunds.with_status("submitted"):
        status = gateway.refund_status(refund.gateway_refund_id)["status"]
        if status in ("completed", "rejected") and status != refund.status:
            refund.status = status
            refunds.save(refund)
            queue_email(
                customer_email_for(refund.order_number),
                "refund_update",
                {"order_number": refund.order_number, "refund_status": status},
            )
