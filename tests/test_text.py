from s2s.text import sentences, speakable


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
