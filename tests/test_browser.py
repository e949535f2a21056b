"""A real browser against a running server: every page opens in headless Chromium, finishes its script
and shows no exception box; a screenshot per page goes to artifacts/screenshots/ (gitignored).

The server runs with ``JETVIZ_DATA`` / ``JETVIZ_CHECKPOINTS`` pointing at tiny fixtures (see test_app.py). This
also covers what AppTest cannot: the real server re-runs the entrypoint, so the shared sidebar survives a
rerun triggered on a page.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "artifacts" / "screenshots"


def _screens():
    spec = importlib.util.spec_from_file_location("jetviz_screenshots", REPO / "scripts" / "screenshots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


screens = _screens()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(bool(screens.browser_missing()), reason=f"browser test: {screens.browser_missing()}")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_app import make_app_env

    env = make_app_env(tmp_path_factory.mktemp("browser"))
    log = tmp_path_factory.mktemp("log") / "streamlit.log"
    with screens.serve({"JETVIZ_DATA": str(env["data"]), "JETVIZ_CHECKPOINTS": str(env["ck"]),
                        "OMP_NUM_THREADS": "1"}, log=log) as url:
        yield url, log


def test_every_page_in_a_real_browser(server):
    from selenium.webdriver.common.by import By

    url, log = server
    with screens.driver(1400, 1600) as d:
        for name, path in screens.PAGES.items():
            press = "Run sweep" if name == "step-sweep" else None  # a rerun started on the page itself
            errors = screens.capture(d, f"{url}/{path}", SHOTS / f"{name}.png", press=press, timeout=60)
            assert not errors, (name, errors, log.read_text()[-2000:])
            assert d.find_elements(By.CSS_SELECTOR, "h1"), name
            assert (SHOTS / f"{name}.png").stat().st_size > 10_000
            if press:  # the real server re-ran the entrypoint: the shared sidebar is still there
                sidebar = d.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar']").text
                assert "Jet class" in sidebar and "Number of jets" in sidebar
                assert len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) == 3
