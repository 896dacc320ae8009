"""Password login, two-factor (2FA) codes and session expiry."""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

TWO_FACTOR_CODE_TTL_SECONDS = 300
MAX_FAILED_LOGINS = 5


@dataclass
class Session:
    session_id: str
    customer_id: str
    created_at: float
    last_seen_at: float


def verify_password(password: str, salt: bytes, stored_hash: bytes) -> bool:
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 310_000)
    return hmac.compare_digest(candidate, stored_hash)


class LoginService:
    def __init__(self, customers, two_factor_sender, session_idle_timeout_minutes: int = 30):
        self.customers = customers
        self.two_factor_sender = two_factor_sender
        self.session_idle_timeout_seconds = session_idle_timeout_minutes * 60
        self._pending_codes: dict[str, tuple[str, float]] = {}

    def login_with_password(self, email: str, password: str) -> str:
        """Check the password; answers `ok`, `two_factor_required`, `locked` or `invalid`."""
        customer = self.customers.find_by_email(email.strip().lower())
        if customer is None:
            return "invalid"
        if customer.failed_login_count >= MAX_FAILED_LOGINS:
            return "locked"
        if not verify_password(password, customer.password_salt, customer.password_hash):
            self.customers.increment_failed_logins(customer.customer_id)
            return "invalid"
        if customer.two_factor_enabled:
            code = f"{secrets.randbelow(1_000_000):06d}"
            self._pending_codes[customer.customer_id] = (code, time.time() + TWO_FACTOR_CODE_TTL_SECONDS)
            self.two_factor_sender.send_code(customer.phone_number, code)
            return "two_factor_required"
        return "ok"

    def verify_two_factor_code(self, customer_id: str, code: str) -> bool:
        expected, expires_at = self._pending_codes.get(customer_id, ("", 0.0))
        if time.time() > expires_at or not hmac.compare_digest(expected, code):
            return False
        del self._pending_codes[customer_id]
        return True

    def start_session(self, customer_id: str) -> Session:
        now = time.time()
        return Session(session_id=secrets.token_urlsafe(32), customer_id=customer_id, created_at=now, last_seen_at=now)

    def is_session_expired(self, session: Session) -> bool:
        return time.time() - session.last_seen_at > self.session_idle_timeout_seconds
