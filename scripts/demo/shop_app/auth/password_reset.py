"""Password reset: reset tokens, the reset email with its link, and token expiry."""

import hashlib
import secrets
import time
from dataclasses import dataclass

from notifications.email import EmailPriority, queue_email


@dataclass
class ResetToken:
    customer_id: str
    token_hash: str
    expires_at: float
    used: bool = False


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResetService:
    def __init__(self, customers, tokens, base_url: str, token_ttl_minutes: int = 15):
        self.customers = customers
        self.tokens = tokens
        self.base_url = base_url
        self.token_ttl_seconds = token_ttl_minutes * 60

    def request_password_reset(self, email: str) -> None:
        """Create a reset token and send the reset link; silent for unknown addresses."""
        customer = self.customers.find_by_email(email.strip().lower())
        if customer is None:
            return
        token = secrets.token_urlsafe(32)
        self.tokens.save(
            ResetToken(
                customer_id=customer.customer_id,
                token_hash=_hash_token(token),
                expires_at=time.time() + self.token_ttl_seconds,
            )
        )
        reset_link = f"{self.base_url}/account/reset-password?token={token}"
        queue_email(
            to_address=customer.email,
            template="password_reset",
            context={"first_name": customer.first_name, "reset_link": reset_link},
            priority=EmailPriority.BULK,
        )

    def check_reset_token(self, token: str) -> str:
        """`valid`, `expired`, `used` or `unknown` for the token in a reset link."""
        record = self.tokens.find_by_hash(_hash_token(token))
        if record is None:
            return "unknown"
        if record.used:
            return "used"
        if time.time() > record.expires_at:
            return "expired"
        return "valid"

    def reset_password(self, token: str, new_password: str) -> bool:
        if self.check_reset_token(token) != "valid":
            return False
        record = self.tokens.find_by_hash(_hash_token(token))
        self.customers.set_password(record.customer_id, new_password)
        self.tokens.mark_used(record.token_hash)
        return True
