"""Shopping cart: line items, totals, discount codes and the hand-off to checkout."""

from dataclasses import dataclass, field
from decimal import Decimal

from catalog.products import ProductCatalog

FREE_SHIPPING_THRESHOLD = Decimal("50.00")
STANDARD_SHIPPING_FEE = Decimal("4.95")


@dataclass
class CartLine:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass
class Cart:
    customer_id: str
    lines: list[CartLine] = field(default_factory=list)
    discount_code: str | None = None
    discount_percent: int = 0

    def add_item(self, catalog: ProductCatalog, sku: str, quantity: int = 1) -> None:
        product = catalog.get(sku)
        if product is None or not product.in_stock:
            raise ValueError(f"product {sku} is not available")
        for line in self.lines:
            if line.sku == sku:
                line.quantity += quantity
                return
        self.lines.append(CartLine(sku=sku, quantity=quantity, unit_price=product.price))

    def remove_item(self, sku: str) -> None:
        self.lines = [line for line in self.lines if line.sku != sku]

    def apply_discount_code(self, code: str, percent: int) -> None:
        self.discount_code, self.discount_percent = code, percent

    @property
    def items_total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines), Decimal("0"))

    @property
    def shipping_fee(self) -> Decimal:
        return Decimal("0") if self.items_total >= FREE_SHIPPING_THRESHOLD else STANDARD_SHIPPING_FEE

    @property
    def grand_total(self) -> Decimal:
        discount = self.items_total * Decimal(self.discount_percent) / 100
        return (self.items_total - discount + self.shipping_fee).quantize(Decimal("0.01"))

    def is_empty(self) -> bool:
        return not self.lines
