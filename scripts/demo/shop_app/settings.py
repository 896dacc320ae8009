"""Shop configuration, read once from the environment at start-up."""

import os
from dataclasses import dataclass


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Settings:
    base_url: str
    payment_gateway_url: str
    payment_gateway_timeout_seconds: int
    three_ds_max_attempts: int
    smtp_relay_host: str
    email_sender_address: str
    password_reset_token_ttl_minutes: int
    session_idle_timeout_minutes: int
    search_max_typo_distance: int
    refund_batch_size: int


def load_settings() -> Settings:
    """Settings from SHOP_* environment variables, with production defaults."""
    return Settings(
        base_url=os.environ.get("SHOP_BASE_URL", "https://shop.example.com"),
        payment_gateway_url=os.environ.get("SHOP_PAYMENT_GATEWAY_URL", "https://gateway.example.com/v2"),
        payment_gateway_timeout_seconds=_env_int("SHOP_PAYMENT_GATEWAY_TIMEOUT", 20),
        three_ds_max_attempts=_env_int("SHOP_THREE_DS_MAX_ATTEMPTS", 3),
        smtp_relay_host=os.environ.get("SHOP_SMTP_RELAY_HOST", "smtp-relay.internal"),
        email_sender_address=os.environ.get("SHOP_EMAIL_SENDER", "no-reply@shop.example.com"),
        password_reset_token_ttl_minutes=_env_int("SHOP_PASSWORD_RESET_TTL_MINUTES", 15),
        session_idle_timeout_minutes=_env_int("SHOP_SESSION_IDLE_TIMEOUT_MINUTES", 30),
        search_max_typo_distance=_env_int("SHOP_SEARCH_MAX_TYPO_DISTANCE", 1),
        refund_batch_size=_env_int("SHOP_REFUND_BATCH_SIZE", 200),
    )
