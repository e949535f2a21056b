"""Sample-quality metrics for generated jet images: FD/FID, pixel WD, W1M, DI, JetNet metrics, classifier AUC.

All inputs are in **physics space**: images float ``[N, 25, 25]`` (pixel = summed p_T / p_T,jet, index
[jet, η bin, φ bin]); point clouds ``[N, P, 4]`` = (η_rel, φ_rel, p_T,rel, mask) or ``[N, P, 3]`` without
the mask; observables 1-D ``[N]``. Every metric returns a :class:`~jetviz.stats.MetricResult`
``(value, err, n, extra)``; ``err`` is the standard deviation of ``n_boot`` bootstrap replicas (both samples
resampled by jet, with replacement) unless stated otherwise, and ``nan`` with ``n_boot=0`` (use that inside
:func:`~jetviz.stats.metric_floor`, which supplies its own spread). Distances are biased upwards at finite
N: compare a value with the floor (the same metric between two real samples of the same size).

A ``RuntimeWarning`` is raised when a metric rests on fewer jets (per sample) than :data:`MIN_JETS` lists.
The classifier two-sample test lives in :mod:`jetviz.stats` and is re-exported here.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import linalg
from scipy.stats import wasserstein_distance

from jetviz.stats import (
    MIN_JETS,
    MetricResult,
    SeedLike,
    as_rng,
    check_images,
    check_same_pixels,
    child_seed,
    classifier_auc,
    warn_few,
)

__all__ = [
    "MIN_JETS", "MetricResult", "frechet_distance", "fid_from_features", "pixel_fd", "fid", "pixel_wd",
    "w1_distance", "w1m", "diversity_index", "diversity_ratio", "classifier_auc", "jetnet_w1m",
    "jetnet_w1p", "jetnet_w1efp", "jet_efp_features", "jetnet_fpd", "jetnet_kpd",
]


# ------------------------------------------------------------------------------------------- helpers
def _boot_idx(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, n, n)


def _result(value: float, reps: list[float], n: int, **extra: Any) -> MetricResult:
    r = np.asarray(reps, dtype=np.float64)
    err = float(r.std(ddof=1)) if r.size >= 2 else float("nan")
    return MetricResult(float(value), err, int(n), extra={"replicas": r, **extra})


# ------------------------------------------------------------------------------------ Fréchet distance
def _sym(c: np.ndarray) -> np.ndarray:
    return 0.5 * (c + c.T)


def frechet_distance(mu1: Any, cov1: Any, mu2: Any, cov2: Any, method: str = "eigh") -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (Dowson & Landau 1982; FID, Heusel et al. 2017).

    d² = ‖μ₁ − μ₂‖² + Tr(C₁ + C₂ − 2 (C₁C₂)^{1/2}), returned as d² (the FID convention), clipped at 0.

    ``method="eigh"`` (default) uses Tr (C₁C₂)^{1/2} = Σ √λ(C₁^{1/2} C₂ C₁^{1/2}) with symmetric
    eigendecompositions: always real, negative round-off eigenvalues clipped to 0, singular covariances fine.
    ``method="sqrtm"`` uses ``scipy.linalg.sqrtm(C₁C₂)`` (the pytorch-fid recipe): ε·I is added if the
    root is not finite and the imaginary part is dropped (with a ``RuntimeWarning`` if it is not tiny).
    """
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    c1, c2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = m1.size
    if m1.shape != (d,) or m2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(f"shapes must be mu [D], cov [D, D] alike; got {m1.shape}, {c1.shape}, "
                         f"{m2.shape}, {c2.shape}")
    c1, c2 = _sym(c1), _sym(c2)
    if method == "eigh":
        w, v = np.linalg.eigh(c1)
        s1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # C₁^{1/2}
        lam = np.linalg.eigvalsh(_sym(s1 @ c2 @ s1))
        tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    elif method == "sqrtm":
        covmean = linalg.sqrtm(c1 @ c2)
        if not np.all(np.isfinite(covmean)):
            eps = 1e-6 * np.eye(d)
            covmean = linalg.sqrtm((c1 + eps) @ (c2 + eps))
        if np.iscomplexobj(covmean):
            im, re = np.abs(np.trace(covmean.imag)), np.abs(np.trace(covmean.real))
            if im > 1e-3 * max(re, 1e-12):
                warnings.warn(f"sqrtm gave a large imaginary trace ({im:.3g} vs real {re:.3g}); "
                              "try method='eigh'", RuntimeWarning, stacklevel=2)
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    diff = m1 - m2
    return max(float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_covmean), 0.0)


def _moments(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _fid(a: np.ndarray, b: np.ndarray, n_boot: int, seed: SeedLike, method: str) -> MetricResult:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need >= 2 rows per sample, got {len(a)} and {len(b)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("features contain NaN or inf; check the feature extractor or the images")
    warn_few(min(len(a), len(b)), 2 * a.shape[1], f"a Fréchet distance on {a.shape[1]} features",
             stacklevel=4)
    value = frechet_distance(*_moments(a), *_moments(b), method=method)
    rng = as_rng(seed)
    reps = [frechet_distance(*_moments(a[_boot_idx(rng, len(a))]), *_moments(b[_boot_idx(rng, len(b))]),
                             method=method) for _ in range(n_boot)]
    return _result(value, reps, min(len(a), len(b)), dim=a.shape[1])


def fid_from_features(feat_a: Any, feat_b: Any, *, n_boot: int = 20, seed: SeedLike = 0,
                      method: str = "eigh") -> MetricResult:
    """Fréchet distance between the Gaussian fits (mean, ``ddof=1`` covariance) of features ``[N, D]``.

    Warns below 2·D rows per sample (the covariance is then poorly determined or singular).
    ``extra["replicas"]`` holds the bootstrap replicas (biased high by duplicated rows; only their spread
    is used).
    """
    return _fid(np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64), n_boot, seed, method)


def pixel_fd(images_a: Any, images_b: Any, *, n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """Fréchet distance between the flattened pixel vectors (625-dim for 25×25) of two image samples.

    Sensitive to where intensity sits (a one-pixel shift is seen). Cost at 625 dims ≈ 0.3 s per evaluation
    plus covariances, times ``1 + n_boot``.
    """
    a, b = check_images(images_a, "images_a"), check_images(images_b, "images_b")
    check_same_pixels(a, b)
    return _fid(a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64), n_boot,
                seed, "eigh")


def _features(images: np.ndarray, feature_fn: Callable[[np.ndarray], Any], batch_size: int) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        batch = np.array(images[i:i + batch_size], dtype=np.float32)  # a copy: feature_fn may not mutate ours
        f = feature_fn(batch)
        f = f.detach().cpu().numpy() if hasattr(f, "detach") else np.asarray(f)
        if f.ndim != 2 or len(f) != len(batch):
            raise ValueError(f"feature_fn must return [n, D] for n images, got {f.shape} for n={len(batch)}")
        out.append(f.astype(np.float64))
    return np.concatenate(out)


def fid(images_a: Any, images_b: Any, feature_fn: Callable[[np.ndarray], Any], *, batch_size: int = 1024,
        n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """FID with a learned feature extractor: :func:`fid_from_features` of ``feature_fn`` outputs.

    ``feature_fn(images float32 [n, 25, 25], physics space) -> [n, D]`` (numpy or torch) is called on
    batches of ``batch_size`` copies; it does its own scaling and ``no_grad`` (jetviz passes the penultimate
    layer of its jet-class classifier).
    """
    a, b = check_images(images_a, "images_a"), check_images(images_b, "images_b")
    check_same_pixels(a, b)
    fa, fb = _features(a, feature_fn, batch_size), _features(b, feature_fn, batch_size)
    return _fid(fa, fb, n_boot, seed, "eigh")


# ------------------------------------------------------------------------------------ 1-D Wasserstein
def _pixel_pool(x: np.ndarray, include_zeros: bool, zero_threshold: float):
    """Pooled pixel values as (values, jet index of each, empty pixels per jet)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    keep = flat != 0.0 if include_zeros else np.abs(flat) > zero_threshold
    jet = np.nonzero(keep)[0]
    return flat[keep], jet, (flat.shape[1] - keep.sum(axis=1)) if include_zeros else None


def _weighted_pool(pool, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, jet, zeros = pool
    w = counts[jet].astype(np.float64)
    if zeros is None:
        return vals, w
    return np.concatenate([[0.0], vals]), np.concatenate([[float(counts @ zeros)], w])


def pixel_wd(images_a: Any, images_b: Any, *, include_zeros: bool = True, zero_threshold: float = 0.0,
             n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """1-Wasserstein distance between the pixel-intensity distributions, all pixels of each sample pooled.

    ``include_zeros=True`` (default) pools every pixel, empty ones included, so a wrong occupancy counts;
    ``False`` keeps only pixels with |value| > ``zero_threshold`` (the spectrum of hit pixels; raise the
    threshold for generators that leave tiny noise). Pooling discards position: the value is unchanged
    by moving intensity between pixels (e.g. a one-pixel shift of every image; see :func:`pixel_fd`) but
    grows when intensities are rescaled. Exact zeros are handled as one weighted atom (fast and exact).
    Bootstrap resamples whole jets.
    """
    a, b = check_images(images_a, "images_a"), check_images(images_b, "images_b")
    warn_few(min(len(a), len(b)), MIN_JETS["pixel_wd"], "pixel WD")
    pa, pb = _pixel_pool(a, include_zeros, zero_threshold), _pixel_pool(b, include_zeros, zero_threshold)
    if not include_zeros and min(pa[0].size, pb[0].size) == 0:
        raise ValueError(f"no pixel above zero_threshold={zero_threshold} in one sample; lower the threshold")

    def wd(ca: np.ndarray, cb: np.ndarray) -> float:
        (ua, wa), (ub, wb) = _weighted_pool(pa, ca), _weighted_pool(pb, cb)
        return float(wasserstein_distance(ua, ub, wa, wb))

    rng = as_rng(seed)
    value = wd(np.ones(len(a), np.int64), np.ones(len(b), np.int64))
    reps = [wd(np.bincount(_boot_idx(rng, len(a)), minlength=len(a)),
               np.bincount(_boot_idx(rng, len(b)), minlength=len(b))) for _ in range(n_boot)]
    return _result(value, reps, min(len(a), len(b)), include_zeros=include_zeros)


def _w1(values_a: Any, values_b: Any, n_boot: int, seed: SeedLike, what: str) -> MetricResult:
    a = np.asarray(values_a, np.float64).ravel()
    b = np.asarray(values_b, np.float64).ravel()
    if a.size < 2 or b.size < 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"{what} needs >= 2 finite values per sample, got {a.size} and {b.size}")
    warn_few(min(a.size, b.size), MIN_JETS["w1"], what, stacklevel=4)
    rng = as_rng(seed)
    reps = [wasserstein_distance(a[_boot_idx(rng, a.size)], b[_boot_idx(rng, b.size)]) for _ in range(n_boot)]
    return _result(wasserstein_distance(a, b), reps, min(a.size, b.size))


def w1_distance(values_a: Any, values_b: Any, *, n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """1-Wasserstein distance between 1-D samples (``scipy.stats.wasserstein_distance``), bootstrap err."""
    return _w1(values_a, values_b, n_boot, seed, "W1")


def w1m(mass_a: Any, mass_b: Any, *, n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """W1M: 1-Wasserstein distance between relative-mass (m/p_T) distributions.

    Pass 1-D m/p_T arrays (e.g. :func:`jetviz.physics.image_mass_rel` of images) or point clouds
    ``[N, P, 3|4]``, whose mass is taken from :func:`jetviz.physics.jet_mass_rel`.
    """
    def mass(x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            from jetviz.physics import jet_mass_rel
            return jet_mass_rel(x)
        return x

    return _w1(mass(mass_a), mass(mass_b), n_boot, seed, "W1M")


# ------------------------------------------------------------------------------------ diversity index
def _di(x: np.ndarray) -> tuple[float, float, float]:
    total_var = float(x.var(axis=0, ddof=1).sum())
    mean_total = float(x.mean(axis=0).sum())
    return (total_var / mean_total**2 if mean_total != 0.0 else float("nan")), total_var, mean_total


def diversity_index(images: Any, *, n_boot: int = 20, seed: SeedLike = 0) -> MetricResult:
    """Diversity index DI = Σ_p Var_jets[x_p] / (Σ_p E_jets[x_p])², p over pixels (``ddof=1``).

    The summed per-pixel variance across the sample divided by the squared total intensity of the mean
    image, i.e. E‖x − x̄‖² / ‖x̄‖₁². Scale-invariant (x → c·x leaves it unchanged), 0 when every image is
    the same; mode collapse lowers it. Always report it beside the real data's DI (see
    :func:`diversity_ratio`): closer is better, not larger.
    """
    x = check_images(images, "images").reshape(len(images), -1).astype(np.float64)
    warn_few(len(x), MIN_JETS["diversity_index"], "the diversity index")
    di, total_var, mean_total = _di(x)
    if mean_total == 0.0:
        raise ValueError("the mean image is empty (total intensity 0); DI is undefined")
    rng = as_rng(seed)
    reps = [_di(x[_boot_idx(rng, len(x))])[0] for _ in range(n_boot)]
    return _result(di, reps, len(x), total_variance=total_var, mean_total_intensity=mean_total)


def diversity_ratio(images_gen: Any, images_real: Any, *, n_boot: int = 20, seed: SeedLike = 0
                    ) -> MetricResult:
    """DI(gen) / DI(real) (1 = same diversity), bootstrap err; ``extra`` holds both DIs."""
    rng = as_rng(seed)
    g = diversity_index(images_gen, n_boot=n_boot, seed=rng)
    r = diversity_index(images_real, n_boot=n_boot, seed=rng)
    reps = g.extra["replicas"] / r.extra["replicas"]
    return _result(g.value / r.value, list(reps), min(g.n, r.n), gen=g, real=r)


# ------------------------------------------------------------------------------------- jetnet wrappers
_JETNET_LOCK = threading.Lock()  # jetnet's W1 metrics draw from its module-level `rng`; we swap it per call


@contextlib.contextmanager
def _jetnet_seeded(seed: SeedLike) -> Iterator[None]:
    """Run jetnet with its module-level Generator replaced by a seeded one (restored after); hush its
    50k-jet warning (ours, with :data:`MIN_JETS`, is raised by the caller)."""
    from jetnet.evaluation import gen_metrics

    with _JETNET_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended number", category=RuntimeWarning)
        saved = gen_metrics.rng
        gen_metrics.rng = np.random.default_rng(child_seed(as_rng(seed)))
        try:
            yield
        finally:
            gen_metrics.rng = saved


def _particles(jets: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """JetNet's ``[N, P, 3]`` (η_rel, φ_rel, p_T,rel) with masked-out particles zeroed, and the mask."""
    x = np.asarray(jets)
    if x.ndim != 3 or x.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be point clouds [N, P, 3 or 4] (eta_rel, phi_rel, pt_rel[, mask]), "
                         f"got {x.shape}")
    mask = x[..., 3] > 0 if x.shape[-1] == 4 else np.any(x != 0, axis=-1)
    # A 4th feature would be read by jetnet as the particle *mass*: drop it (the mask is applied here).
    return np.where(mask[..., None], x[..., :3], 0.0).astype(np.float64), mask


def _jetnet_w1(fn_name: str, jets_a: Any, jets_b: Any, num_eval_samples: int | None, num_batches: int,
               seed: SeedLike, **kw: Any) -> MetricResult:
    import jetnet.evaluation as je

    (a, ma), (b, mb) = _particles(jets_a, "jets_a"), _particles(jets_b, "jets_b")
    n = min(len(a), len(b))
    warn_few(n, MIN_JETS["jetnet"], f"jetnet {fn_name}", stacklevel=4)
    if fn_name == "w1p":
        kw.update(mask1=ma, mask2=mb, exclude_zeros=True, num_particle_features=3)
    with _jetnet_seeded(seed):
        mean, std = getattr(je, fn_name)(a, b, num_eval_samples=num_eval_samples or n,
                                         num_batches=num_batches, return_std=True, **kw)
    mean, std = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    # err of the feature average: mean of per-feature stds (exact if fully correlated, else conservative)
    return MetricResult(float(mean.mean()), float(std.mean()), n,
                        extra={"per_feature": mean, "per_feature_err": std, "num_batches": num_batches})


def jetnet_w1m(jets_a: Any, jets_b: Any, *, num_eval_samples: int | None = None, num_batches: int = 5,
               seed: SeedLike = 0) -> MetricResult:
    """``jetnet.evaluation.w1m`` on point clouds: W1 of m/p_T over ``num_batches`` draws (with replacement)
    of ``num_eval_samples`` jets (default: the smaller sample size); value/err = their mean/std."""
    return _jetnet_w1("w1m", jets_a, jets_b, num_eval_samples, num_batches, seed)


def jetnet_w1p(jets_a: Any, jets_b: Any, *, num_eval_samples: int | None = None, num_batches: int = 5,
               seed: SeedLike = 0) -> MetricResult:
    """``jetnet.evaluation.w1p``: W1 of particle η_rel, φ_rel and p_T,rel distributions (real particles).

    value = mean over the three features (``extra["per_feature"]`` has each); err = mean of their stds.
    """
    return _jetnet_w1("w1p", jets_a, jets_b, num_eval_samples, num_batches, seed)


def jetnet_w1efp(jets_a: Any, jets_b: Any, *, num_eval_samples: int | None = None, num_batches: int = 5,
                 seed: SeedLike = 0, efp_jobs: int = 1) -> MetricResult:
    """``jetnet.evaluation.w1efp``: W1 of the 5 (n=4, d=4, prime) EFPs, averaged like :func:`jetnet_w1p`.

    EFPs cost ≈ 0.5 ms per jet on one core (``efp_jobs`` processes; jetnet's default is all CPUs).
    """
    return _jetnet_w1("w1efp", jets_a, jets_b, num_eval_samples, num_batches, seed, efp_jobs=efp_jobs)


def jet_efp_features(jets: Any, *, efp_jobs: int = 1) -> np.ndarray:
    """The 36 EFPs (d ≤ 4) of ``jetnet.evaluation.get_fpd_kpd_jet_features``, ``[N, 36]``, for FPD/KPD.

    ≈ 2 ms per jet on one core: compute once per sample and reuse.
    """
    import jetnet.evaluation as je

    a, _ = _particles(jets, "jets")
    return np.asarray(je.get_fpd_kpd_jet_features(a, efp_jobs=efp_jobs), np.float64)


def _jet_level(features_real: Any, features_gen: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(features_real, np.float64), np.asarray(features_gen, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be [N, F] with equal F (e.g. jet_efp_features), got {x.shape}, "
                         f"{y.shape}")
    return x, y


def jetnet_fpd(features_real: Any, features_gen: Any, *, min_samples: int | None = None,
               max_samples: int | None = None, num_batches: int = 20, num_points: int = 10,
               normalise: bool = True, seed: SeedLike = 0) -> MetricResult:
    """``jetnet.evaluation.fpd``: Fréchet distance on jet-level features extrapolated to N → ∞ (Kansal et al.
    2023) from ``num_points`` batch sizes between ``min_samples`` and ``max_samples`` (defaults: jetnet's
    20k/50k, capped at the smaller sample and keeping its 0.4 ratio). Order matters: features are
    normalised by the real sample's maxima. err: the fit's error on the intercept.
    """
    import jetnet.evaluation as je

    x, y = _jet_level(features_real, features_gen)
    n = min(len(x), len(y))
    warn_few(n, MIN_JETS["jetnet"], "jetnet FPD")
    max_samples = max_samples or min(50_000, n)
    min_samples = min_samples or min(20_000, max(2, int(0.4 * max_samples)))
    if not 2 <= min_samples <= max_samples:
        raise ValueError(f"need 2 <= min_samples <= max_samples, got {min_samples}, {max_samples}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended number", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="The `disp` argument", category=DeprecationWarning)
        val, err = je.fpd(x, y, min_samples=min_samples, max_samples=max_samples, num_batches=num_batches,
                          num_points=num_points, normalise=normalise, seed=child_seed(as_rng(seed)))
    return MetricResult(float(val), float(err), n,
                        extra={"min_samples": min_samples, "max_samples": max_samples})


def jetnet_kpd(features_real: Any, features_gen: Any, *, num_batches: int = 10, batch_size: int | None = None,
               normalise: bool = True, seed: SeedLike = 0) -> MetricResult:
    """``jetnet.evaluation.kpd``: unbiased MMD with a degree-4 polynomial kernel on jet-level features,
    median over ``num_batches`` draws of ``batch_size`` (default min(5000, N)); err = half the 16-84 % range.

    Cost grows as batch_size² (≈ 13-15 s for 10 × 5000 on one core; numba compiles on first use, ≈ 3 s).
    """
    import jetnet.evaluation as je

    x, y = _jet_level(features_real, features_gen)
    n = min(len(x), len(y))
    warn_few(n, MIN_JETS["jetnet"], "jetnet KPD")
    batch_size = batch_size or min(5000, n)
    val, err = je.kpd(x, y, num_batches=num_batches, batch_size=batch_size, normalise=normalise,
                      seed=child_seed(as_rng(seed)))
    return MetricResult(float(val), float(err), n, extra={"batch_size": batch_size})
