"""Safety rules for untrusted signal text: the offline filter.

Blocks only the five manipulation kinds and always quotes the offending fragment. Talking *about*
security, errors, secrets or code is fine; instructing the model or the research agent is not.
The rules therefore look for what an attack needs rather than for topics:

- an instruction aimed at the model: an imperative (sentence start, "please", "you must", a
  vocative "AI agent:") or a phrase only an injection uses ("ignore your previous instructions");
- a dangerous command (download-and-run, reverse shell, destructive, encoded PowerShell) *given as
  a directive* — a user who writes "I ran curl … | sh and it failed" is reporting, not attacking;
- a secret (key names, env files, key formats) paired with a destination or an output channel;
- text that is concealed (HTML comments, hidden styles, Unicode tag characters, zero-width runs)
  or encoded (base64, hex, \\x / \\u escapes, percent-encoding, HTML entities; nested) and carries
  any of the above.

The text is normalised first (format characters removed, NFKC, common homoglyphs mapped; then
spaced-out letters and leetspeak read as words), and every match is mapped back so the quote is a
verbatim fragment of the original text.

Pure standard library: it runs inside `buffered_signals` and the report summary.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator

INSTRUCTION_OVERRIDE = "instruction_override"
HIDDEN_INSTRUCTIONS = "hidden_instructions"
ENCODED_PAYLOAD = "encoded_payload"
SECRET_EXFILTRATION = "secret_exfiltration"
REMOTE_CODE_EXECUTION = "remote_code_execution"
KINDS = (INSTRUCTION_OVERRIDE, HIDDEN_INSTRUCTIONS, ENCODED_PAYLOAD, SECRET_EXFILTRATION, REMOTE_CODE_EXECUTION)
# Not a sixth kind of manipulation: an LLM judge that gave no valid verdict, which fails closed.
UNVERIFIED = "unverified"

QUOTE_CHARS = 160
MAX_DECODE_DEPTH = 2


@dataclass(frozen=True)
class SafetyVerdict:
    safe: bool
    kind: str = ""
    quote: str = ""  # verbatim fragment of the checked text (may hold invisible characters)
    revealed: str = ""  # what a concealed or encoded fragment says, when the quote does not show it
    signal_index: int | None = None  # for report-level verdicts: which signal

    @property
    def display_quote(self) -> str:
        """The quote with invisible characters escaped, plus what it reveals: safe to print and store."""
        shown = _cut(_escape_invisible(self.quote), QUOTE_CHARS)
        if self.revealed:
            shown = f"{shown} → {self.revealed!r}" if shown else self.revealed
        return shown

    @property
    def reason(self) -> str:
        return "" if self.safe else f"{self.kind}: {self.display_quote}"


SAFE = SafetyVerdict(True)

# ---- vocabulary --------------------------------------------------------------------------------

_ADDRESSEE = (
    r"(?:a\.?i\.?|llm|gpt|copilot|chat ?bot|bot|assistant|language model|(?:ai |llm |language |large language )?model"
    r"|(?:ai |llm |automated |triage )?(?:agent|reviewer|summari[sz]er|classifier|triage (?:bot|system|agent))"
    r"|safety (?:filter|judge|check|classifier|reviewer))s?"
)
# A sentence start, a vocative ("AI agent:"), or a word that makes the next verb an order.
# Within one sentence: a dot inside a URL, file name or version number does not end it.
_SAME = r"(?:[^.\n]|\.(?=\S))"
_LEAD_PUNCTUATION = r"(?:^|[.!?:;,\n])\s*"
_LEAD_WORD = (
    r"\b(?:please|pls|kindly|then|and|now|also|just|first|next|finally|immediately|simply|instead"
    r"|must|should|to (?:fix|reproduce|resolve|debug|test|verify|check|repair|solve|confirm)"
    r"(?: (?:it|this|that|the (?:issue|bug|problem)))?|you (?:must|should|need to|have to|will|can|shall))[:,]?\s+"
)
_LEAD = f"(?:{_LEAD_PUNCTUATION}|{_LEAD_WORD})"
_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|abandon|discard|cancel|suspend|set aside|throw out"
    r"|stop following|stop obeying|do not follow|don'?t follow|do not obey|no longer follow)"
)
_RULE_NOUN = (
    r"(?:instructions?|prompts?|rules|guidelines|guidance|directives?|directions|constraints|guardrails|polic(?:y|ies)"
    r"|programming|restrictions|system message|configuration)"
)
_RULE_OWNER = r"(?:all|any|every|the|your|its|previous|prior|above|earlier|preceding|original|initial|system|safety)"
_SECRET = (
    r"(?:api[ _-]?keys?|(?:aws |gcp |azure |cloud )?access keys?|secret(?: keys?| tokens?)?|secrets|passwords?|passwd|credentials?|(?:access|auth|bearer|session"
    r"|github|gitlab|slack|api|oauth|refresh|deploy|npm|pypi) tokens?|tokens|private keys?|ssh keys?|signing keys?"
    r"|\.env(?: files?)?|\S*secrets?\.(?:ya?ml|json|toml|env|txt)\b|\S*credentials\.(?:json|ya?ml|csv)\b|\S+\.(?:pem|p12|pfx)\b|env(?:ironment)?(?: variables?| vars?)|connection strings?|session cookies|cookies"
    r"|[A-Z][A-Z0-9]*_(?:API_KEY|SECRET[A-Z_]*|TOKEN|PASSWORD|ACCESS_KEY[A-Z_]*)\b|~/\.(?:ssh|aws|kube|docker)/\S*"
    r"|id_(?:rsa|ed25519|ecdsa)|/etc/(?:passwd|shadow)|\.npmrc|\.netrc|\.pgpass|kubeconfig"
    r"|sk-[A-Za-z0-9_-]{6,}|AKIA[0-9A-Z]{12,}|gh[pousr]_[A-Za-z0-9]*|xox[abposr]-[A-Za-z0-9-]*|sk_live_[A-Za-z0-9]*)"
)
_SEND_VERB = (
    r"(?:send|post|upload|e-?mail|forward|exfiltrate|leak|transmit|copy|paste|put|include|append|add|embed|attach"
    r"|insert|print|output|echo|cat|dump|reveal|list|display|return|write|share|dm|reply with|respond with|tell me"
    r"|give me|show me|read out|expose)"
)
_DESTINATION = (
    r"(?:https?://\S+|[\w.+-]+@[\w-]+\.[\w.-]+|\bwebhooks?\b|\bpastebin\b|\bgists?\b|\bmy (?:server|endpoint|site|inbox)\b"
    r"|\bthis (?:endpoint|url|address|server)\b|\bdiscord\b|\btelegram\b|\b(?:your|the|a|this) (?:summary|title|reply"
    r"|response|answer|output|report|findings?|comments?|commit(?: message)?|pull request|pr|issue|ticket)\b)"
)
_ACQUIRE_VERB = r"(?:read|open|grep|find|collect|gather|extract|fetch|look up|get)"
_RUN_VERB = (
    r"(?:run|execute|exec|paste|type|invoke|launch|call|eval(?:uate)?|try|use|enter|install|download|source|pipe|do"
    r"|start)"
)
# Commands that only make sense as an attack when someone is told to run them.
_DANGEROUS_COMMAND = (
    r"(?:\b(?:curl|wget|iwr|irm|fetch)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|k|da)?sh\b"
    r"|\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:python3?|perl|ruby|node)\b"
    r"|\bbase64\s+(?:-d|--decode|-D)\b[^|\n]{0,60}\|\s*(?:sudo\s+)?(?:ba|z)?sh\b"
    r"|/dev/tcp/|\bnc(?:at)?\b[^\n]{0,60}\s-e\s|\bmkfifo\b[^\n]{0,80}\b(?:nc|sh)\b|\bbash\s+-i\b|\bpty\.spawn\("
    r"|\brm\s+-(?:rf|fr|r\s+-f)\s+(?:/|~|\*|\$HOME|--no-preserve-root)|\bmkfs(?:\.\w+)?\s+/dev/|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}"
    r"|\bpowershell\b[^\n]{0,60}\s-(?:e|ec|enc|encodedcommand)\b|\biex\b\s*\(|\binvoke-expression\b|\.downloadstring\("
    r"|\bos\.(?:system|popen|exec\w*)\(|\bsubprocess\.(?:call|run|popen|check_output|check_call)\("
    r"|__import__\(\s*['\"](?:os|subprocess|socket|pty)|\bsocket\.socket\("
    r"|\bpython3?\s+-c\s+['\"][^'\"]{0,40}\bimport\s+(?:os|socket|subprocess|pty)\b"
    r"|\b(?:eval|exec)\s*\(\s*(?:requests|urllib|urlopen|fetch|base64|atob|compile|input)"
    r"|\b(?:download|curl|wget)\b[^\n]{0,140}(?:\bchmod\s+\+x|&&\s*\./|;\s*\./)"
    r"|\bdownload\b" + _SAME + r"{0,40}https?://\S+" + _SAME + r"{0,60}\b(?:run|execute|launch)\b"
    r"|\b(?:pip3?|npm|gem|cargo)\s+install\s+(?:-\S+\s+)*(?:git\+)?https?://)"
)

_I = re.IGNORECASE | re.MULTILINE
_RULES: list[tuple[str, re.Pattern]] = [
    (SECRET_EXFILTRATION, re.compile(
        _SEND_VERB + r"\b" + _SAME + r"{0,80}?" + _SECRET + r"" + _SAME + r"{0,80}?(?:\b(?:to|into|in|at|on|via|as|inside)\b" + _SAME + r"{0,40}?)?"
        + _DESTINATION, _I)),
    (SECRET_EXFILTRATION, re.compile(
        _LEAD + _ACQUIRE_VERB + r"\b" + _SAME + r"{0,60}?" + _SECRET + r"" + _SAME + r"{0,60}?\b" + _SEND_VERB + r"\b" + _SAME + r"{0,60}?"
        + _DESTINATION, _I)),
    (SECRET_EXFILTRATION, re.compile(
        r"\b(?:in|into|inside|within)\s+" + _DESTINATION + r"" + _SAME + r"{0,20}?\b" + _SEND_VERB + r"\b" + _SAME + r"{0,60}?" + _SECRET,
        _I)),
    (SECRET_EXFILTRATION, re.compile(
        _LEAD + _SEND_VERB + r"\b" + _SAME + r"{0,30}?\b(?:all|every|each|any)\b" + _SAME + r"{0,25}?" + _SECRET, _I)),
    (SECRET_EXFILTRATION, re.compile(
        r"!\[[^\]]*\]\(https?://[^)\s]*(?:\{|\$\{?|%24)[^)\s]*|https?://\S*(?:\{|\$\{?)\w*(?:KEY|SECRET|TOKEN|PASSWORD|CRED)"
        r"|\b(?:env|printenv)\s*\|\s*(?:curl|wget|nc|ncat)\b"
        r"|\bcurl\b[^\n]{0,120}\s(?:-d|--data(?:-binary|-raw)?|-F|--form|--upload-file|-T)\s*['\"]?(?:\w+=)?@"
        r"\S*(?:\.env|id_\w+|credentials|passwd|shadow|\.npmrc|\.netrc|-)(?:\s|$|['\"])"
        r"|\b(?:cat|type|tar)\b[^|\n]{0,60}(?:\.env|id_rsa|credentials|/etc/shadow|/etc/passwd)[^|\n]{0,20}\|\s*(?:curl|nc|wget)\b",
        _I)),
    (REMOTE_CODE_EXECUTION, re.compile(
        # A pasted log or stack trace may hold such a command; an order to run it is what makes the attack.
        r"(?:" + _LEAD_PUNCTUATION + _RUN_VERB + r"\b[^\n]{0,80}?|(?:" + _LEAD_WORD + r"|\b" + _ADDRESSEE
        + r"\s*[:,]\s*|\bstep\s*\d+\s*[:.)-]\s*)(?:" + _RUN_VERB + r"\b[^\n]{0,80}?)?)" + _DANGEROUS_COMMAND, _I)),
    (INSTRUCTION_OVERRIDE, re.compile(
        _OVERRIDE_VERB + r"\b" + _SAME + r"{0,40}?\b" + _RULE_OWNER + r"\b" + _SAME + r"{0,30}?\b" + _RULE_NOUN + r"\b"
        r"|\b(?:forget|ignore|disregard)\s+(?:everything|anything|all)\s+(?:above|before|previous|prior|earlier|else"
        r"|you (?:were|have been|was) told)"
        r"|\b(?:whatever|regardless of(?: what)?|no matter what|despite|in spite of)\s+your\s+(?:\w+\s+)?" + _RULE_NOUN
        + r"|\b(?:real|actual|true)\s+instructions\s+(?:are|follow|come)\b|\b(?:ones|instructions|text|rules) above"
        r"\s+(?:were|was|is|are)\s+(?:just\s+)?(?:a test|fake|wrong|not real|void)"
        r"|(?:" + _LEAD + r"|\byou\s+(?:can|may|should|must)\s+|\byou to\s+)(?:skip|bypass|disable|turn off)\s+(?:the\s+"
        r"|your\s+|any\s+)?(?:safety|security|content|moderation)\s+(?:review|check|filter|judge|polic(?:y|ies)|screening"
        r"|rules)\b"
        r"|\bignorier\w*\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen|deine)\s+anweisungen"
        r"|\bignore[rz]?\s+(?:toutes\s+)?(?:les|tes|vos)\s+instructions\s+(?:pr[ée]c[ée]dentes|ant[ée]rieures)"
        r"|\bignora\s+(?:todas\s+)?(?:las|tus|le)\s+(?:instrucciones|istruzioni)\s+(?:anteriores|previas|precedenti)"
        r"|\bignore\s+(?:todas\s+)?as\s+instru[çc][õo]es\s+anteriores"
        r"|\b(?:forget|ignore|disregard)\s+(?:the above|what (?:you were|you've been|you have been|you were) (?:told|given)"
        r"|your (?:training|programming))"
        r"|\b" + _OVERRIDE_VERB + r"\s+(?:the\s+)?" + _RULE_NOUN + r"\s+(?:you (?:were|have been|'ve been) given"
        r"|you (?:received|got)|above)"
        r"|\b(?:previous|prior|earlier|above|original|your|system|the)\s+" + _RULE_NOUN
        + r"\b" + _SAME + r"{0,40}?\b(?:no longer apply|(?:are|is) (?:now )?(?:void|null|revoked|cancel+ed|suspended|lifted"
        r"|overridden|obsolete))"
        r"|\byou are now\b" + _SAME + r"{0,60}?\b(?:a\.?i|assistant|model|agent|bot|dan|unrestricted|unfiltered|jailbroken"
        r"|uncensored|[a-z]+ mode)\b"
        r"|\bfrom now on,?\s+you\b" + _SAME + r"{0,20}?\b(?:act|respond|answer|reply|behave|only|ignore|pretend|obey|are (?:a|an))\b"
        r"|\b(?:act|behave|respond|roleplay)\s+(?:as|like)\s+(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|uncensored"
        r"|evil|different|new)\b|\bpretend (?:you are|you're|to be)\b" + _SAME + r"{0,40}?\b(?:a\.?i|model|assistant|bot"
        r"|no (?:guidelines|rules|restrictions|limits))\b"
        r"|\b(?:enter|enable|activate|switch to)\s+(?:dan|god|jailbreak|unrestricted|unfiltered|uncensored) mode\b"
        r"|<\|im_start\|>\s*(?:system|assistant)|<\|(?:system|assistant)\|>|\[/?INST\]|<<SYS>>"
        r"|^\s*#{2,}\s*(?:system|instruction|new instructions?)\b|\bsystem override\b"
        r"|^\s*(?:system|assistant)\s*:\s*(?=[^\n]{0,80}\b(?:you|ignore|disregard|forget|override|must)\b)"
        r"|\bnew (?:system )?(?:instructions?|rules|prompt|task)\s*:"
        r"|\byour (?:new|real|actual|true) (?:task|instructions?|goal|job|role|purpose|orders) (?:is|are)\b"
        r"|" + _LEAD + r"(?:print|reveal|show|output|repeat|display|dump|leak|recite|write out|tell me|give me)\b"
        r"" + _SAME + r"{0,20}?\b(?:your|the) (?:system prompt|initial prompt|original prompt|hidden prompt|system message"
        r"|(?:initial|original|hidden|secret|system) instructions)\b"
        r"|\b(?:print|reveal|show|output|repeat|display|dump|recite)\b" + _SAME + r"{0,20}?\byour (?:system prompt|prompt"
        r"|instructions)\b", _I)),
    (INSTRUCTION_OVERRIDE, re.compile(
        r"(?:\b(?:dear|hey|hi|hello|attention|attn|note|message|memo|reminder|psa|instructions?)\b\s*(?:to|for)?\s*"
        r"(?:the|any|all|every)?\s*|^\s*|[.!?,]\s*)\b" + _ADDRESSEE
        + r"(?: reading this| processing this| reviewing this)?\s*(?:[:,]|\s-+|\s—)\s*" + _SAME + r"{0,60}?\b(?:ignore|disregard|forget|override"
        r"|bypass|mark|label|classify|rate|approve|merge|delete|remove|say|act|behave|pretend|become|add|create|commit|push|modify|edit|output|print|reveal|treat|set|assign|escalate"
        r"|close|skip|stop|send|post|upload|include|change|prioriti[sz]e|flag|respond|reply|answer|summari[sz]e|write"
        r"|tell|report|return|grant|give)\b", _I)),
]
_NEGATION = re.compile(r"\b(?:not|never|no|don'?t|doesn'?t|shouldn'?t|mustn'?t|can'?t|cannot|avoid|prevent|without"
                       r"|stop us from)\W*(?:\w+\W+){0,2}$", re.IGNORECASE)
# "I want to override the default rules" is a feature request, not an order to the model.
_WISH = re.compile(r"\b(?:(?:i|we|admins?|users?|customers?|teams?) (?:want|wants|wish|would like|need|needs) to"
                   r"|(?:ability|option|way|permission) to|allow(?:s|ing)? (?:me|us|users|admins|teams) to)\s*$",
                   re.IGNORECASE)
_DECODE_AND_OBEY = re.compile(r"\b(?:decode|base64 -d|unhex|un-?escape)\b" + _SAME + r"{0,40}\b(?:and|then)\s+(?:follow|execute"
                              r"|run|obey|apply|do what it says|act on)\b", re.IGNORECASE)

# ---- concealment -------------------------------------------------------------------------------

_HIDDEN_CONTAINERS = re.compile(
    r"<!--(?P<comment>.*?)(?:-->|\Z)"
    r"|<(?P<tag>\w+)\b[^>]*\bstyle\s*=\s*[\"'][^\"']*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0"
    r"(?:px|pt|em)?\b|opacity\s*:\s*0(?:\.0+)?\b|color\s*:\s*(?:white|#fff\b|#ffffff|transparent)|(?:height|width)\s*:\s*0"
    r"(?:px)?\b)[^\"']*[\"'][^>]*>(?P<styled>.*?)</(?P=tag)\s*>"
    r"|<(?P<ftag>font)\b[^>]*\bcolor\s*=\s*[\"']?(?:white|#fff\b|#ffffff)[^>]*>(?P<font>.*?)</(?P=ftag)\s*>"
    r"|<(?P<htag>\w+)\b[^>]*\b(?:hidden|aria-hidden\s*=\s*[\"']true[\"'])[^>]*>(?P<hidden>.*?)</(?P=htag)\s*>"
    r"|^\s*\[(?://|comment|hidden)\]:\s*(?:#|<>)\s*\((?P<markdown>.*)\)\s*$",
    re.IGNORECASE | re.DOTALL | re.MULTILINE,
)
_TAG_CHARACTERS = re.compile("[\U000e0000-\U000e007f]{8,}")
_ZERO_WIDTH_RUN = re.compile("[\u200b\u200c\u200d\u2060\u2062\u2063\u2064\ufeff]{8,}")
# Normalisation drops these: format characters (zero-width, bidi controls, tags) and blank fillers.
_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u180e", "\u00ad"}
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ӏ": "l", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "І": "I", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "Ο": "O", "Α": "A", "Ε": "E", "Ι": "I", "Κ": "K", "Ν": "N", "Ρ": "P", "Τ": "T",
})

# ---- encodings ---------------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:0x)?(?:[0-9a-fA-F]{2}[ :]?){8,}(?![0-9A-Za-z])")
_BACKSLASH_X = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")
_BACKSLASH_U = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}){4,}")
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2}){4,}")
_HTML_ENTITIES = re.compile(r"(?:&#(?:\d{2,7}|x[0-9a-fA-F]{2,6});){4,}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape_invisible(text: str) -> str:
    return "".join(
        (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") if unicodedata.category(c) == "Cf" else c
        for c in text
    )


def _printable(text: str) -> bool:
    if len(text) < 4:
        return False
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good / len(text) >= 0.9 and any(c.isalpha() for c in text)


class _Normalised:
    """Text with invisible characters dropped, NFKC applied, homoglyphs mapped and whitespace collapsed,
    keeping for every character the index of the original character it came from."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for index, char in enumerate(text):
            if unicodedata.category(char) == "Cf" or char in _INVISIBLE:
                continue
            for out in unicodedata.normalize("NFKC", char).translate(_CONFUSABLES):
                if out.isspace() and out != "\n":
                    out = " "
                if out in " \n" and chars and chars[-1] in " \n":
                    if out == "\n":
                        chars[-1] = "\n"
                    continue
                chars.append(out)
                origin.append(index)
        self.text = "".join(chars)
        self.origin = origin

    def deobfuscated(self) -> "_Normalised | None":
        """The same text with spaced-out letters joined ("i g n o r e") and leetspeak read as letters in
        words that mix both ("1gn0re"); None when that changes nothing."""
        keep = [True] * len(self.text)
        for match in _SPACED_LETTERS.finditer(self.text):
            for offset in range(match.start(), match.end()):
                keep[offset] = not self.text[offset].isspace()
        chars = list(self.text)
        for match in _MIXED_WORD.finditer(self.text):
            for offset in range(match.start(), match.end()):
                chars[offset] = _LEET.get(chars[offset], chars[offset])
        text = "".join(c for c, k in zip(chars, keep) if k)
        if text == self.text:
            return None
        variant = _Normalised("")
        variant.text = text
        variant.origin = [o for o, k in zip(self.origin, keep) if k]
        return variant

    def span(self, start: int, end: int) -> tuple[int, int]:
        if not self.origin or end <= start:
            return 0, 0
        return self.origin[start], self.origin[min(end, len(self.origin)) - 1] + 1


_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[A-Za-z] ){3,}[A-Za-z](?!\S)")
_MIXED_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[013457@$])[\w@$]{3,}\b")
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}


def _rule_match(text: str) -> tuple[str, int, int] | None:
    """The first rule that matches `text` outside a negation, as (kind, start, end) in `text`."""
    for kind, pattern in _RULES:
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - 40): match.start()]
            if match.end() == match.start() or _NEGATION.search(before) or _WISH.search(before):
                continue
            return kind, match.start(), match.end()
    return None


def _direct(text: str) -> SafetyVerdict:
    normalised = _Normalised(text)
    for view in (normalised, normalised.deobfuscated()):
        found = _rule_match(view.text) if view is not None else None
        if found is not None:
            kind, start, end = found
            first, last = view.span(start, end)
            # A command or request reads best to the end of its line or sentence.
            clause_end = re.search(r"\n|[.!?](?:\s|$)|$", text[last:])
            return SafetyVerdict(False, kind, _quote(text[first:last + clause_end.start()]))
    return SAFE


def _quote(fragment: str) -> str:
    """A verbatim fragment: cut, never rewritten."""
    return fragment.strip()[:QUOTE_CHARS]


def _decodings(text: str) -> Iterator[tuple[re.Match, str]]:
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(blob + "=" * (-len(blob) % 4)).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if _printable(decoded):
                yield match, decoded
                break
    for match in _HEX.finditer(text):
        digits = re.sub(r"0x|[ :]", "", match.group(0))
        try:
            decoded = bytes.fromhex(digits[: len(digits) // 2 * 2]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _printable(decoded):
            yield match, decoded
    escapes = [
        (_BACKSLASH_X, lambda s: bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-fA-F]{2})", s)).decode("utf-8")),
        (_BACKSLASH_U, lambda s: "".join(chr(int(h, 16)) for h in re.findall(r"\\[uU]([0-9a-fA-F]+)", s))),
        (_PERCENT, lambda s: bytes(int(h, 16) for h in re.findall(r"%([0-9a-fA-F]{2})", s)).decode("utf-8")),
        (_HTML_ENTITIES, lambda s: "".join(chr(int(n[1:], 16) if n.startswith("x") else int(n))
                                           for n in re.findall(r"&#(\w+);", s))),
    ]
    for pattern, decode in escapes:
        for match in pattern.finditer(text):
            try:
                decoded = decode(match.group(0))
            except (ValueError, UnicodeDecodeError, OverflowError):
                continue
            if _printable(decoded):
                yield match, decoded


def _revealed_attack(decoded: str, depth: int) -> str | None:
    """What decoded text reveals when it is an attack (any rule's match or a bare dangerous command),
    decoding nested layers; None when it is harmless."""
    inner = check_signal_text(decoded, depth + 1)
    if not inner.safe:
        return inner.revealed if inner.kind == ENCODED_PAYLOAD and inner.revealed else decoded
    return decoded if re.search(_DANGEROUS_COMMAND, decoded, _I) else None


def _concealed(text: str, depth: int) -> SafetyVerdict:
    for match in _TAG_CHARACTERS.finditer(text):
        revealed = "".join(chr(ord(c) - 0xE0000) for c in match.group(0))
        return SafetyVerdict(False, HIDDEN_INSTRUCTIONS, match.group(0)[:QUOTE_CHARS], _cut(revealed, QUOTE_CHARS))
    for match in _ZERO_WIDTH_RUN.finditer(text):
        return SafetyVerdict(False, HIDDEN_INSTRUCTIONS, match.group(0)[:QUOTE_CHARS],
                             _cut(_zero_width_bits(match.group(0)), QUOTE_CHARS))
    for match in _HIDDEN_CONTAINERS.finditer(text):
        inner = next(g for g in (match.group(n) for n in ("comment", "styled", "font", "hidden", "markdown")) if g is not None)
        inner_verdict = check_signal_text(inner, depth + 1)
        if not inner_verdict.safe:
            return SafetyVerdict(False, HIDDEN_INSTRUCTIONS, _quote(match.group(0)))
    return SAFE


def _zero_width_bits(run: str) -> str:
    """Zero-width steganography reads as bits (one character for 0, another for 1); '' if it is not text."""
    symbols = sorted(set(run))
    if len(symbols) != 2:
        return ""
    for zero, one in (symbols, symbols[::-1]):
        bits = run.replace(zero, "0").replace(one, "1")
        try:
            decoded = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits) - 7, 8)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _printable(decoded):
            return decoded
    return ""


def check_signal_text(text: str, depth: int = 0) -> SafetyVerdict:
    """The offline verdict for one text: concealed, then encoded, then direct manipulation."""
    if depth > MAX_DECODE_DEPTH or not text:
        return SAFE
    hidden = _concealed(text, depth)
    if not hidden.safe:
        return hidden
    decodings = list(_decodings(text))
    for match, decoded in decodings:
        revealed = _revealed_attack(decoded, depth)
        if revealed is not None:
            return SafetyVerdict(False, ENCODED_PAYLOAD, _quote(match.group(0)), _cut(revealed, QUOTE_CHARS))
    obey = _DECODE_AND_OBEY.search(text)
    if obey and decodings:
        return SafetyVerdict(False, ENCODED_PAYLOAD, _quote(obey.group(0)), _cut(decodings[0][1], QUOTE_CHARS))
    return _direct(text)


def check_report_texts(texts: list[str]) -> SafetyVerdict:
    """Report-level judgement: the first unsafe signal, with its index."""
    for index, text in enumerate(texts):
        verdict = check_signal_text(text)
        if not verdict.safe:
            return SafetyVerdict(False, verdict.kind, verdict.quote, verdict.revealed, index)
    return SAFE


class OfflineSafetyJudge:
    """The rules as a judge: the same interface as `llm_review.LLMSafetyJudge`."""

    name = "offline"

    def check_signal(self, text: str) -> SafetyVerdict:
        return check_signal_text(text)

    def check_report(self, texts: list[str]) -> SafetyVerdict:
        return check_report_texts(texts)
