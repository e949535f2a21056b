"""Cost per training step and per sampling step of the UNet sizes, on this machine.

    python scripts/time_steps.py [--channels 16,32,32 32,64,64] [--batch 64] [--repeats 5]

One thread, ``torch.set_flush_denormal(True)``; prints the median of ``--repeats`` timings after a warm-up and
the 1-minute load average, since other jobs on the machine slow every number.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from jetviz import losses
from jetviz.models import ConsistencyFunction, EDMDenoiser, JetUNet, UNetConfig, count_parameters
from jetviz.training import step_generator


def median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", nargs="+", default=["16,32,32", "32,64,64"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| channels | params | forward, no grad (s) | DSM step (s) | CT step (s) | 1-step CM jets/s |")
    print("|---|---|---|---|---|---|")
    for ch in a.channels:
        cfg = UNetConfig(block_out_channels=tuple(int(c) for c in ch.split(",")))
        torch.manual_seed(0)
        net = JetUNet(cfg)
        ve, cm = EDMDenoiser(net), ConsistencyFunction(net)
        x = torch.rand(a.batch, 1, 25, 25) * 2 - 1
        y = torch.randint(0, 5, (a.batch,))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def fwd():
            with torch.inference_mode():
                cm(x, torch.full((a.batch,), 80.0), y)

        def step(kind):
            def run():
                g = step_generator(0, 0)
                loss = (losses.dsm_loss(ve, x, y, g) if kind == "dsm"
                        else losses.consistency_training_loss(cm, x, y, g, 11)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            return run

        t_f = median_time(fwd, a.repeats)
        t_d = median_time(step("dsm"), a.repeats)
        t_c = median_time(step("ct"), a.repeats)
        print(f"| {ch} | {count_parameters(net):,} | {t_f:.3f} | {t_d:.3f} | {t_c:.3f} | {a.batch / t_f:.0f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
