"""Debian's chromium, headless, driven through its own chromedriver by selenium.

Nothing is downloaded: selenium is pointed at the driver and browser the system installed
(`.ci/run` installs them with apt-get when they are missing), so its driver manager never
reaches for the network.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # selenium itself is imported late, so that its absence can skip cleanly
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking flags a headless chromium on a machine with no internet
# waits on refused connections (component updates, sync) and can hang the page load.
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def missing_browser() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    if not CHROMIUM.exists():
        return (
            f"no browser: {CHROMIUM} is missing (`apt-get install chromium chromium-driver`; "
            ".ci/run installs both when apt-get can reach Debian's mirrors)"
        )
    if not CHROMEDRIVER.exists():
        return f"no browser driver: {CHROMEDRIVER} is missing (`apt-get install chromium-driver`)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra: `pip install -e '.[dev]'`)"
    return None


@contextmanager
def headless_chromium(width: int = 1360, height: int = 1000) -> Iterator[WebDriver]:
    """A fresh headless chromium (its own profile directory, removed afterwards)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="keel-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
