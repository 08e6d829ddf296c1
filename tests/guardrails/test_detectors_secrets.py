"""SecretsDetector: each credential type found with the secret itself as the span; look-alikes ignored."""

from __future__ import annotations

import pytest

from interlock.guardrails.detectors.secrets import SecretsDetector

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA PRIVATE KEY-----"
)

CASES = [
    ("SECRET_AWS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET_GITHUB_TOKEN", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("SECRET_GITHUB_TOKEN", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"),
    ("SECRET_SLACK_TOKEN", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("SECRET_STRIPE_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("SECRET_STRIPE_KEY", "sk_test_51H8xYzAbCdEfGhIjKlMnOpQr"),
    ("SECRET_OPENAI_KEY", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34Yz56_abcDEF-ghiJKL"),
    ("SECRET_OPENAI_KEY", "sk-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34"),
    ("SECRET_ANTHROPIC_KEY", "sk-ant-api03-" + "Ab12Cd34Ef56Gh78Ij90" * 5 + "-AA"),
    ("SECRET_GOOGLE_API_KEY", "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
    ("SECRET_HUGGINGFACE_TOKEN", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678"),
    ("SECRET_JWT", JWT),
    ("SECRET_PRIVATE_KEY", PEM),
    ("SECRET_SENDGRID_KEY", "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
]


@pytest.mark.parametrize(("entity", "secret"), CASES)
def test_secret_found_with_its_exact_span(entity: str, secret: str) -> None:
    text = f"Here is my config, can you see why it fails?\n  key: {secret}\nThanks!"
    findings = [f for f in SecretsDetector().scan(text) if f.entity == entity]
    assert [text[f.start : f.end] for f in findings] == [secret]


def test_assignments_and_urls_report_only_the_value() -> None:
    text = (
        'db_password = "Tr0ub4dor&3x"\nexport API_KEY=9f8e7d6c5b4a39281706\nurl = "postgres://app:S3cretPw@db:5432/x"'
    )
    values = {text[f.start : f.end] for f in SecretsDetector().scan(text)}
    assert values == {"Tr0ub4dor&3x", "9f8e7d6c5b4a39281706", "S3cretPw"}


@pytest.mark.parametrize(
    "text",
    [
        "Use the sk-learn-tutorial-for-beginners page to start.",
        "password = os.environ['DB_PASSWORD']\ntoken = get_token(user)\napi_key = settings.api_key",
        'password = "<your password here>"\nsecret = "${SECRET}"\nAPI_KEY=changeme',
        "The key takeaway: tokens are cheap, secrets are not.",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b and uuid 123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_look_alikes_do_not_fire(text: str) -> None:
    assert SecretsDetector().scan(text) == []


def test_entropy_plugins_are_opt_in() -> None:
    text = 'value = "q8Zr2LmX9vTp4KsW7nBy3HcJ6dFg1AeR"'
    assert SecretsDetector(keywords=False).scan(text) == []
    found = SecretsDetector(entropy=True, keywords=False).scan(text)
    assert [f.entity for f in found] == ["SECRET_HIGH_ENTROPY"]
    assert "SECRET_HIGH_ENTROPY" in SecretsDetector(entropy=True).entities


def test_fast_path_and_repr() -> None:
    detector = SecretsDetector()
    assert not detector.could_match("What is the capital of France? Answer briefly.")
    findings = detector.scan("token: AKIAIOSFODNN7EXAMPLE")
    assert findings and "AKIAIOSFODNN7EXAMPLE" not in repr(findings)
