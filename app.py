"""jetviz: `streamlit run app.py`. Page config, navigation over pages/, and the shared sidebar.

Where the app looks: $JETVIZ_DATA (folder holding sample/{g,q,t,w,z}.hdf5; default ./data) and
$JETVIZ_CHECKPOINTS (default ./checkpoints). See jetviz/ui.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # checkpoints are local folders; never reach for the Hub

import streamlit as st  # noqa: E402

from jetviz import ui  # noqa: E402

st.set_page_config(page_title="jetviz — generative models for jet images", page_icon="⚛️", layout="wide")
page = st.navigation([
    st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:", default=True),
    st.Page("pages/physics.py", title="Physics", url_path="physics", icon=":material/insights:"),
    st.Page("pages/step_sweep.py", title="Step sweep", url_path="step-sweep", icon=":material/speed:"),
    st.Page("pages/dataset.py", title="Dataset", url_path="dataset", icon=":material/dataset:"),
    st.Page("pages/models.py", title="Models", url_path="models", icon=":material/model_training:"),
])
ui.sidebar()
page.run()
