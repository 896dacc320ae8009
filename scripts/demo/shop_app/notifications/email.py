"""Transactional email: templates, the send queue and delivery through the SMTP relay."""

import enum
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

logger = logging.getLogger(__name__)

TEMPLATES = {
    "order_confirmation": "Your order {order_number} is confirmed",
    "password_reset": "Reset your password",
    "refund_update": "Update on your refund for order {order_number}",
    "shipping_update": "Your order {order_number} is on its way",
}


class EmailPriority(enum.IntEnum):
    TRANSACTIONAL = 0  # sent within seconds
    BULK = 1  # sent by the hourly batch with marketing mail


@dataclass
class QueuedEmail:
    to_address: str
    template: str
    context: dict
    priority: EmailPriority


_queue: list[QueuedEmail] = []


def queue_email(
    to_address: str, template: str, context: dict, priority: EmailPriority = EmailPriority.TRANSACTIONAL
) -> None:
    if template not in TEMPLATES:
        raise KeyError(f"unknown email template {template!r}")
    _queue.append(QueuedEmail(to_address, template, context, priority))


def send_queued_emails(relay_host: str, sender_address: str, priority: EmailPriority) -> int:
    """Deliver every queued email of `priority`; bounces and relay errors are logged and dropped."""
    due = [email for email in _queue if email.priority == priority]
    sent = 0
    with smtplib.SMTP(relay_host) as relay:
        for email in due:
            message = EmailMessage()
            message["From"] = sender_address
            message["To"] = email.to_address
            message["Subject"] = TEMPLATES[email.template].format(**email.context)
            message.set_content(render_body(email.template, email.context))
            try:
                relay.send_message(message)
                sent += 1
            except smtplib.SMTPRecipientsRefused:
                logger.warning("email to %s refused by relay", email.to_address)
            _queue.remove(email)
    return sent


def render_body(template: str, context: dict) -> str:
    lines = [f"Hello {context.get('first_name', 'there')},", ""]
    if template == "password_reset":
        lines += ["Use this link to choose a new password:", context["reset_link"]]
    elif template == "refund_update":
        lines += [f"Your refund is now {context['refund_status']}."]
    return "\n".join(lines)
