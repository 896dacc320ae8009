"""Product records, prices and stock levels."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class Product:
    sku: str
    name: str
    description: str
    category: str
    price: Decimal
    stock_quantity: int
    tags: list[str] = field(default_factory=list)
    is_published: bool = True

    @property
    def in_stock(self) -> bool:
        return self.stock_quantity > 0


class ProductCatalog:
    """In-memory view of the published catalogue, refreshed from the database."""

    def __init__(self, products: list[Product]):
        self._by_sku = {product.sku: product for product in products}

    def get(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def published(self) -> list[Product]:
        return [product for product in self._by_sku.values() if product.is_published]

    def reserve_stock(self, sku: str, quantity: int) -> bool:
        """Take `quantity` units out of stock; False when there are not enough."""
        product = self._by_sku.get(sku)
        if product is None or product.stock_quantity < quantity:
            return False
        product.stock_quantity -= quantity
        return True

    def release_stock(self, sku: str, quantity: int) -> None:
        """Put reserved units back, e.g. when a payment is declined or an order refunded."""
        product = self._by_sku.get(sku)
        if product is not None:
            product.stock_quantity += quantity
