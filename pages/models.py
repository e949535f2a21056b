"""Models: the model card of every checkpoint found (checksums verified) and training loss curves."""

from __future__ import annotations

import streamlit as st

from jetviz import plots, ui


def body() -> None:
    st.title("Models")
    found = ui.discover()
    st.caption(f"Checkpoints in `{ui.checkpoint_root()}`. Every file's sha256 is checked against its card before "
               "a model is used; weights are safetensors only.")
    if not found:
        ui.explain_no_generators()
        return
    missing = [k for k in ui.SHIPPED if k not in {c.name for c in found}]
    if missing:
        st.info("Not found (yet): " + ", ".join(f"`{k}` ({ui.SHIPPED[k]})" for k in missing) + ".")
    window = st.slider("Loss smoothing (steps)", 1, 200, 20, key="models_smooth")
    log_y = st.toggle("Log loss axis", value=True, key="models_log")
    curves = {}
    for c in found:
        card = ui.model_card(c.path, c.stamp)
        with st.expander(f"{c.name} — {card.get('kind', c.kind)}", expanded=len(found) <= 4):
            if card.get("error"):
                st.error(card["error"])
                continue
            st.markdown(ui.card_markdown(card))
            if card.get("command"):
                st.code(card["command"], language="bash")
        curve = ui.loss_curve(c.path, c.stamp)
        if curve is not None:
            curves[c.name] = curve
    st.subheader("Training loss")
    if curves:
        st.plotly_chart(plots.loss_figure(curves, window=window, log_y=log_y), key="models_loss")
    else:
        st.info("No training log found: a checkpoint folder (or its card's `loss_csv`) may hold a `loss.csv` "
                "with columns step, loss.")


ui.run_page(body)
