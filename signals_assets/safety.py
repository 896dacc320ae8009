"""First-line safety filter for signal text (offline rules).

Blocks only the five manipulation kinds of DESIGN §9 and always quotes the offending fragment.
Talking *about* security, errors or code is fine; trying to instruct the model or the agent is not.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

INSTRUCTION_OVERRIDE = "instruction_override"
HIDDEN_INSTRUCTIONS = "hidden_instructions"
ENCODED_PAYLOAD = "encoded_payload"
SECRET_EXFILTRATION = "secret_exfiltration"
REMOTE_CODE_EXECUTION = "remote_code_execution"

_I = re.IGNORECASE
_RULES: list[tuple[str, re.Pattern]] = [
    (
        INSTRUCTION_OVERRIDE,
        re.compile(
            r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your|system)\b"
            r"[^.\n]{0,20}\b(instructions?|prompts?|rules|guidelines)\b"
            r"|\byou are now\b[^.\n]{0,60}\b(assistant|ai|model|agent|dan)\b"
            r"|\bnew (system )?instructions?\s*:",
            _I,
        ),
    ),
    (
        HIDDEN_INSTRUCTIONS,
        re.compile(
            r"[\u200b-\u200f\u2060-\u2064\ufeff\u202a-\u202e]"
            r"|<!--[^>]{0,300}\b(assistant|ai|agent|model|instruction|prompt)\b[^>]{0,300}-->",
            _I,
        ),
    ),
    (
        SECRET_EXFILTRATION,
        re.compile(
            r"\b(send|post|upload|email|exfiltrate|leak|print|reveal|include)\b[^.\n]{0,60}"
            r"\b(api[_ ]?keys?|secrets?|passwords?|credentials|tokens?|env(ironment)? variables|private keys?|\.env)\b"
            r"[^.\n]{0,60}\b(to|at|into)\b[^.\n]{0,20}(https?://|\S+@\S+\.\w+|webhook|pastebin|my server)",
            _I,
        ),
    ),
    (
        REMOTE_CODE_EXECUTION,
        re.compile(
            r"\b(curl|wget)\b[^|\n]{0,200}\|\s*(sudo\s+)?(ba|z)?sh\b"
            r"|\b(run|execute)\b[^.\n]{0,30}\b(this|the following)\b[^.\n]{0,20}\b(command|script|code)\b[^.\n]{0,10}:"
            r"|\brm\s+-rf\s+/(\s|$)"
            r"|\bpowershell\b[^\n]{0,40}-enc(odedcommand)?\b",
            _I,
        ),
    ),
]
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_HEX_BLOB = re.compile(r"\b(?:[0-9a-fA-F]{2}){24,}\b")


@dataclass(frozen=True)
class SafetyVerdict:
    safe: bool
    kind: str = ""
    quote: str = ""

    @property
    def reason(self) -> str:
        return "" if self.safe else f"{self.kind}: {self.quote!r}"


def _quote(text: str, match: re.Match, width: int = 120) -> str:
    return text[match.start() : match.end()][:width] or repr(match.group(0))


def _decoded_payloads(text: str):
    for match in _BASE64_BLOB.finditer(text):
        try:
            yield match, base64.b64decode(match.group(0) + "=" * (-len(match.group(0)) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    for match in _HEX_BLOB.finditer(text):
        try:
            yield match, bytes.fromhex(match.group(0)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue


def check_signal_text(text: str) -> SafetyVerdict:
    for kind, pattern in _RULES:
        match = pattern.search(text)
        if match:
            return SafetyVerdict(False, kind, _quote(text, match))
    for match, decoded in _decoded_payloads(text):
        if not check_signal_text(decoded).safe:
            return SafetyVerdict(False, ENCODED_PAYLOAD, _quote(text, match, 80))
    return SafetyVerdict(True)
