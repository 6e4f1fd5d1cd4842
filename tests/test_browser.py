"""The browser page at `/`, driven in headless Chromium against the running service (the four
services as processes on the CPU models, a private Redis, API keys on): a question spoken into a
fake microphone, then one sent as a file, in one conversation.

Needs Debian's `chromium` and `chromium-driver` (nothing is downloaded at test time). Without
them the browser tests are skipped, unless `S2S_REQUIRE_BROWSER=1` (CI), which makes that a
failure. `S2S_SCREENSHOT=1` saves what a phone shows to docs/page.png."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
from support import ROOT, Stack, running_stack

pytestmark = pytest.mark.e2e

KEY = "sk-browser-test"
SAID = "What is the capital of France?"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STATIC = ROOT / "api" / "s2s_api" / "static"
SCREENSHOT = ROOT / "docs" / "page.png"
#: A phone's screen, in CSS pixels.
PHONE = (412, 915)
#: Recognising, answering and speaking on the CPU models, with room for a slow machine.
TURN_TIMEOUT_S = 180
#: Every control the page must have.
TEST_IDS = ("record", "stop", "file", "status", "transcript", "reply", "player", "turns", "api-key")

T = TypeVar("T")

COUNT_SCHEDULED = """
window.s2sScheduled = 0;
const start = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (...args) {
  window.s2sScheduled += this.buffer ? this.buffer.duration : 0;
  return start.apply(this, args);
};
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("browser"), {"API_KEYS": KEY}) as s:
        yield s


@pytest.fixture(scope="module")
def microphone(question: Path) -> tuple[Path, float]:
    """What the fake microphone plays (in a loop): the question at 48 kHz, with silence around it
    so that a recording of the file's length holds the whole question once. Its length in s."""
    samples, rate = sf.read(question, dtype="float32")
    mic_rate = 48000
    voice = soxr.resample(samples, rate, mic_rate)
    padded = np.concatenate(
        [np.zeros(int(0.5 * mic_rate), np.float32), voice, np.zeros(int(1.5 * mic_rate), np.float32)]
    )
    path = question.with_name("microphone.wav")
    sf.write(path, padded, mic_rate, subtype="PCM_16")
    return path, len(padded) / mic_rate


def _browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
    if os.environ.get("S2S_REQUIRE_BROWSER") == "1":
        pytest.fail(f"S2S_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver(microphone: tuple[Path, float]) -> Iterator[Any]:
    _browser_or_skip()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone[0]}",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    browser = webdriver.Chrome(options=options, service=service)
    try:
        yield browser
    finally:
        browser.quit()


# ------------------------------------------------------------------ without a browser


def test_the_page_loads_without_a_key_and_only_from_its_own_origin(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        csp = [d.strip() for d in page.headers["content-security-policy"].split(";")]
        assert {"default-src 'self'", "media-src 'self' blob:", "connect-src 'self'"} <= set(csp)
        assert "no-cache" in page.headers["cache-control"]
        for testid in TEST_IDS:
            assert f'data-testid="{testid}"' in page.text, testid
        # Every file the page names loads without a key too; the API itself still wants one.
        for name in re.findall(r'(?:src|href)="/static/([^"]+)"', page.text):
            r = http.get(f"/static/{name}")
            assert r.status_code == 200 and "content-security-policy" in r.headers, name
        assert http.get("/static/page.py").status_code == 404
        assert http.get("/v1/voices").status_code == 401
        assert http.get("/v1/voices", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_page_names_nothing_from_another_origin() -> None:
    files = [p for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css", ".svg")]
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    other_origin = re.compile(
        r"""(?:\b(?:src|href|action)\s*=\s*["']?|url\(\s*["']?|\bfrom\s+["']|import\(\s*["']|"""
        r"""fetch\(\s*["'`]|addModule\(\s*["'`])\s*(?:[a-z][a-z0-9+.-]*:)?//""",
        re.IGNORECASE,
    )
    for path in files:
        text = path.read_text()
        assert not other_origin.search(text), f"{path.name}: {other_origin.search(text)}"
        assert "@import" not in text and "fonts.googleapis" not in text, path.name


def test_the_page_ships_in_the_wheel(tmp_path: Path) -> None:
    """A non-editable install (the Docker image's) has the page's files."""
    src = tmp_path / "api"
    subprocess.run(["cp", "-r", str(ROOT / "api"), str(src)], check=True)
    for leftover in ("build", "s2s_api.egg-info"):
        subprocess.run(["rm", "-rf", str(src / leftover)], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("s2s_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    from s2s_api.routes.page import STATIC as SERVED

    for name in ["index.html", *SERVED]:
        assert f"s2s_api/static/{name}" in names, name


# ------------------------------------------------------------------ in the browser


def _by(driver: Any, testid: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def _wait(driver: Any, what: Callable[[Any], T], timeout: float, message: str) -> T:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        result: T = WebDriverWait(driver, timeout, poll_frequency=0.2).until(what)
    except TimeoutException:
        status = _by(driver, "status").text
        raise AssertionError(f"{message} (status: {status!r})") from None
    return result


def _turn_ends(driver: Any, stack: Stack) -> str:
    """Waits for the turn to end; its status line, which must say it completed."""
    _wait(
        driver,
        lambda d: re.search(r"completed|failed|error", _by(d, "status").text, re.IGNORECASE),
        TURN_TIMEOUT_S,
        "the turn did not end",
    )
    status: str = _by(driver, "status").text
    assert "completed" in status.lower(), f"{status}\n{stack.logs()}"
    return status


def _turns(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [li.text for li in _by(driver, "turns").find_elements(By.CSS_SELECTOR, "li")]


def _player_duration(driver: Any) -> float:
    duration = driver.execute_script(
        "const a = arguments[0]; return a.readyState >= 1 && isFinite(a.duration) ? a.duration : 0;",
        _by(driver, "player"),
    )
    return float(duration or 0)


def _console_errors(driver: Any) -> list[str]:
    """Errors the page logged, less the 401s it gets before the key is entered."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and " 401 " not in e["message"]]


def _screenshot(driver: Any) -> None:
    """The whole page as a phone shows it (2x pixels, no scroll bar), to docs/page.png."""
    driver.execute_script("window.scrollTo(0, 0); document.activeElement.blur();")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": PHONE[0], "height": height, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": True})
    try:
        time.sleep(0.3)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": False})
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _record(driver: Any, seconds: float) -> None:
    _wait(driver, lambda d: _by(d, "record").is_enabled(), 30, "the record button stayed disabled")
    _by(driver, "record").click()
    _wait(driver, lambda d: _by(d, "stop").is_enabled(), 10, "recording did not start")
    time.sleep(seconds)
    _by(driver, "stop").click()


def _check_spoken_turn(driver: Any, stack: Stack) -> None:
    _turn_ends(driver, stack)
    transcript = _by(driver, "transcript").text.lower()
    assert "capital" in transcript and "france" in transcript, transcript
    assert _by(driver, "reply").text.strip()
    _wait(driver, lambda d: _player_duration(d) > 0, 10, "the player has no reply audio")
    assert _by(driver, "player").get_attribute("src").startswith("blob:")


def test_a_spoken_turn_then_a_file_in_the_same_conversation(
    driver: Any, stack: Stack, microphone: tuple[Path, float], question: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    # Counts the reply audio the page schedules with the Web Audio API.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SCHEDULED})
    driver.get(stack.url + "/")
    # Keys are on: the page says so until one is entered.
    _wait(driver, lambda d: "API key" in _by(d, "status").text, 15, "no word about the API key")
    _by(driver, "api-key").send_keys(KEY + Keys.ENTER)
    _wait(
        driver,
        lambda d: d.execute_script("return document.getElementById('voice').options.length") > 1,
        15,
        "the voices were not listed once the key was entered",
    )

    _record(driver, microphone[1] + 0.3)
    _check_spoken_turn(driver, stack)
    assert len(_turns(driver)) == 1
    # The reply was played from the stream as it came (the Web Audio API, the page's only use of
    # it), all of it: as long as the whole reply the player got afterwards.
    scheduled = driver.execute_script("return window.s2sScheduled")
    assert scheduled == pytest.approx(_player_duration(driver), abs=0.05)

    _wait(driver, lambda d: _by(d, "file").is_enabled(), 10, "the file input stayed disabled")
    _by(driver, "file").send_keys(str(question))
    _wait(driver, lambda d: len(_turns(d)) == 2, TURN_TIMEOUT_S, "the second turn was not listed")
    _turn_ends(driver, stack)
    transcript = _by(driver, "transcript").text.lower()
    assert "capital" in transcript and "france" in transcript, transcript
    assert _by(driver, "reply").text.strip()
    turns = _turns(driver)
    assert all("capital" in t.lower() for t in turns), turns
    _wait(driver, lambda d: _player_duration(d) > 0, 10, "the player has no reply audio")
    assert not _console_errors(driver)

    if os.environ.get("S2S_SCREENSHOT") == "1":
        _screenshot(driver)


def test_a_reload_keeps_the_conversation_and_the_wav_recorder_works(
    driver: Any, stack: Stack, microphone: tuple[Path, float]
) -> None:
    """The fallback for browsers whose MediaRecorder makes neither WebM nor Ogg Opus (Safari):
    the page encodes WAV itself. The key and the conversation outlive a reload of the tab: this
    test goes on with the tab (and conversation) of the test before."""
    driver.get(stack.url + "/?recorder=wav")
    assert _by(driver, "api-key").get_attribute("value") == KEY
    _wait(driver, lambda d: len(_turns(d)) == 2, 15, "the conversation's turns were not listed again")

    _record(driver, microphone[1] + 0.3)
    _check_spoken_turn(driver, stack)
    assert len(_turns(driver)) == 3

    driver.find_element("id", "new-conversation").click()
    assert _turns(driver) == [] and not _by(driver, "transcript").text
    assert not _console_errors(driver)


def test_an_error_shows_the_apis_own_words(driver: Any, stack: Stack, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not a recording\n")
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        r = http.post("/v1/jobs", files={"audio": ("notes.wav", not_audio.read_bytes(), "audio/wav")})
    assert r.status_code == 415
    driver.get(stack.url + "/")
    _by(driver, "api-key").clear()
    _by(driver, "api-key").send_keys(KEY + Keys.ENTER)
    _wait(driver, lambda d: _by(d, "status").text == "Ready.", 15, "the key was not taken")
    _by(driver, "file").send_keys(str(not_audio))
    _wait(driver, lambda d: "Error" in _by(d, "status").text, 30, "no error was shown")
    assert _by(driver, "status").text == f"Error: {r.json()['detail']}"
    assert _by(driver, "status").get_attribute("role") == "status"
    assert _by(driver, "record").is_enabled() and _turns(driver) == []
