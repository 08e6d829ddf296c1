"""Credentials in prompts and answers, with detect-secrets' plugins run on in-memory text (issue 13).

detect-secrets is built to scan files: its `scan_line` goes through global settings and filters, which
`transient_settings` swaps process-wide (not thread-safe). So the plugins are instantiated once and
only their pure `analyze_string` is called; each value it yields is located in the text, and the span
is widened to the whole token (its JWT pattern stops before the signature). Patterns it lacks (OpenAI
`sk-proj-…`, Anthropic, Google, Hugging Face, fine-grained GitHub, Stripe test keys, whole PEM blocks,
`.env` assignments) are added here. The entropy plugins flag ordinary words, so they are opt-in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from interlock.guardrails.findings import Finding

# detect-secrets plugin → (entity, score, gate). A plugin runs only where its gate (a literal its
# patterns need) occurs, which keeps a 16 KB text cheap. Private keys are found whole by our PEM pattern.
_PLUGINS: tuple[tuple[type[BasePlugin], str, float, str], ...] = (
    (AWSKeyDetector, "SECRET_AWS_KEY", 0.95, r"(?i)a3t|akia|asia|abia|acca|aws"),
    (AzureStorageKeyDetector, "SECRET_AZURE_KEY", 0.95, r"AccountKey="),
    (BasicAuthDetector, "SECRET_BASIC_AUTH", 0.85, r"://[^\s/@:]+:[^\s/]+@"),
    (ArtifactoryDetector, "SECRET", 0.7, r"AKC|AP[\dA-F]"),
    (CloudantDetector, "SECRET", 0.8, r"(?i)cloudant|\bcl(?:ou)?[-_]?(?:api)?[-_]?(?:key|pwd|pass|token)"),
    (DiscordBotTokenDetector, "SECRET_DISCORD_TOKEN", 0.9, r"[MNO][\w-]{23,25}\.[\w-]{6}\."),
    (GitHubTokenDetector, "SECRET_GITHUB_TOKEN", 0.95, r"gh[pousr]_"),
    (GitLabTokenDetector, "SECRET_GITLAB_TOKEN", 0.95, r"gl[a-z]{1,5}-|GR1348941"),
    (IbmCloudIamDetector, "SECRET", 0.8, r"(?i)cloud[-_]?iam|ibm"),
    (IbmCosHmacDetector, "SECRET", 0.8, r"(?i)secret[-_]?(?:access)?[-_]?key|key[-_]?id|access[-_]?key"),
    (JwtTokenDetector, "SECRET_JWT", 0.9, r"eyJ"),
    (MailchimpDetector, "SECRET_MAILCHIMP_KEY", 0.9, r"-us\d"),
    (NpmDetector, "SECRET_NPM_TOKEN", 0.9, r"_authToken"),
    (OpenAIDetector, "SECRET_OPENAI_KEY", 0.95, r"T3BlbkFJ"),
    (PypiTokenDetector, "SECRET_PYPI_TOKEN", 0.95, r"pypi-"),
    (SendGridDetector, "SECRET_SENDGRID_KEY", 0.95, r"SG\."),
    (SlackDetector, "SECRET_SLACK_TOKEN", 0.95, r"(?i)xox|hooks\.slack"),
    (SoftlayerDetector, "SECRET", 0.8, r"(?i)softlayer|\bsl[-_]?(?:api)?[-_]?(?:key|pwd|pass|token|user)"),
    (SquareOAuthDetector, "SECRET", 0.9, r"sq0csp-"),
    (StripeDetector, "SECRET_STRIPE_KEY", 0.95, r"k_live_"),
    (TelegramBotTokenDetector, "SECRET_TELEGRAM_TOKEN", 0.9, r"\d{8,10}:"),
    (TwilioKeyDetector, "SECRET_TWILIO_KEY", 0.9, r"AC[a-z0-9]{32}|SK[a-z0-9]{32}"),
)

_TOKEN = r"[A-Za-z0-9_\-]"  # noqa: S105 (a character class, not a password)
# Ours: (entity, pattern, score, gates). Group 1, when present, is the secret; otherwise the whole match.
# A pattern runs only when one of its gates (plain substrings; lower-case ones against the lower-cased
# text) occurs: `re` cannot skip ahead to a literal behind a look-behind.
_PATTERNS: tuple[tuple[str, re.Pattern[str], float, tuple[str, ...]], ...] = (
    (
        "SECRET_ANTHROPIC_KEY",
        re.compile(rf"(?<!{_TOKEN})sk-ant-(?:api|admin|oat)\d{{2}}-{_TOKEN}{{20,}}"),
        0.95,
        ("sk-ant-",),
    ),
    (
        "SECRET_OPENAI_KEY",
        re.compile(rf"(?<!{_TOKEN})sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?{_TOKEN}{{20,}}"),
        0.9,
        ("sk-",),
    ),
    ("SECRET_GOOGLE_API_KEY", re.compile(rf"(?<!{_TOKEN})AIza{_TOKEN}{{35}}(?!{_TOKEN})"), 0.95, ("AIza",)),
    ("SECRET_GOOGLE_OAUTH_TOKEN", re.compile(rf"(?<![\w.])ya29\.{_TOKEN}{{30,}}"), 0.9, ("ya29.",)),
    ("SECRET_HUGGINGFACE_TOKEN", re.compile(r"(?<![\w-])hf_[A-Za-z0-9]{30,40}(?![\w-])"), 0.95, ("hf_",)),
    ("SECRET_GITHUB_TOKEN", re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9_]{50,255}"), 0.95, ("github_pat_",)),
    (
        "SECRET_STRIPE_KEY",
        re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{16,99}"),
        0.95,
        ("k_live_", "k_test_"),
    ),
    ("SECRET_GROQ_KEY", re.compile(r"(?<![\w-])gsk_[A-Za-z0-9]{40,}"), 0.9, ("gsk_",)),
    ("SECRET_XAI_KEY", re.compile(r"(?<![\w-])xai-[A-Za-z0-9]{50,}"), 0.9, ("xai-",)),
    ("SECRET_REPLICATE_TOKEN", re.compile(r"(?<![\w-])r8_[A-Za-z0-9]{37}(?![\w-])"), 0.9, ("r8_",)),
    ("SECRET_DIGITALOCEAN_TOKEN", re.compile(r"(?<![\w-])do[opr]_v1_[a-f0-9]{64}"), 0.95, ("_v1_",)),
    ("SECRET_SHOPIFY_TOKEN", re.compile(r"(?<![\w-])shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"), 0.95, ("shp",)),
    ("SECRET_NPM_TOKEN", re.compile(r"(?<![\w-])npm_[A-Za-z0-9]{36}(?![\w-])"), 0.9, ("npm_",)),
    ("SECRET_SLACK_TOKEN", re.compile(r"(?<![\w-])xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,}"), 0.95, ("xapp-",)),
    (
        "SECRET_PRIVATE_KEY",
        re.compile(
            r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP |SSH2 ENCRYPTED )?PRIVATE KEY(?: BLOCK)?)-----"
            r"(?:[\s\S]{0,8192}?-----END \1-----|(?:[A-Za-z0-9+/=:\s-]|\\n){0,8192})"
        ),
        0.99,
        ("-----BEGIN",),
    ),
    (
        "SECRET",  # .env / shell assignments: API_KEY=…, export DB_PASSWORD="…"
        re.compile(
            r"(?m)^[ \t]*(?:export[ \t]+)?[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|ACCESS_KEY)"
            r"[A-Z0-9_]*[ \t]*=[ \t]*[\"']?([^\s\"'$`()\[\]{}]{8,})(?![(\[])"
        ),
        0.7,
        ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY"),
    ),
)
# Values that name a secret rather than being one.
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\*+|x{3,}|\.{3}|<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}|%\(?\w*\)?s|\$\w+|null|none|nil|true|false|"
    r"redacted|changeme|placeholder|dummy|example|your[\w-]*|os\.environ.*|process\.env.*|env\(.*)$"
)
_KEYWORD_ASSIGNMENT = re.compile(
    r"(?:pass|pwd|secret|key|contrase)\w*[\"'\]]{0,2}\s*(?:={1,3}|!==?|:=?|=>)\s*@?[\"'`]"
    r"|[\"'`]\s*[!=]={1,2}\s*\w*(?:pass|pwd|secret|key)"
)
# Could any plugin or pattern fire? Literals each needs (searched in the lower-cased text with `in`,
# which is far faster on 16 KB than one regex alternation), and, for the few without a literal
# (Discord, Telegram, Twilio tokens: all contain digits), a pattern tried only when a digit is present.
_CANDIDATE_LITERALS = (
    "a3t", "akia", "asia", "abia", "acca", "aws", "accountkey", "://", "cloudant", "ghp_", "gho_", "ghu_",
    "ghs_", "ghr_", "github_pat", "gr1348941", "ibm", "cloud_iam", "cloud-iam", "cloudiam", "eyj", "-us", "npm",
    "sk-", "pypi-", "sg.", "xox", "xapp", "hooks.slack", "softlayer", "sq0", "k_live", "k_test", "aiza",
    "ya29.", "hf_", "gsk_", "xai-", "r8_", "_v1_", "shp", "-----begin", "putty", "contrase", "sl_", "sl-",
)  # fmt: skip
# The same literals as one alternation: faster for the short texts of a stream's words and chunks (up
# to ~48 characters: 0.3 against 1.3 µs for 5 characters), slower beyond.
_CANDIDATE_LITERALS_SHORT = re.compile("|".join(map(re.escape, _CANDIDATE_LITERALS)))
# Keyword and assignment checks need a secret word and an assignment sign.
_CANDIDATE_WORDS = ("pass", "pwd", "secret", "key", "token", "access")
_CANDIDATE_DIGITS = re.compile(r"AKC|AP[\dA-F]|gl[a-z]{1,5}-|[MNO][\w-]{23,25}\.|\d{8,10}:|[AS][CK][a-z0-9]{32}")
_HAS_DIGIT = re.compile(r"\d")


def _widen(text: str, start: int, end: int, dots: bool) -> int:
    """The end of the token that starts the value (a yielded value can stop short of it)."""
    extra = "." if dots else ""
    while end < len(text) and (text[end].isalnum() or text[end] in "_-+/=" + extra):
        end += 1
    return end - 1 if dots and text[end - 1] == "." else end


def _locate(text: str, value: str) -> Iterator[int]:
    start = text.find(value)
    while start != -1:
        yield start
        start = text.find(value, start + len(value))


class SecretsDetector:
    """API keys, tokens, private keys and credentials; entity names start with `SECRET`.

    `entropy=True` adds detect-secrets' high-entropy string plugins (quoted base64/hex strings),
    reported as `SECRET_HIGH_ENTROPY`; `keywords=False` drops the `password = "…"` style checks.
    """

    def __init__(self, entropy: bool = False, keywords: bool = True) -> None:
        # Case-insensitive gates run on the lower-cased text: `re.IGNORECASE` is several times slower.
        self._plugins = [
            (cls(), entity, score, re.compile(gate.removeprefix("(?i)")), gate.startswith("(?i)"))
            for cls, entity, score, gate in _PLUGINS
        ]
        self._keyword = KeywordDetector() if keywords else None
        self._entropy: list[BasePlugin] = (
            [Base64HighEntropyString(limit=4.5), HexHighEntropyString(limit=3.0)] if entropy else []
        )
        entities = {e for _, e, _, _ in _PLUGINS} | {e for e, _, _, _ in _PATTERNS}
        if keywords:
            entities.add("SECRET")
        if entropy:
            entities.add("SECRET_HIGH_ENTROPY")
        self._entities = frozenset(entities)

    @property
    def name(self) -> str:
        """Detector name in findings and audit entries."""
        return "secrets"

    @property
    def entities(self) -> frozenset[str]:
        """The entity types this instance reports."""
        return self._entities

    def could_match(self, text: str) -> bool:
        """Cheap pre-check: False proves `scan(text)` finds nothing (entropy checks need a quote)."""
        if self._entropy and ('"' in text or "'" in text):
            return True
        lower = text.lower()
        if len(lower) <= 48:
            if _CANDIDATE_LITERALS_SHORT.search(lower) is not None:
                return True
        elif any(literal in lower for literal in _CANDIDATE_LITERALS):
            return True
        if ("=" in text or ":" in text) and any(word in lower for word in _CANDIDATE_WORDS):
            return True
        has_digit = any(ch in text for ch in "0123456789") if text.isascii() else _HAS_DIGIT.search(text) is not None
        return has_digit and _CANDIDATE_DIGITS.search(text) is not None

    def scan(self, text: str) -> list[Finding]:
        """Every secret in `text`, each span the secret value itself."""
        if not self.could_match(text):
            return []
        found: list[Finding] = []
        lower = text.lower()
        for plugin, entity, score, gate, on_lower in self._plugins:
            if gate.search(lower if on_lower else text) is None:
                continue
            for value in {v.strip(" \t\r\n\"'=:") for v in plugin.analyze_string(text)}:
                self._add_value(found, text, value, entity, score, widen=True)
        for entity, pattern, score, gates in _PATTERNS:
            if not any(g in (lower if g.islower() else text) for g in gates):
                continue
            for m in pattern.finditer(text):
                group = 1 if pattern.groups and entity == "SECRET" else 0
                if group and _PLACEHOLDER.match(m.group(1)):
                    continue
                if entity == "SECRET_OPENAI_KEY" and not _mixed(m.group()):
                    continue
                found.append(Finding(entity, m.start(group), m.end(group), score, self.name))
        if self._keyword is not None or self._entropy:
            self._scan_lines(found, text, lower)
        best: dict[tuple[str, int, int], Finding] = {}  # plugins and our patterns may both find one key
        for f in found:
            key = (f.entity, f.start, f.end)
            if key not in best or f.score > best[key].score:
                best[key] = f
        return list(best.values())

    def _scan_lines(self, found: list[Finding], text: str, lower: str) -> None:
        if self._keyword is not None:
            # detect-secrets' keyword regexes cost ~1.5 ms per KB: run them only in a window of the
            # line around each `keyword … = "` / `keyword: "` assignment.
            for m in _KEYWORD_ASSIGNMENT.finditer(lower):
                start = max(text.rfind("\n", 0, m.start()) + 1, m.start() - 40)
                end = text.find("\n", m.end())
                end = min(len(text) if end == -1 else end, m.end() + 256)
                window = text[start:end]
                for value in set(self._keyword.analyze_string(window)):
                    if len(value) >= 4 and not _PLACEHOLDER.match(value):
                        self._add_value(found, window, value, "SECRET", 0.6, widen=False, offset=start)
        if self._entropy:
            offset = 0
            for line in text.splitlines(keepends=True):
                for plugin in self._entropy:
                    for value in set(plugin.analyze_string(line)):
                        if _entropy_ok(plugin, value):
                            self._add_value(found, line, value, "SECRET_HIGH_ENTROPY", 0.5, widen=False, offset=offset)
                offset += len(line)

    def _add_value(
        self,
        found: list[Finding],
        text: str,
        value: str,
        entity: str,
        score: float,
        widen: bool,
        offset: int = 0,
    ) -> None:
        if not value:
            return
        for start in _locate(text, value):
            end = _widen(text, start, start + len(value), entity == "SECRET_JWT") if widen else start + len(value)
            found.append(Finding(entity, offset + start, offset + end, score, self.name))


def _mixed(value: str) -> bool:
    """A random token mixes digits, upper and lower case; a word-like slug ("sk-learn-…") does not."""
    return any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(c.islower() for c in value)


def _entropy_ok(plugin: BasePlugin, value: str) -> bool:
    calculate: Callable[[str], float] = plugin.calculate_shannon_entropy  # type: ignore[attr-defined]
    limit: float = plugin.entropy_limit  # type: ignore[attr-defined]
    return len(value) >= 20 and calculate(value) > limit
