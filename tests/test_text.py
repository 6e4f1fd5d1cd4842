import pytest

from s2s.text import sentences, speakable, spoken_form


def test_speakable_strips_markdown_emoji_and_code() -> None:
    raw = "## Answer\n**Paris** is the _capital_ 🇫🇷😀 of `France`. See [the map](http://x.y/z).\n- one\n- two"
    out = speakable(raw)
    assert out == "Answer. Paris is the capital of France. See the map. one. two"


def test_speakable_keeps_plain_text_and_sayable_symbols() -> None:
    assert speakable("It costs $5, about 20% less.") == "It costs $5, about 20% less."


def test_speakable_drops_code_blocks() -> None:
    assert speakable("Try this:\n```python\nprint(1)\n```\nDone.") == "Try this: Done."


def test_sentences_split_on_end_marks() -> None:
    assert sentences("Hello there! How are you? Fine.") == ["Hello there!", "How are you?", "Fine."]


def test_sentences_split_long_runs() -> None:
    long = ", ".join(["word"] * 200)
    parts = sentences(long, max_chars=100)
    assert len(parts) > 5
    assert all(len(p) <= 100 for p in parts)
    assert " ".join(parts).replace(" ", "") == long.replace(" ", "")


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("It is 0 °C today.", "It is zero degrees Celsius today."),
        ("It is 0C outside.", "It is zero degrees Celsius outside."),
        ("It is -5°F.", "It is minus five degrees Fahrenheit."),
        ("The shop is 5 km away.", "The shop is five kilometres away."),
        ("It weighs 1 kg.", "It weighs one kilogram."),
        ("Drive at 60 km/h.", "Drive at sixty kilometres per hour."),
        ("Dr. Lee met Mr. Smith in 1999.", "Doctor Lee met Mister Smith in nineteen ninety-nine."),
        ("Bring fruit, e.g. apples, pears, etc.", "Bring fruit, for example apples, pears, et cetera."),
        ("It costs $5.99.", "It costs five dollars and ninety-nine cents."),
        ("It costs €1.", "It costs one euro."),
        ("About 12% of 1,000 people.", "About twelve percent of one thousand people."),
        ("The 21st century.", "The twenty-first century."),
        ("Pi is 3.14.", "Pi is three point one four."),
        ("Salt & pepper.", "Salt and pepper."),
        ("2 + 2 = 4", "two plus two equals four"),
        # Left as written: versions and addresses, and anything without a number or symbol.
        ("Update to version 2.0.1 at 10.0.0.1.", "Update to version 2.0.1 at 10.0.0.1."),
        ("The capital of France is Paris.", "The capital of France is Paris."),
    ],
)
def test_the_voice_is_given_the_spoken_form(written: str, said: str) -> None:
    assert spoken_form(written) == said


def test_a_temperature_survives_cleaning_for_the_voice() -> None:
    # speakable keeps the degree sign, so spoken_form can still read the unit.
    assert spoken_form(speakable("**Today:** 0 °C 🥶")) == "Today: zero degrees Celsius"
