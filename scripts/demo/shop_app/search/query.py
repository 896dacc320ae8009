"""Product search queries: parsing, typo tolerance (fuzzy matching) and empty-result handling."""

from search.index import ProductSearchIndex, tokenize

MIN_TOKEN_LENGTH_FOR_TYPOS = 5


def edit_distance(left: str, right: str) -> int:
    """Levenshtein distance between two tokens."""
    previous = list(range(len(right) + 1))
    for i, left_char in enumerate(left, start=1):
        current = [i]
        for j, right_char in enumerate(right, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left_char != right_char)))
        previous = current
    return previous[-1]


def typo_candidates(index: ProductSearchIndex, token: str, max_typo_distance: int) -> set[str]:
    """Vocabulary words within `max_typo_distance` edits of a (possibly misspelled) token."""
    if len(token) < MIN_TOKEN_LENGTH_FOR_TYPOS or max_typo_distance == 0:
        return set()
    return {
        word for word in index.vocabulary if word[0] == token[0] and edit_distance(word, token) <= max_typo_distance
    }


def search_products(index: ProductSearchIndex, query: str, max_typo_distance: int = 1) -> list[str]:
    """SKUs matching every word of the query; misspelled words fall back to close vocabulary words."""
    tokens = tokenize(query)
    if not tokens:
        return []
    matches: set[str] | None = None
    for token in tokens:
        skus = set(index.lookup(token))
        if not skus:
            for candidate in typo_candidates(index, token, max_typo_distance):
                skus |= index.lookup(candidate)
        matches = skus if matches is None else matches & skus
        if not matches:
            return []  # the results page shows "No products found"
    return sorted(matches)


def did_you_mean(index: ProductSearchIndex, query: str, max_typo_distance: int = 2) -> str | None:
    """Spelling suggestion for the empty-results page, or None."""
    corrected = []
    for token in tokenize(query):
        if token in index.vocabulary:
            corrected.append(token)
            continue
        candidates = sorted(typo_candidates(index, token, max_typo_distance), key=lambda w: edit_distance(w, token))
        if not candidates:
            return None
        corrected.append(candidates[0])
    return " ".join(corrected) or None
