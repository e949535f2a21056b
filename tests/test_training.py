from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_tiny import TINY_UNET, tiny_dataset
from safetensors.torch import load_file

from jetviz import losses, runstate
from jetviz.models import ConsistencyFunction, EDMDenoiser, JetUNet
from jetviz.training import TrainConfig, batch_indices, load_training_images, step_generator, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _cfg(tiny, **kw):
    base = dict(data=str(tiny), unet=TINY_UNET, steps=6, batch_size=8, checkpoint_every=3, warmup=1)
    return TrainConfig(**{**base, **kw})


def test_batches_are_seeded_and_cover_each_epoch():
    a = batch_indices(0, 3, 16, 50)
    np.testing.assert_array_equal(a, batch_indices(0, 3, 16, 50))
    epoch0 = np.concatenate([batch_indices(0, s, 10, 50) for s in range(5)])
    assert sorted(epoch0) == list(range(50))
    assert not np.array_equal(batch_indices(1, 0, 16, 50), batch_indices(0, 0, 16, 50))


@pytest.mark.parametrize("kind", ["ve-sde", "consistency-ct"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny, kind):
    cfg = _cfg(tiny, kind=kind)
    x, y = load_training_images(cfg)
    x, y = x[:16], y[:16]
    torch.manual_seed(0)
    net = JetUNet(TINY_UNET)
    model = EDMDenoiser(net) if kind == "ve-sde" else ConsistencyFunction(net)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_at():  # the same σ and noise every time
        gen = step_generator(0, 0)
        if kind == "ve-sde":
            return losses.dsm_loss(model, x, y, gen).mean()
        return losses.consistency_training_loss(model, x, y, gen, num_scales=11).mean()

    first = float(loss_at().detach())
    for _ in range(15):
        opt.zero_grad()
        loss_at().backward()
        opt.step()
    assert float(loss_at().detach()) < 0.7 * first


def test_resume_after_interruption_is_bit_identical(tiny, tmp_path):
    cfg = _cfg(tiny, kind="consistency-ct")
    train(cfg, tmp_path / "full")
    train(cfg, tmp_path / "cut", stop_after=4)  # interrupted after step 4 (last checkpoint at 3 + a final save)
    train(cfg, tmp_path / "cut", resume=True)
    full, cut = runstate.files(tmp_path / "full"), runstate.files(tmp_path / "cut")
    for f in ("model", "ema", "optim"):
        a, b = load_file(str(full[f])), load_file(str(cut[f]))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (f, k)
    log_full = (tmp_path / "full" / "loss.csv").read_text().splitlines()
    log_cut = (tmp_path / "cut" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in log_full] == [r.split(",")[:2] for r in log_cut]


def test_resume_verifies_the_state_checksums(tiny, tmp_path):
    cfg = _cfg(tiny, kind="ve-sde", steps=4)
    train(cfg, tmp_path / "r", stop_after=3)
    st = tmp_path / "r" / "state"
    assert [p.name for p in st.iterdir() if p.is_dir()] == ["step-00000003"]  # older states pruned
    ema = runstate.files(tmp_path / "r")["ema"]
    good = ema.read_bytes()
    ema.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ValueError, match="checksum mismatch"):
        train(cfg, tmp_path / "r", resume=True)
    ema.write_bytes(good)
    info = json.loads((st / "state.json").read_text())
    (st / "state.json").write_text(json.dumps({k: v for k, v in info.items() if k != "files"}))
    with pytest.raises(ValueError, match="no checksums"):
        train(cfg, tmp_path / "r", resume=True)
    (st / "state.json").write_text(json.dumps(info))
    assert train(cfg, tmp_path / "r", resume=True)["step"] == 4


def test_a_save_killed_before_its_commit_point_keeps_the_previous_state(tiny, tmp_path, monkeypatch):
    cfg = _cfg(tiny, kind="ve-sde", steps=6)
    train(cfg, tmp_path / "r", stop_after=3)
    before = (tmp_path / "r" / "state" / "state.json").read_text()

    def killed(*a, **k):  # the job dies after writing the new tensors, before state.json is replaced
        raise KeyboardInterrupt

    monkeypatch.setattr(runstate, "write_json_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "r", resume=True, stop_after=3)
    monkeypatch.undo()
    assert (tmp_path / "r" / "state" / "state.json").read_text() == before
    assert runstate.read_info(tmp_path / "r")["step"] == 3
    assert set(runstate.files(tmp_path / "r")) == {"model", "ema", "optim"}  # still complete and verified
    assert train(cfg, tmp_path / "r", resume=True)["step"] == 6


def test_existing_run_needs_resume(tiny, tmp_path):
    cfg = _cfg(tiny, steps=1)
    train(cfg, tmp_path / "r")
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, tmp_path / "r")


def test_distillation_uses_the_teacher(tiny, tmp_path):
    with pytest.raises(ValueError, match="teacher"):
        _cfg(tiny, kind="consistency-cd")
    train(_cfg(tiny, kind="ve-sde", steps=2), tmp_path / "ve")
    teacher = str(tmp_path / "ve" / "export")
    train(_cfg(tiny, kind="consistency-cd", steps=1, teacher=teacher), tmp_path / "cd")
    # the student starts from the teacher's weights (same architecture): after one small step it stays close
    t = load_file(str(tmp_path / "ve" / "export" / "unet" / "diffusion_pytorch_model.safetensors"))
    s = load_file(str(runstate.files(tmp_path / "cd")["model"]))
    k = "conv_in.weight"
    diff = (s[f"net.unet.{k}"] - t[k]).abs().max()
    assert diff < 1e-2
    # a CD step's target depends on the teacher: a different teacher gives a different loss
    cfg = _cfg(tiny, kind="consistency-cd", teacher=teacher)
    x, y = load_training_images(cfg)
    from jetviz.training import load_teacher

    teach, _ = load_teacher(teacher)
    f = ConsistencyFunction(JetUNet(TINY_UNET))
    l1 = losses.consistency_distillation_loss(f, teach, x[:8], y[:8], step_generator(0, 0))
    other = EDMDenoiser(JetUNet(TINY_UNET))
    l2 = losses.consistency_distillation_loss(f, other, x[:8], y[:8], step_generator(0, 0))
    assert not torch.allclose(l1, l2)
    with pytest.raises(ValueError, match="ve-sde"):
        load_teacher(str(tmp_path / "cd" / "export"))


def test_ct_curriculum_doubles_from_s0_to_s1():
    ns = [losses.ct_num_scales(k, 800) for k in range(0, 800, 10)]
    assert ns[0] == 11 and ns[-1] == 1281
    assert all(b >= a for a, b in zip(ns, ns[1:], strict=False))


def test_bad_config():
    with pytest.raises(ValueError, match="kind"):
        TrainConfig(kind="gan")
    with pytest.raises(ValueError, match="class"):
        TrainConfig(classes=("b",))
