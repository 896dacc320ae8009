"""Shipments: carrier tracking numbers and delivery estimates."""

from dataclasses import dataclass
from datetime import date, timedelta

CARRIER_TRACKING_URLS = {
    "dhl": "https://www.dhl.example/track?number={tracking_number}",
    "ups": "https://www.ups.example/track?tracknum={tracking_number}",
    "royal_mail": "https://www.royalmail.example/track/{tracking_number}",
}
TRANSIT_DAYS = {"standard": 4, "express": 1, "international": 9}


@dataclass
class Shipment:
    order_number: str
    carrier: str
    service_level: str
    tracking_number: str | None = None
    shipped_on: date | None = None
    delivered_on: date | None = None

    @property
    def tracking_url(self) -> str | None:
        template = CARRIER_TRACKING_URLS.get(self.carrier)
        if template is None or self.tracking_number is None:
            return None
        return template.format(tracking_number=self.tracking_number)


def add_business_days(start: date, days: int) -> date:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def estimate_delivery_date(shipment: Shipment, ordered_on: date) -> date:
    """Expected delivery: shipped date (or next business day) plus the service's transit days."""
    dispatched = shipment.shipped_on or add_business_days(ordered_on, 1)
    return add_business_days(dispatched, TRANSIT_DAYS.get(shipment.service_level, TRANSIT_DAYS["standard"]))


def record_tracking_number(shipments, order_number: str, carrier: str, tracking_number: str, shipped_on: date) -> None:
    shipment = shipments.get(order_number)
    shipment.carrier, shipment.tracking_number, shipment.shipped_on = carrier, tracking_number, shipped_on
    shipments.save(shipment)
