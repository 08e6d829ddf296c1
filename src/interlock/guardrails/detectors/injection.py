"""Screening untrusted content (tool results, retrieved text) for prompt injection (issue 13).

Classifiers trained on one injection dataset fall apart on another (92% on their own split, 10% on
AgentDojo), so this is a set of heuristics for what injected text must do to work, whatever its
wording: address the model, override or replace its instructions, impersonate a system/assistant
turn, ask for an action (send data, call a tool) or for secrecy; hide itself in invisible or
bidirectional unicode; or smuggle data out through a link or image URL that auto-loads.

Each cue has a weight; a text's confidence combines the distinct cue *kinds* it shows
(1 - Π(1 - w)), so one stray "act as" scores low and an instruction override that also asks to email
the user's files scores high. Every finding carries the text's confidence, and its span is the cue.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from interlock.guardrails.findings import Finding

_W = r"(?:\s+\S+){0,4}?\s+"  # up to four filler words ("all of your previous")
_PRIOR = (
    r"(?:previous|prior|above|earlier|preceding|former|initial|original|system|developer|existing|old|all|any|your|the)"
)
_RULES = (
    r"(?:instructions?|prompts?|rules|directions?|guidelines|directives?|context|commands?|orders|guardrails|"
    r"policies|constraints|restrictions)"
)

# (kind, weight, pattern). Kinds combine; several cues of one kind count once (the strongest).
_CUES: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (kind, weight, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for kind, weight, pattern in (
        (
            "override",
            0.85,
            rf"\b(?:ignore|disregard|forget|override|overrule|bypass|skip|abandon|drop|"
            rf"discard|cancel)\b{_W}?(?:{_PRIOR}\s+)?(?:\S+\s+){{0,2}}{_RULES}\b",
        ),
        (
            "override",
            0.8,
            rf"\b(?:do not|don't|never)\s+(?:follow|obey|listen to|comply with)\s+(?:{_PRIOR}\s+)?(?:\S+\s+)"
            rf"{{0,2}}{_RULES}\b",
        ),
        (
            "override",
            0.85,
            r"\b(?:ignorez|oubliez|ignore[rz]?)\s+(?:toutes\s+)?(?:les|vos)\s+(?:\S+\s+)?(?:instructions|"
            r"consignes|règles)",
        ),
        (
            "override",
            0.85,
            r"\b(?:ignoriere|vergiss|missachte)\w*\s+(?:alle\s+)?(?:\S+\s+){0,2}(?:anweisungen|"
            r"instruktionen|regeln|befehle)",
        ),
        (
            "override",
            0.85,
            r"\b(?:ignora|olvida|ignori|dimentica)\w*\s+(?:todas\s+|tutte\s+)?(?:las|"
            r"los|le|tus|tue)\s+(?:\S+\s+)?(?:instrucciones|istruzioni|reglas|regole)",
        ),
        (
            "new_orders",
            0.75,
            rf"\b(?:new|updated|revised|real|actual|additional|important|hidden|secret)\s+(?:system\s+)?"
            rf"{_RULES}\s*[:\-]",
        ),
        (
            "new_orders",
            0.7,
            r"\b(?:from now on|starting now|henceforth|for the rest of (?:this|the) conversation)\b[,:]?\s+(?:you|"
            r"your|always|never|only|respond|answer|act)",
        ),
        (
            "new_orders",
            0.7,
            r"\byou\s+(?:must|will|shall|are required to)\s+now\s+(?!have\b|be able\b|"
            r"see\b|find\b|receive\b|get\b)|\byou\s+are\s+now\s+(?:a|an|in|the|no longer|"
            r"free|DAN)\b|\byour\s+(?:new|real|true|actual|next)\s+(?:task|goal|objective|"
            r"job|role|purpose|instructions?)\s+(?:is|are)\b",
        ),
        (
            "new_orders",
            0.65,
            r"\b(?:before|instead of)\s+(?:you\s+)?(?:solv|answer|complet|respond|continu|"
            r"finish)\w*\s+(?:the|this|your|my)?\s*(?:task|request|question|query)\b",
        ),
        (
            "new_orders",
            0.55,
            r"\b(?:developer|debug|god|admin|maintenance|jailbreak|DAN|unrestricted)\s+mode\b|\bjailbr(?:ea|o)k\w*",
        ),
        (
            "address",
            0.5,
            r"\b(?:dear|attention|hey|hello|note to|message (?:for|to)|instructions? for)\s+(?:the\s+)?(?:AI|"
            r"assistant|model|LLM|agent|chatbot|bot|GPT|ChatGPT|Claude|Gemini|Copilot|"
            r"language model)s?\b",
        ),
        (
            "address",
            0.5,
            r"\bif you(?:'re| are)\s+(?:an?\s+)?(?:AI|LLM|assistant|language model|large language model|"
            r"agent|chatbot|bot)\b|\b(?:AI|LLM)\s+(?:assistants?|agents?|models?)\s+(?:reading|"
            r"processing|summari[sz]ing|seeing)\s+this\b",
        ),
        (
            "address",
            0.45,
            r"\bthis is an? (?:important|urgent|critical) (?:message|instruction|notice|update) (?:from|for)\b",
        ),
        (
            "role",
            0.7,
            r"^\s*(?:#{1,3}\s*)?(?:\[|<)?\s*(?:system|assistant|developer)\s*(?:\]|>)?\s*:|"
            r"<\|?(?:im_start|im_end|system|assistant|endoftext|start_header_id)\|?>|"
            r"\[/?INST\]|<<\s*/?SYS\s*>>|^\s*(?:Human|User|Assistant|AI)\s*:\s",
        ),
        (
            "role",
            0.6,
            r"</?(?:system|instructions?|important|information|admin|sudo|override)>|"
            r"\bBEGIN (?:SYSTEM|ADMIN|NEW) (?:PROMPT|INSTRUCTIONS?|MESSAGE)\b",
        ),
        (
            "role",
            0.55,
            r"\b(?:pretend|imagine)\s+(?:to be|you are|that you are)\b|\b(?:act|behave|"
            r"respond)\s+as\s+(?:if you were\s+)?(?:an?\s+)?(?:unfiltered|unrestricted|"
            r"evil|different|new|system|admin|root)\b|\brole[- ]?play\s+as\b",
        ),
        (
            "action",
            0.45,
            r"\b(?:send|forward|e-?mail|post|upload|transmit|exfiltrate|leak|share|copy|"
            r"paste|submit|transfer|wire)\s+(?:(?:the|all|any|every|your|my|their|this|"
            r"these|those|user'?s?|full|entire|whole|complete)\s+)*(?:\S+\s+){0,3}?(?:to|"
            r"at|into|via)\s+(?:\S+@\S+|https?://|www\.|this (?:address|url|link|email)|"
            r"the following|attacker|me\b|us\b)",
        ),
        (
            "action",
            0.45,
            r"\b(?:call|invoke|use|run|execute|trigger)\s+(?:the\s+)?(?:`?\w+`?\s+)?(?:tool|"
            r"function|api|command|plugin|action)\b(?:\s+`?\w+`?)?\s*(?:with|to|on|using|"
            r"\()",
        ),
        (
            "action",
            0.45,
            r"\b(?:run|execute|eval)\s+(?:the following|this)\s+(?:\w+\s+)?(?:command|"
            r"code|script|shell|query)\b|\b(?:curl|wget)\s+(?:-\S+\s+)*https?://",
        ),
        (
            "action",
            0.4,
            r"\b(?:delete|remove|wipe|erase|drop)\s+(?:all|every|the)\s+(?:\S+\s+){0,2}(?:files?|"
            r"emails?|messages?|records?|data|repos?(?:itory|itories)?|tables?|users?|"
            r"accounts?)\b",
        ),
        (
            "secrecy",
            0.45,
            r"\b(?:do not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|"
            r"notify(?:ing)?|alert(?:ing)?|reveal(?:ing)?|asking|let(?:ting)?)\s+(?:the\s+)?(?:user|"
            r"human|customer|anyone|them|him|her)\b|\bkeep (?:this|it) (?:a )?secret\b|"
            r"\b(?:silently|secretly|covertly|quietly)\s+(?:send|forward|add|call|run|"
            r"include|append|change)",
        ),
        (
            "leak",
            0.6,
            r"\b(?:reveal|print|output|repeat|show|display|dump|leak|return|write out)\s+(?:me\s+)?(?:your|"
            r"the|all|any)\s+(?:\S+\s+){0,2}(?:system prompt|initial (?:prompt|instructions)|"
            r"hidden (?:prompt|instructions)|instructions above|prompt above|secret key|"
            r"api key|credentials|password)s?\b",
        ),
    )
)

# Invisible or direction-changing characters (Trojan Source, ASCII smuggling).
_TAGS = re.compile(r"[\U000E0000-\U000E007F]+")
# An embedding/override/isolate through its closing PDF/PDI (one finding), or a lone control.
_BIDI = re.compile(r"[\u202A-\u202E\u2066-\u2068][^\n]{0,200}?[\u202C\u2069]|[\u202A-\u202E\u2066-\u2069]+")
_ZERO_WIDTH = re.compile(r"[\u200B\u200C\u200D\u2060\u2061-\u2064\uFEFF\u180E\u00AD]{2,}")
_ZW_IN_WORD = re.compile(r"(?<=[A-Za-z])[\u200B\u200C\u200D\u2060\uFEFF\u00AD](?=[A-Za-z])")
_SELECTORS = re.compile(r"[\U000E0100-\U000E01EF\uFE00-\uFE0F]{2,}")
_FLAG_TAGS = re.compile(r"\U0001F3F4[\U000E0061-\U000E007A]{2,6}\U000E007F")  # 🏴 subdivision flags

# Links and images whose URL can carry data out: markdown, HTML, bare URLs with data-like query/path.
_MD_LINK = re.compile(r"(!?)\[[^\]\n]{0,300}\]\(\s*<?(https?://[^\s)>]{1,2048})>?(?:\s+\"[^\"]*\")?\s*\)")
_MD_REF = re.compile(r"^\s*\[[^\]\n]{1,100}\]:\s*(https?://\S{1,2048})", re.MULTILINE)
_HTML_SRC = re.compile(
    r"<(img|iframe|script|link|source|video|audio)\b[^>]{0,500}?\b(?:src|href)\s*=\s*[\"']?(https?://"
    r"[^\s\"'>]{1,2048})",
    re.IGNORECASE,
)
_TEMPLATE = re.compile(
    r"\{\{?[^}]{1,80}\}\}?|\$\{[^}]{1,80}\}|<[A-Z_]{3,40}>|\[(?:DATA|SECRET|CONTEXT|CONVERSATION|SUMMARY|INFO)[^\]]*\]",
    re.IGNORECASE,
)
_DATA_KEYS = re.compile(
    r"(?i)^(?:q|d|data|c|content|text|msg|message|conv|conversation|chat|history|s|secret|key|token|pw|pass|password|info|payload|p|x|leak|exfil|b64|summary|email|user|m)$"
)
_BASE64ISH = re.compile(r"^[A-Za-z0-9+/=_%-]{24,}$")

# The first word every cue above needs (keep in step with _CUES; a test checks that no cue fires on
# a text the pre-check rejects), checked
# with `in` on the lower-cased text: far cheaper on long text than one regex alternation.
_ANCHORS = (
    "ignor", "disregard", "forget", "overr", "bypass", "skip", "abandon", "drop", "discard", "cancel", "do not",
    "don't", "never", "without", "oubli", "vergiss", "missacht", "olvid", "dimentic", "instruction", "prompt",
    "rule", "direction", "guideline", "directive", "context", "command", "order", "guardrail", "polic",
    "constraint", "restriction", "now", "henceforth", "for the rest", "you", "before", "instead", "mode",
    "jailbr", "dear", "attention", "hey", "hello", "note to", "message", "ai", "llm", "this is", "system",
    "assistant", "developer", "<", "[inst", "[/inst", "human", "user", "important", "information", "admin",
    "sudo", "begin", "pretend", "imagine", "act", "behave", "respond", "role", "send", "forward", "mail", "post",
    "upload", "transmit", "exfil", "leak", "share", "copy", "paste", "submit", "transfer", "wire", "call",
    "invoke", "use", "run", "execute", "trigger", "eval", "curl", "wget", "delete", "remove", "wipe", "erase",
    "keep", "silent", "secret", "covert", "quiet", "reveal", "print", "output", "repeat", "show", "display",
    "dump", "return", "write out", "http",
)  # fmt: skip


class InjectionDetector:
    """Prompt injection, hidden unicode and exfiltration links in untrusted content.

    Entities: `PROMPT_INJECTION`, `HIDDEN_UNICODE`, `EXFILTRATION_LINK`. `allowed_hosts` are hosts (and
    their subdomains) a link may point at without counting as exfiltration.
    """

    def __init__(self, allowed_hosts: Iterable[str] = (), min_score: float = 0.5) -> None:
        self._allowed = tuple(h.lower().lstrip(".") for h in allowed_hosts)
        self._min_score = min_score

    @property
    def name(self) -> str:
        """Detector name in findings and audit entries."""
        return "injection"

    @property
    def entities(self) -> frozenset[str]:
        """The entity types this detector reports."""
        return frozenset({"PROMPT_INJECTION", "HIDDEN_UNICODE", "EXFILTRATION_LINK"})

    def could_match(self, text: str) -> bool:
        """Cheap pre-check: False proves `scan(text)` finds nothing."""
        if not text.isascii():
            return True
        lower = text.lower()
        return any(anchor in lower for anchor in _ANCHORS)

    def scan(self, text: str) -> list[Finding]:
        """Findings for each cue, hidden-unicode run and exfiltration link in `text`."""
        if not self.could_match(text):
            return []
        found = self._hidden(text) if not text.isascii() else []
        found += self._links(text)
        visible = _strip_invisible(text) if found and not text.isascii() else text
        found += self._instructions(visible, offsets=visible == text)
        return [f for f in found if f.score >= self._min_score]

    def _instructions(self, text: str, offsets: bool) -> list[Finding]:
        best: dict[str, float] = {}
        spans: list[tuple[int, int]] = []
        for kind, weight, pattern in _CUES:
            for m in pattern.finditer(text):
                best[kind] = max(best.get(kind, 0.0), weight)
                spans.append((m.start(), m.end()))
        if not spans:
            return []
        miss = 1.0
        for weight in best.values():
            miss *= 1.0 - weight
        score = round(1.0 - miss, 3)
        if not offsets:  # cues were found in text with invisible characters removed: report the whole text
            return [Finding("PROMPT_INJECTION", 0, len(text), score, self.name)]
        return [Finding("PROMPT_INJECTION", s, e, score, self.name) for s, e in spans]

    def _hidden(self, text: str) -> list[Finding]:
        found = []
        flags = [(m.start(), m.end()) for m in _FLAG_TAGS.finditer(text)]
        for m in _TAGS.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in flags):
                continue
            found.append(Finding("HIDDEN_UNICODE", m.start(), m.end(), 0.95, self.name))
        for pattern, score in ((_BIDI, 0.85), (_ZERO_WIDTH, 0.7), (_SELECTORS, 0.8)):
            found += [Finding("HIDDEN_UNICODE", m.start(), m.end(), score, self.name) for m in pattern.finditer(text)]
        in_word = list(_ZW_IN_WORD.finditer(text))
        if len(in_word) >= 2:  # one may be a soft hyphen or a paste artefact; several hide words
            found += [Finding("HIDDEN_UNICODE", m.start(), m.end(), 0.7, self.name) for m in in_word]
        return found

    def _links(self, text: str) -> list[Finding]:
        found = []
        candidates = [(m.start(), m.end(), m.group(2), m.group(1) == "!") for m in _MD_LINK.finditer(text)]
        candidates += [(m.start(), m.end(), m.group(1), False) for m in _MD_REF.finditer(text)]
        candidates += [(m.start(), m.end(), m.group(2), True) for m in _HTML_SRC.finditer(text)]
        for start, end, url, autoload in candidates:
            score = self._url_score(url, autoload)
            if score:
                found.append(Finding("EXFILTRATION_LINK", start, end, score, self.name))
        return found

    def _url_score(self, url: str, autoload: bool) -> float:
        try:
            parts = urlsplit(url)
        except ValueError:
            return 0.0
        host = (parts.hostname or "").lower()
        if not host or any(host == h or host.endswith("." + h) for h in self._allowed):
            return 0.0
        carries = bool(_TEMPLATE.search(url))
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if len(value) >= 40 or (_DATA_KEYS.match(key) and len(value) >= 8) or _BASE64ISH.match(value):
                carries = True
        segments = [s for s in parts.path.split("/") if s]
        if any(len(s) >= 48 or (_BASE64ISH.match(s) and len(s) >= 32 and not s.isalpha()) for s in segments):
            carries = True
        if not carries:
            return 0.0
        return 0.9 if autoload else 0.7


def _strip_invisible(text: str) -> str:
    """`text` without format characters (Cf), so "ig\u200bnore" reads as "ignore"."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
