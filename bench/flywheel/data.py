"""Invoices and support tickets with known fields (vendor, date, amount, currency), generated with a seed.

Each document is written in one of several layouts, with the date in one of several spellings ("March 5,
2024", "5 March 2024", "05.03.2024", "2024-03-05") and the amount with a symbol or a code and thousands
separators, so the answer is a normalisation, not a copy: date as YYYY-MM-DD, amount as a number with two
decimals, currency as its ISO code. The same seed gives the same documents on every run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from faker import Faker

SYSTEM = "Reply with JSON: vendor, date (YYYY-MM-DD), amount (0.00), currency (ISO code)."
FIELDS = ("vendor", "date", "amount", "currency")
_CURRENCIES = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "SEK": "SEK "}


@dataclass(frozen=True)
class Document:
    """A generated text and the fields a correct extraction returns."""

    text: str
    fields: dict[str, str]

    def answer(self) -> str:
        """The teacher's answer: the fields as compact JSON."""
        return json.dumps(self.fields)

    def messages(self) -> list[dict[str, str]]:
        """The request's messages (system instruction, then the document)."""
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.text}]

    def example(self) -> dict[str, Any]:
        """An OpenAI fine-tuning line: the request and the teacher's answer."""
        return {"messages": [*self.messages(), {"role": "assistant", "content": self.answer()}]}


def _spell_date(d: date, rng: random.Random) -> str:
    month = d.strftime("%B")
    return rng.choice(
        [f"{month} {d.day}, {d.year}", f"{d.day} {month} {d.year}", d.strftime("%d.%m.%Y"), d.isoformat()]
    )


def _spell_amount(amount: float, code: str, rng: random.Random) -> str:
    grouped = f"{amount:,.2f}"
    symbol = _CURRENCIES[code]
    return rng.choice([f"{symbol}{grouped}", f"{grouped} {code}", f"{code} {grouped}"])


def generate(n: int, seed: int) -> list[Document]:
    """`n` documents, the same for the same seed."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    start = date(2022, 1, 1)
    docs = []
    for i in range(n):
        vendor = fake.company()
        when = start + timedelta(days=rng.randrange(3 * 365))
        code = rng.choice(list(_CURRENCIES))
        amount = round(rng.uniform(5, 20_000), 0 if code == "JPY" else 2)
        spelled_date, spelled_amount = _spell_date(when, rng), _spell_amount(amount, code, rng)
        number = f"{rng.choice(['INV', 'A', 'No. '])}{rng.randrange(1000, 99999)}"
        customer = fake.name()
        layout = i % 3
        if layout == 0:
            text = (
                f"INVOICE {number}\nFrom: {vendor}\nBill to: {customer}\nDate: {spelled_date}\n"
                f"Total due: {spelled_amount}"
            )
        elif layout == 1:
            text = (
                f"Hi support, I was charged {spelled_amount} by {vendor} on {spelled_date} "
                f"(ref {number}) and I don't recognise it. Thanks, {customer}"
            )
        else:
            text = f"{vendor} - receipt {number}. Issued {spelled_date} to {customer}. Amount paid: {spelled_amount}."
        fields = {"vendor": vendor, "date": when.isoformat(), "amount": f"{amount:.2f}", "currency": code}
        docs.append(Document(text, fields))
    return docs


def split(docs: list[Document], eval_share: float, seed: int) -> tuple[list[Document], list[Document]]:
    """Train and held-out eval documents, shuffled reproducibly."""
    order = list(range(len(docs)))
    random.Random(seed + 1).shuffle(order)
    cut = round(len(docs) * (1 - eval_share))
    return [docs[i] for i in order[:cut]], [docs[i] for i in order[cut:]]


def parse_fields(text: str) -> dict[str, str]:
    """The fields a model answered, normalised for comparison (missing or unparsable: empty)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if start >= 0 else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    out = {}
    for key in FIELDS:
        value = data.get(key)
        if value is None:
            out[key] = ""
        elif key == "amount":
            try:
                out[key] = f"{float(str(value).replace(',', '')):.2f}"
            except ValueError:
                out[key] = str(value)
        elif key == "currency":
            out[key] = str(value).strip().upper()
        else:
            out[key] = str(value).strip()
    return out
