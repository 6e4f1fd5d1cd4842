"""Text that a voice can say: what the LLM writes is cleaned here, split for synthesis, and put in
spoken form for the voice; and how much text a prompt may carry."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from num2words import num2words  # type: ignore[import-untyped]

_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(\S(?:.*?\S)?)\1")
_LEFTOVER_MARKS = re.compile(r"[*_#`~|<>\[\]{}]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_SAYABLE_SYMBOLS = set("%$€£&+=@°")


def speakable(text: str) -> str:
    """Remove what a TTS would read out as noise: markdown, code, links, emoji and symbols."""
    text = _CODE_BLOCK.sub(" ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    for _ in range(2):  # nested emphasis such as ***x***
        text = _EMPHASIS.sub(r"\2", text)
    text = _LEFTOVER_MARKS.sub(" ", text)
    text = "".join(ch for ch in text if _sayable(ch))
    # A list's items become sentences rather than one run-on line.
    text = re.sub(r"([^.!?:;,\s])\s*\n+\s*", r"\1. ", text.strip())
    return _SPACES.sub(" ", text).strip()


def _sayable(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat[0] in "LNZ" or ch in "\n":
        return True
    if cat[0] == "P":
        return True
    return ch in _SAYABLE_SYMBOLS


def sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split into sentences, and split very long ones at commas or spaces, so each chunk of
    audio is short enough to be synthesised (and later streamed) on its own."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            cut = sentence.rfind(", ", 0, max_chars)
            cut = cut + 1 if cut > 0 else sentence.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is, erring high (English runs about four characters a
    token); good enough to bound a prompt without loading each model's tokenizer here."""
    return len(text) // 3 + 1


def recent_messages(messages: Sequence[tuple[str, str]], max_tokens: int) -> list[tuple[str, str]]:
    """The most recent messages that fit in about `max_tokens`, oldest first."""
    kept: list[tuple[str, str]] = []
    used = 0
    for role, text in reversed(messages):
        used += estimate_tokens(text)
        if used > max_tokens:
            break
        kept.append((role, text))
    return kept[::-1]


# ---------------------------------------------------------------- spoken form
# What the voice is given, not what the user reads: numbers, units, symbols and abbreviations
# written out ("0 °C" -> "zero degrees Celsius"). Numbers are put into words by num2words; the
# rest is a short list, since a voice reads anything else as it is written.

#: Abbreviations that end in a dot, as the voice should say them.
_ABBREVIATIONS = {
    "Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor",
    "Jr.": "Junior", "Sr.": "Senior", "e.g.": "for example", "i.e.": "that is",
    "etc.": "et cetera", "vs.": "versus", "approx.": "approximately", "Mt.": "Mount",
}  # fmt: skip
#: Units after a number: (singular, plural).
_UNITS = {
    "km/h": ("kilometre per hour", "kilometres per hour"), "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometre", "kilometres"), "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "m": ("metre", "metres"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"), "ml": ("millilitre", "millilitres"), "l": ("litre", "litres"),
    "L": ("litre", "litres"), "mi": ("mile", "miles"), "ft": ("foot", "feet"), "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"), "h": ("hour", "hours"), "hrs": ("hour", "hours"),
    "min": ("minute", "minutes"), "s": ("second", "seconds"), "ms": ("millisecond", "milliseconds"),
    "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "Hz": ("hertz", "hertz"), "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"), "W": ("watt", "watts"),
    "kW": ("kilowatt", "kilowatts"), "V": ("volt", "volts"),
}  # fmt: skip
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}  # fmt: skip
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at "}

_NUMBER = r"-?\d+(?:,\d{3})*(?:\.\d+)?"
_ABBREVIATION = re.compile("|".join(re.escape(a) for a in sorted(_ABBREVIATIONS, key=len, reverse=True)))
_TEMPERATURE = re.compile(rf"({_NUMBER})\s*°\s*([CF])\b|({_NUMBER})([CF])\b")
_DEGREES = re.compile(rf"({_NUMBER})\s*°")
_MONEY = re.compile(rf"([$€£])\s?({_NUMBER})")
_PERCENT = re.compile(rf"({_NUMBER})\s*%")
_UNIT = re.compile(
    rf"({_NUMBER})\s?({'|'.join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))})(?![\w/])"
)
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_YEAR = re.compile(r"\b(in|since|until|by|from|of|year)\s+(1[1-9]\d\d|20\d\d)\b", re.I)
# Not inside a version or an address ("2.0.1", "10.0.0.1"): those are read as written.
_BARE_NUMBER = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w]|\.\d)")


def _number(text: str) -> str:
    value = float(text.replace(",", ""))
    return str(num2words(int(value) if value.is_integer() and "." not in text else value))


def _counted(text: str, forms: tuple[str, str]) -> str:
    return f"{_number(text)} {forms[0] if float(text.replace(',', '')) == 1 else forms[1]}"


def _money(m: re.Match[str]) -> str:
    one, many, small_one, small_many = _CURRENCIES[m.group(1)]
    whole, _, cents = m.group(2).replace(",", "").partition(".")
    said = _counted(whole, (one, many))
    if cents and int(cents):
        said += f" and {_counted(cents[:2].ljust(2, '0'), (small_one, small_many))}"
    return said


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # The abbreviation's dot may also end the sentence.
    (_ABBREVIATION, lambda m: _ABBREVIATIONS[m.group(0)] + ("." if m.end() == len(m.string) else "")),
    (_TEMPERATURE, lambda m: f"{_number(m.group(1) or m.group(3))} degrees "
                             f"{'Celsius' if (m.group(2) or m.group(4)) == 'C' else 'Fahrenheit'}"),
    (_DEGREES, lambda m: f"{_number(m.group(1))} degrees"),
    (_MONEY, _money),
    (_PERCENT, lambda m: f"{_number(m.group(1))} percent"),
    (_UNIT, lambda m: _counted(m.group(1), _UNITS[m.group(2)])),
    (_ORDINAL, lambda m: str(num2words(int(m.group(1)), to="ordinal"))),
    (_YEAR, lambda m: f"{m.group(1)} {num2words(int(m.group(2)), to='year')}"),
    (_BARE_NUMBER, lambda m: _number(m.group(0))),
]  # fmt: skip


def spoken_form(text: str) -> str:
    """`text` as a voice should say it: "It is 0 °C and 5 km away, says Dr. Lee." -> "It is zero
    degrees Celsius and five kilometres away, says Doctor Lee." """
    for pattern, say in _RULES:
        text = pattern.sub(say, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    return _SPACES.sub(" ", text).strip()
