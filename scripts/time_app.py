"""Time the app's interactive defaults (1,000 jets, the default model, 1 step) with Streamlit's AppTest, in one process.

    python scripts/time_app.py [--repeats 3]

Run 0 is a cold start (imports, model load); runs 1… use new seeds in the same process, i.e. what a user
sees after changing an input (generation + images + metrics not cached). Prints seconds per page run for the
Generate page and the Physics page (mass histogram and metric table).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from streamlit.testing.v1 import AppTest

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    for r in range(a.repeats + 1):
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
        at.session_state["seed"] = 100 + r
        t = time.perf_counter()
        at.run()
        t_gen = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        at.switch_page("pages/physics.py")
        t = time.perf_counter()
        at.run()
        t_phys = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        label = "cold start" if r == 0 else f"new seed {r}"
        print(f"{label}: Generate {t_gen:.2f} s, Physics {t_phys:.2f} s")


if __name__ == "__main__":
    main()
