"""Pythia 8 settings, truth definitions and one seeded block of jets (the engine of :mod:`jetviz.simulate`).

One place for the physics choices, so the HDF5 attributes and the JSON sidecar can record them verbatim.

* √s = 13 TeV pp, Monash 2013 tune (``Tune:pp = 14``), particle level, MPI/ISR/FSR/hadronisation on.
* A narrow hard-process window ``995 < p̂_T < 1005 GeV`` puts the jets near 1 TeV as in JetNet.
* ``SpaceShower:pTmaxMatch = 1`` and ``TimeShower:pTmaxMatch = 1`` cap the showers at the factorisation scale.
  Without them ISR from the electroweak 2→2 processes (whose scale is the boson mass, not p̂_T) is far too
  hard: W jets came out with ⟨p_T⟩ ≈ 1140 GeV and median mass ≈ 108 GeV.
* W and Z decay hadronically only (``onIfAny = 1 2 3 4 5``: any quark but top); in tt̄ both W's do.
* Light-quark jets (``q``) are u, d, s only: ``HardQCD:nQuarkNew = 3`` keeps gg → qq̄ to light flavours, and
  truth matching (below) drops jets matched to c or b from the initial-state sea.
* ``Z`` is Pythia's γ*/Z (id 23) with the default full interference of ``ffbar2gmZgmZ``. W and γ*/Z masses
  follow Pythia's default Breit–Wigner ranges (``mMin`` 10 GeV, no ``mMax``): at this p̂_T ≈ 13 % of truth W's
  and ≈ 7 % of truth Z's lie > 30 GeV off shell (W tail up to ~1 TeV), and ≈ 8 % / 6 % of matched jets come from
  them (median jet mass ≈ 160 / 137 GeV for those, against 97 / 105 GeV on shell). Kept as in the reference
  setup; a ``24:mMax``/``23:mMax`` window would remove them.

Truth objects, from the event record Pythia returns (``pythia.nextBatch``):

* ``g``/``q``: the outgoing partons of the hard process (``|status| == 23``) with id 21 / |id| ∈ {1, 2, 3};
* ``t``/``w``/``z``: the top / W / Z itself, last copy before its decay (|id| matches and the first daughter
  is a different particle), which is the copy that carries the recoil of the showers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

from jetviz.config import NUM_PARTICLES

JET_R = 0.8
PT_RANGE = (800.0, 1600.0)  # GeV, both exclusive
ETA_MAX = 2.5
MATCH_DR = 0.8  # jet axis to truth object, in (η, φ)
_MAX_EVENTS_PER_BATCH = 200  # bounds the memory held by one nextBatch record

COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:idA = 2212",
    "Beams:idB = 2212",
    "Beams:eCM = 13000.",
    "Tune:pp = 14",  # Monash 2013
    "PartonLevel:MPI = on",
    "HadronLevel:all = on",
    "PhaseSpace:pTHatMin = 995.",
    "PhaseSpace:pTHatMax = 1005.",
    "SpaceShower:pTmaxMatch = 1",
    "TimeShower:pTmaxMatch = 1",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
)

_W_HADRONIC = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")

PROCESS_SETTINGS: dict[str, tuple[str, ...]] = {
    "g": ("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
    "q": (
        "HardQCD:qg2qg = on",
        "HardQCD:qq2qq = on",
        "HardQCD:qqbar2qqbarNew = on",
        "HardQCD:gg2qqbar = on",
        "HardQCD:nQuarkNew = 3",  # gg → qq̄ and qq̄ → q'q̄' to u, d, s only
    ),
    "t": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_W_HADRONIC),
    "w": ("WeakDoubleBoson:ffbar2WW = on", *_W_HADRONIC),
    "z": ("WeakDoubleBoson:ffbar2gmZgmZ = on", "23:onMode = off", "23:onIfAny = 1 2 3 4 5"),
}

# How the truth objects of each class are picked out of the event record:
# ("hard", ids): outgoing hard-process partons (|status| == 23) whose |id| is in ids;
# ("last", id):  particles with |id| == id whose first daughter has a different |id| (last copy before decay).
TRUTH: dict[str, tuple[str, tuple[int, ...]]] = {
    "g": ("hard", (21,)),
    "q": ("hard", (1, 2, 3)),
    "t": ("last", (6,)),
    "w": ("last", (24,)),
    "z": ("last", (23,)),
}

INVISIBLE_IDS: tuple[int, ...] = (12, 14, 16)  # neutrinos are not clustered


def settings_for(jet_type: str, pythia_seed: int) -> list[str]:
    """All ``readString`` lines for one Pythia instance generating ``jet_type`` with ``Random:seed``."""
    if not 1 <= pythia_seed <= 900_000_000:
        raise ValueError(f"Pythia seeds must be in 1..900000000, got {pythia_seed}")
    return [*COMMON_SETTINGS, f"Random:seed = {pythia_seed}", *PROCESS_SETTINGS[jet_type]]


def _quiet_fastjet_banner() -> None:
    """Print FastJet's once-per-process banner into /dev/null so stdout stays clean (cited in the sidecar)."""
    import fastjet._swig as fj_swig

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        fj_swig.ClusterSequence.print_banner()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _make_pythia(jet_type: str, seed: int):
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings_for(jet_type, seed):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected setting {line!r}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise for class {jet_type!r}")
    return pythia


def _truth_mask(prt, jet_type: str):
    """Awkward boolean mask of the truth objects of ``jet_type`` in each event (see ``TRUTH``)."""
    mode, ids = TRUTH[jet_type]
    aid = abs(prt.id)
    if mode == "hard":
        return (abs(prt.status) == 23) & _isin(aid, ids)
    (pid,) = ids
    return (aid == pid) & (abs(prt.id[prt.daughter1]) != pid)


def _isin(jagged, values):
    out = jagged == values[0]
    for v in values[1:]:
        out = out | (jagged == v)
    return out


def _flat(x) -> np.ndarray:
    import awkward as ak

    return ak.to_numpy(ak.flatten(x, axis=None)).astype(np.float64, copy=False)


def _eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / pt), np.arctan2(py, px)


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Wrap angles to (−π, π]."""
    return np.pi - np.mod(np.pi - dphi, 2 * np.pi)


def jets_from_events(events, jet_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster a ``pythia.nextBatch`` record and keep truth-matched jets in the cuts.

    Returns (particle_features float32 ``[k, 30, 4]``, jet_features float32 ``[k, 4]``, event index ``[k]``),
    jets ordered by event, then by descending p_T.
    """
    import awkward as ak
    import fastjet

    _quiet_fastjet_banner()
    prt = events.prt
    aid = abs(prt.id)
    visible = (prt.status > 0) & ~_isin(aid, INVISIBLE_IDS)
    p = prt.p[visible]
    particles = ak.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.e}, with_name="Momentum4D")
    cs = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
    jets, cidx = cs.inclusive_jets(PT_RANGE[0]), cs.constituent_index(PT_RANGE[0])

    n_events = len(prt)
    part_start = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(particles)))])
    ppx, ppy, ppz = _flat(particles.px), _flat(particles.py), _flat(particles.pz)
    jet_event = np.repeat(np.arange(n_events), ak.to_numpy(ak.num(jets)))
    jpx, jpy, jpz, je = _flat(jets.px), _flat(jets.py), _flat(jets.pz), _flat(jets.E)
    jpt, jeta, jphi = _eta_phi(jpx, jpy, jpz)
    jmass = np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0))
    n_cons = ak.to_numpy(ak.flatten(ak.num(cidx, axis=2)))
    cons_start = np.concatenate([[0], np.cumsum(n_cons)])
    cons = ak.to_numpy(ak.flatten(cidx, axis=None)) + np.repeat(part_start[jet_event], n_cons)

    t = prt.p[_truth_mask(prt, jet_type)]
    t_start = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(t)))])
    _, teta, tphi = _eta_phi(_flat(t.px), _flat(t.py), _flat(t.pz))

    keep = (jpt > PT_RANGE[0]) & (jpt < PT_RANGE[1]) & (np.abs(jeta) < ETA_MAX)
    order = np.lexsort((-jpt, jet_event))
    rows = []
    for j in order[keep[order]]:
        ts = slice(t_start[jet_event[j]], t_start[jet_event[j] + 1])
        dr2 = (teta[ts] - jeta[j]) ** 2 + wrap_phi(tphi[ts] - jphi[j]) ** 2
        if np.any(dr2 < MATCH_DR**2):
            rows.append(j)
    k = len(rows)
    pf = np.zeros((k, NUM_PARTICLES, 4), dtype=np.float32)
    jf = np.zeros((k, 4), dtype=np.float32)
    for r, j in enumerate(rows):
        c = cons[cons_start[j]:cons_start[j + 1]]
        assert np.isclose(ppx[c].sum(), jpx[j], rtol=1e-6, atol=1e-6), "constituents do not add up to the jet"
        cpt, ceta, cphi = _eta_phi(ppx[c], ppy[c], ppz[c])
        top = np.argsort(-cpt, kind="stable")[:NUM_PARTICLES]
        m = len(top)
        pf[r, :m, 0] = ceta[top] - jeta[j]
        pf[r, :m, 1] = wrap_phi(cphi[top] - jphi[j])
        pf[r, :m, 2] = cpt[top] / jpt[j]
        pf[r, :m, 3] = 1.0
        jf[r] = (jpt[j], jeta[j], jmass[j], m)
    return pf, jf, jet_event[rows]


def generate_block(jet_type: str, pythia_seed: int, n_jets: int,
                   report: Callable[[int], None] | None = None) -> dict:
    """The first ``n_jets`` jets of the event stream of a fresh Pythia seeded with ``pythia_seed``.

    Returns a dict with ``particle_features``, ``jet_features``, ``events`` (events up to the last jet used, which
    does not depend on how events were batched), ``events_generated`` and ``seconds``. ``report(jets_so_far)`` is
    called after each batch of events.
    """
    t0 = time.perf_counter()
    pythia = _make_pythia(jet_type, pythia_seed)
    pfs, jfs, have, used, generated = [], [], 0, 0, 0
    rate = 2.0  # jets per event guess: ≈ 2 truth objects per event, so the first batch does not overshoot
    while have < n_jets:
        batch = int(np.clip(np.ceil(1.1 * (n_jets - have) / rate) + 1, 5, _MAX_EVENTS_PER_BATCH))
        events = pythia.nextBatch(batch)
        pf, jf, ev = jets_from_events(events, jet_type)
        take = min(len(pf), n_jets - have)
        if take:
            pfs.append(pf[:take])
            jfs.append(jf[:take])
            used = generated + int(ev[take - 1]) + 1
            have += take
        generated += len(events)
        rate = min(max(have / max(generated, 1), 0.05), 2.0)
        if report is not None:
            report(have)
        if have == 0 and generated >= 2000:
            raise RuntimeError(f"no {jet_type} jet passed the cuts in {generated} events; check the settings")
    return {"particle_features": np.concatenate(pfs), "jet_features": np.concatenate(jfs), "events": used,
            "events_generated": generated, "seconds": time.perf_counter() - t0}
