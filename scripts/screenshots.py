"""Screenshots of every app page with headless Chromium: ``python scripts/screenshots.py OUT_DIR``.

Starts ``streamlit run app.py`` on a free local port (with the current ``JETVIZ_DATA`` / ``JETVIZ_CHECKPOINTS``,
or ``--data`` / ``--checkpoints``), opens each page, waits until its script has finished, and writes
``OUT_DIR/<page>.png``. On the Step-sweep page it presses "Run sweep" first. Needs Debian's ``chromium`` and
``chromium-driver`` (``apt-get install chromium chromium-driver``). ``tests/test_browser.py`` drives the same
functions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PAGES = {"generate": "", "physics": "physics", "step-sweep": "step-sweep", "dataset": "dataset", "models": "models"}
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars")
DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"
EXCEPTION = "[data-testid='stException']"


def browser_missing() -> str | None:
    """Why the browser tools are unusable here, or ``None``."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "chromedriver not found on PATH (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(env: dict[str, str] | None = None, timeout: float = 60.0, log: Path | None = None) -> Iterator[str]:
    """Run the app on a free port; yields its base URL and stops the server on exit."""
    port = free_port()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode} (see {log or 'its output'})")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() - t0 > timeout:
                raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@contextlib.contextmanager
def driver(width: int = 1400, height: int = 1800) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        yield d
    finally:
        d.quit()


def wait_done(d, timeout: float = 60.0) -> None:
    """Wait until the page's script has run to the end (title rendered and script state notRunning)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(d, timeout, poll_frequency=0.2)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "h1")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, DONE)))
    time.sleep(0.5)  # let plotly finish drawing
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, DONE)))


def click_button(d, text: str, timeout: float = 120.0) -> bool:
    """Click the first button whose label contains ``text`` and wait for the rerun; False if none."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for b in d.find_elements(By.CSS_SELECTOR, "button"):
        if text in b.text:
            b.click()
            try:  # the rerun may start (and even end) before we look
                WebDriverWait(d, 3, poll_frequency=0.1).until(
                    lambda x: not x.find_elements(By.CSS_SELECTOR, DONE))
            except TimeoutException:
                pass
            wait_done(d, timeout)
            return True
    return False


def capture(d, url: str, out: Path, press: str | None = None, timeout: float = 60.0) -> list[str]:
    """Open ``url``, optionally press a button, save a PNG; returns the texts of any exception boxes."""
    from selenium.webdriver.common.by import By

    d.get(url)
    wait_done(d, timeout)
    if press:
        click_button(d, press, timeout)
    out.parent.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(out))
    return [e.text for e in d.find_elements(By.CSS_SELECTOR, EXCEPTION)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder for the PNGs")
    p.add_argument("--data", default=None, help="JETVIZ_DATA for the app (folder holding sample/)")
    p.add_argument("--checkpoints", default=None, help="JETVIZ_CHECKPOINTS for the app")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1800)
    args = p.parse_args(argv)
    why = browser_missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    env = {k: v for k, v in (("JETVIZ_DATA", args.data), ("JETVIZ_CHECKPOINTS", args.checkpoints)) if v}
    problems = 0
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(env, log=args.out / "streamlit.log") as url, driver(args.width, args.height) as d:
        for name, path in PAGES.items():
            errors = capture(d, f"{url}/{path}", args.out / f"{name}.png",
                             press="Run sweep" if name == "step-sweep" else None, timeout=300)
            print(f"{name}: {args.out / f'{name}.png'}" + (f"  EXCEPTION: {errors}" if errors else ""))
            problems += bool(errors)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
