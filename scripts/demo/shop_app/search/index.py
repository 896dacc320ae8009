"""Product search index: tokenising product names and descriptions into an inverted index."""

import re
import unicodedata
from collections import defaultdict

from catalog.products import Product

TOKEN_PATTERN = re.compile(r"[a-z0-9]+")
STOP_WORDS = {"a", "an", "and", "for", "the", "with", "of", "in"}


def normalise(text: str) -> str:
    """Lower-case and strip accents so 'Café' and 'cafe' index the same."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def tokenize(text: str) -> list[str]:
    return [token for token in TOKEN_PATTERN.findall(normalise(text)) if token not in STOP_WORDS]


class ProductSearchIndex:
    def __init__(self):
        self.postings: dict[str, set[str]] = defaultdict(set)
        self.vocabulary: set[str] = set()
        self.document_count = 0

    def add_product(self, product: Product) -> None:
        if not product.is_published:
            return
        text = " ".join([product.name, product.description, product.category, *product.tags])
        for token in tokenize(text):
            self.postings[token].add(product.sku)
            self.vocabulary.add(token)
        self.document_count += 1

    def rebuild(self, products: list[Product]) -> None:
        """Drop and re-index everything; run by the nightly catalogue import."""
        self.postings.clear()
        self.vocabulary.clear()
        self.document_count = 0
        for product in products:
            self.add_product(product)

    def lookup(self, token: str) -> set[str]:
        return self.postings.get(token, set())
