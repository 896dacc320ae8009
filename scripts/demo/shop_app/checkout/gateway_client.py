"""Thin HTTP client for the payment gateway: authorise, capture and refund card payments."""

import json
import urllib.error
import urllib.request


class GatewayTimeout(Exception):
    """The gateway did not answer within the configured timeout."""


class GatewayError(Exception):
    """The gateway answered with an HTTP error."""

    def __init__(self, status: int, body: str):
        super().__init__(f"gateway returned HTTP {status}: {body[:200]}")
        self.status = status


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, timeout_seconds: int = 20):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds

    def _post(self, path: str, payload: dict) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise GatewayError(error.code, error.read().decode(errors="replace")) from error
        except TimeoutError as error:
            raise GatewayTimeout(path) from error

    def authorise(self, reference: str, card_token: str, amount: str, currency: str, three_ds_return_url: str) -> dict:
        return self._post(
            "/payments/authorise",
            {
                "reference": reference,
                "card_token": card_token,
                "amount": amount,
                "currency": currency,
                "three_ds": {"return_url": three_ds_return_url},
            },
        )

    def capture(self, authorisation_id: str, amount: str) -> dict:
        return self._post(f"/payments/{authorisation_id}/capture", {"amount": amount})

    def refund(self, authorisation_id: str, amount: str, reference: str) -> dict:
        """Returns {"refund_id": ..., "status": "received" | "rejected"}."""
        return self._post(f"/payments/{authorisation_id}/refunds", {"amount": amount, "reference": reference})

    def refund_status(self, refund_id: str) -> dict:
        return self._post(f"/refunds/{refund_id}/status", {})
