"""Card payment authorisation through the payment gateway, declines and 3-D Secure retries."""

import logging
from dataclasses import dataclass
from decimal import Decimal

from checkout.gateway_client import GatewayClient, GatewayTimeout

logger = logging.getLogger(__name__)

# Gateway decline codes shown to the shopper as a friendly message.
DECLINE_MESSAGES = {
    "insufficient_funds": "Your card was declined: insufficient funds.",
    "card_expired": "Your card has expired. Please use another card.",
    "do_not_honor": "Your bank declined the payment. Please contact your bank.",
    "authentication_failed": "Card verification (3-D Secure) failed. Please try again.",
}
GENERIC_DECLINE_MESSAGE = "Your payment could not be processed. Please try another card."


@dataclass
class PaymentResult:
    status: str  # authorised | declined | challenge_required | error
    authorisation_id: str | None = None
    decline_code: str | None = None
    three_ds_redirect_url: str | None = None

    @property
    def shopper_message(self) -> str | None:
        if self.status != "declined":
            return None
        return DECLINE_MESSAGES.get(self.decline_code or "", GENERIC_DECLINE_MESSAGE)


class CardPaymentService:
    def __init__(self, gateway: GatewayClient, return_url: str, max_three_ds_attempts: int = 3):
        self.gateway = gateway
        self.return_url = return_url
        self.max_three_ds_attempts = max_three_ds_attempts

    def authorise_card_payment(self, order_id: str, card_token: str, amount: Decimal, currency: str) -> PaymentResult:
        """Ask the gateway to authorise `amount`; may answer with a 3-D Secure challenge."""
        try:
            response = self.gateway.authorise(
                reference=order_id,
                card_token=card_token,
                amount=str(amount),
                currency=currency,
                three_ds_return_url=f"{self.return_url}/checkout/3ds/return?order={order_id}",
            )
        except GatewayTimeout:
            logger.warning("payment gateway timeout for order %s", order_id)
            return PaymentResult(status="error")
        if response["result"] == "challenge_required":
            return PaymentResult(status="challenge_required", three_ds_redirect_url=response["redirect_url"])
        if response["result"] == "declined":
            logger.info("card declined for order %s: %s", order_id, response.get("decline_code"))
            return PaymentResult(status="declined", decline_code=response.get("decline_code"))
        return PaymentResult(status="authorised", authorisation_id=response["authorisation_id"])

    def handle_three_ds_return(
        self, order_id: str, card_token: str, amount: Decimal, currency: str, challenge_result: str, attempt: int
    ) -> PaymentResult:
        """The shopper is back from the bank's 3-D Secure page: retry the authorisation once verified."""
        if challenge_result == "failed":
            return PaymentResult(status="declined", decline_code="authentication_failed")
        if attempt >= self.max_three_ds_attempts:
            return PaymentResult(status="declined", decline_code="authentication_failed")
        # The retried authorisation can ask for another challenge; the checkout page then
        # redirects the shopper to the bank again with attempt + 1.
        return self.authorise_card_payment(order_id, card_token, amount, currency)
