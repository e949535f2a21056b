"""AppTest of every page: default run, every widget changed through its key, long-job button, missing
checkpoints, missing data and bad inputs shown as explanations (never an exception).

The app is pointed at tiny fixtures through ``JETVIZ_DATA`` / ``JETVIZ_CHECKPOINTS`` (read by jetviz.ui at
call time): a 200-jet-per-class data folder and 2-step-trained tiny checkpoints (cm-ct, ve-sde, classifier).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_tiny import TINY_UNET, tiny_dataset

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ("pages/generate.py", "pages/physics.py", "pages/step_sweep.py", "pages/dataset.py", "pages/models.py")
TIMEOUT = 90


def make_app_env(root: Path, n: int = 200) -> dict[str, Path]:
    """Tiny data (``<root>/data/sample``), checkpoints (``<root>/ck``: cm-ct, ve-sde, classifier), empty dirs."""
    from jetviz.classifier import save_classifier, train_classifier
    from jetviz.config import CLASSES
    from jetviz.data import load_jets
    from jetviz.images import to_images
    from jetviz.training import TrainConfig, train

    sample = tiny_dataset(root / "data" / "sample", n=n)
    (sample / "g.json").write_text(json.dumps({"jets": n, "seconds": 1.6, "workers": 1, "jets_per_s": 125.0}))
    ck = root / "ck"
    for kind, name in (("consistency-ct", "cm-ct"), ("ve-sde", "ve-sde")):
        cfg = TrainConfig(kind=kind, data=str(sample), unet=TINY_UNET, steps=2, batch_size=8, seed=1)
        train(cfg, root / "runs" / name, export_to=ck / name)
    ims = np.concatenate([to_images(load_jets(c, sample)[0]) for c in CLASSES])
    labels = np.repeat(np.arange(len(CLASSES)), n)
    model, info = train_classifier(ims, labels, epochs=1, batch_size=64)
    save_classifier(model, ck / "classifier", {"name": "classifier", "command": "test", "training": info})
    (root / "empty").mkdir()
    return {"data": root / "data", "ck": ck, "empty": root / "empty", "sample": sample}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_app_env(tmp_path_factory.mktemp("app"))


@pytest.fixture(autouse=True)
def point_app(env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("JETVIZ_DATA", str(env["data"]))
    monkeypatch.setenv("JETVIZ_CHECKPOINTS", str(env["ck"]))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def app(page: str | None = None, **state):
    """An AppTest of app.py run once (then on ``page``), with session-state presets (``n_jets=200`` unless
    given; ``n_jets=None`` keeps the widget default).

    The shared sidebar's widgets are set through these presets: AppTest 1.67 re-executes only the page script
    on a rerun of an ``st.navigation`` app (the real server runs the entrypoint every time; see
    tests/test_browser.py), so the sidebar exists in the first run only and the pages then read the
    settings it stored.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    state = {"n_jets": 200, **state}
    for k, v in state.items():
        if v is not None:
            at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page and page != PAGES[0]:
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return " ".join(e.value for kind in ("error", "warning", "info", "caption", "markdown", "success")
                    for e in getattr(at, kind))


def charts(at) -> int:
    return len(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------- defaults
def test_every_page_renders_with_the_defaults():
    at = app(n_jets=None)  # the real defaults: 1,000 jets, cm-ct, 1 step
    assert at.sidebar.number_input(key="n_jets").value == 1000
    assert at.sidebar.selectbox(key="model").value == "cm-ct (consistency-ct)"  # a consistency model, 1 step
    assert at.sidebar.number_input(key="steps").value == 1
    assert [m.value for m in at.metric][0] == "1,000"
    assert charts(at) == 1 and not at.error
    for page in PAGES[1:]:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])


@pytest.mark.parametrize("key, value", [("jet_type", "t"), ("model", "ve-sde (ve-sde)"), ("steps", 2),
                                        ("n_jets", 100), ("seed", 7)])
def test_sidebar_widget(key, value):
    at = app(**{key: value})
    w = at.sidebar.selectbox(key=key) if key in ("jet_type", "model") else at.sidebar.number_input(key=key)
    assert w.value == value and at.session_state["_settings"] is not None


def test_sidebar_settings_reach_the_pages():
    at = app(model="ve-sde (ve-sde)", steps=2, n_jets=100, jet_type="z", seed=3)
    assert [m.value for m in at.metric][0] == "100"
    assert "generated (ve-sde, 2 steps)" in json.dumps([c.proto.spec for c in at.get("plotly_chart")])
    at.switch_page("pages/physics.py")
    at.run()
    assert "100 generated jets (ve-sde, 2 step(s))" in texts(at)


def test_a_model_that_disappeared_falls_back():
    at = app(model="gone (consistency-ct)")
    assert at.sidebar.selectbox(key="model").value == "cm-ct (consistency-ct)" and not at.exception


# ------------------------------------------------------------------------------------------- generate
def test_generate_widgets_and_downloads():
    at = app()
    at.slider(key="gen_n_show").set_value(0).run()
    at.toggle(key="gen_log").set_value(True).run()
    at.slider(key="gen_n_show").set_value(6).run()
    assert not at.exception
    keys = {b.proto.id for b in at.get("download_button")}
    assert len(at.get("download_button")) == 2, keys
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("CSV" in x for x in labels) and any("HDF5" in x for x in labels)
    assert "Time taken" in [m.label for m in at.metric]


def test_long_jobs_wait_for_the_button(monkeypatch):
    from jetviz import ui

    monkeypatch.setattr(ui, "AUTO_BUDGET", 50)
    at = app(n_jets=100)
    assert not at.metric and charts(at) == 0
    assert "long job" in texts(at)
    at.button(key="gen_run").click().run()
    assert not at.exception
    assert [m.value for m in at.metric][0] == "100"
    at.toggle(key="gen_log").set_value(True).run()  # made this session: no second click needed
    assert [m.value for m in at.metric][0] == "100"


# -------------------------------------------------------------------------------------------- physics
def test_physics_metrics_and_widgets():
    at = app(n_jets=100, page="pages/physics.py")
    assert charts(at) == 3
    df = at.dataframe[0].value
    fid = df[df.metric.str.startswith("FID")].iloc[0]
    assert np.isfinite(fid["generated vs real"]) and np.isfinite(fid["real vs real (floor)"])
    assert {"pixel WD", "W1M (m/p_T)"} <= set(df.metric)
    assert (df["jets per sample"] == 100).all()
    at.toggle(key="phys_log").set_value(True).run()
    assert not at.exception
    at = app(page="pages/physics.py", n_jets=100, jet_type="w")
    assert charts(at) == 3


@pytest.mark.slow
def test_physics_full_metrics_button():
    at = app(n_jets=60, page="pages/physics.py")
    at.button(key="phys_full").click().run()
    assert not at.exception
    df = at.dataframe[0].value
    assert {"classifier AUC", "pixel FD", "FPD (jetnet, EFPs)", "KPD (jetnet, EFPs)"} <= set(df.metric)
    auc = df[df.metric == "classifier AUC"].iloc[0]
    assert 0 <= auc["generated vs real"] <= 1 or "not available" in auc["note"]


# ----------------------------------------------------------------------------------------- step sweep
def test_step_sweep_runs_and_comes_back_from_the_cache():
    import time

    at = app(page="pages/step_sweep.py")
    assert "Run sweep" in texts(at) and charts(at) == 0
    at.multiselect(key="sweep_models").set_value(["cm-ct (consistency-ct)", "ve-sde (ve-sde)"]).run()
    at.multiselect(key="sweep_steps").set_value([1, 2]).run()
    at.number_input(key="sweep_n").set_value(50).run()
    at.button(key="sweep_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert charts(at) == 3
    assert len(at.dataframe[0].value) == 4
    spec = json.dumps([c.proto.spec for c in at.get("plotly_chart")])
    assert "real vs real floor" in spec and "Pythia" in spec
    assert "125 jets/s per core" in texts(at)  # the Pythia rate of the sidecar JSON
    at.switch_page("pages/generate.py")
    at.run()
    at.switch_page("pages/step_sweep.py")
    t0 = time.perf_counter()
    at.run()
    assert charts(at) == 3 and time.perf_counter() - t0 < 5  # cached points: no sampling again
    at.multiselect(key="sweep_steps").set_value([1]).run()  # changed but not run: the last sweep stays
    assert "Showing the last sweep" in texts(at) and not at.exception


# -------------------------------------------------------------------------------------------- dataset
def test_dataset_bundled_widgets():
    at = app(page="pages/dataset.py")
    assert charts(at) == 4
    at.number_input(key="dataset_start").set_value(5).run()
    at.slider(key="dataset_n_show").set_value(8).run()
    at.toggle(key="dataset_log").set_value(True).run()
    at.number_input(key="dataset_start").set_value(199).run()  # the last jet: fewer than n_show left
    assert not at.exception and charts(at) == 4


def test_dataset_local_folder(env, tmp_path):
    at = app(page="pages/dataset.py")
    at.radio(key="dataset_source").set_value("local JetNet folder").run()
    assert "Type the path" in texts(at)
    at.text_input(key="dataset_folder").input(str(tmp_path / "nope")).run()
    assert not at.exception and "does not exist" in " ".join(e.value for e in at.error)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "g.hdf5").write_text("not hdf5")
    at.text_input(key="dataset_folder").input(str(bad)).run()
    assert not at.exception and "not a readable HDF5" in " ".join(e.value for e in at.error)
    other = tmp_path / "jetnet"
    shutil.copytree(env["sample"], other)
    (other / "t.hdf5").unlink()
    at.text_input(key="dataset_folder").input(str(other)).run()
    assert not at.exception and charts(at) == 4
    at.switch_page("pages/physics.py")  # the folder is now the real reference elsewhere
    at.run()
    assert not at.exception and f"local folder {other}" in texts(at)
    at.session_state["_settings"] = dataclasses.replace(at.session_state["_settings"], jet_type="t")
    at.run()  # a class the folder lacks
    assert not at.exception and "No t.hdf5" in texts(at)


def test_dataset_fresh_pythia_run():
    at = app(page="pages/dataset.py")
    at.radio(key="dataset_source").set_value("fresh Pythia run").run()
    at.number_input(key="dataset_sim_n").set_value(10).run()
    assert "Press the button" in texts(at)
    at.button(key="dataset_sim_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    if at.error:  # Pythia missing on this machine: the reason is shown in words
        assert "not available" in at.error[0].value
    else:
        assert "Simulated 10 jets" in texts(at) and charts(at) == 4


# --------------------------------------------------------------------------------------------- models
def test_models_cards_and_loss_curves():
    at = app(page="pages/models.py")
    md = texts(at)
    assert "checksums verified" in md and "consistency-ct" in md and "classifier" in md
    assert charts(at) == 1  # loss curves of the generators
    at.slider(key="models_smooth").set_value(1).run()
    at.toggle(key="models_log").set_value(False).run()
    assert not at.exception


def test_tampered_and_broken_checkpoints_are_explained(env, tmp_path, monkeypatch):
    ck = tmp_path / "ck"
    shutil.copytree(env["ck"], ck)
    w = ck / "cm-ct" / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    (ck / "junk").mkdir()
    (ck / "junk" / "card.json").write_text("{not json")
    monkeypatch.setenv("JETVIZ_CHECKPOINTS", str(ck))
    at = app(page="pages/models.py")
    errors = " ".join(e.value for e in at.error)
    assert "checksum mismatch" in errors and "not valid JSON" in errors
    at.switch_page("pages/generate.py")
    at.run()
    assert not at.exception and "checksum mismatch" in " ".join(e.value for e in at.error)


# ------------------------------------------------------------------------------ missing data/models
def visit_all(at):
    """Yield (page, at) for every page, starting with the one ``at`` is on."""
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page)
            at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        yield page, at


def test_no_checkpoints_explains(env, monkeypatch):
    monkeypatch.setenv("JETVIZ_CHECKPOINTS", str(env["empty"]))
    for page, at in visit_all(app()):
        if page != "pages/dataset.py":  # the dataset page needs no model
            assert "No generator checkpoint found" in texts(at), page
        assert not at.error, page


def test_no_data_explains(env, monkeypatch):
    monkeypatch.setenv("JETVIZ_DATA", str(env["empty"]))
    for page, at in visit_all(app()):
        if page != "pages/models.py":
            assert "bundled real sample is missing" in texts(at), page
        if page == "pages/generate.py":
            assert charts(at) == 1  # generated jets are still shown
        assert not at.error, page
