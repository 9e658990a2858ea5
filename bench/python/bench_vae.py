#!/usr/bin/python3
"""Reference timing for bench/bench_vae.cc: the same MIG-Vis VAE training step
(encoder Linear(M, 64) -> ReLU -> (mu, logvar) of D = G*R; linear decoder; MSE
recon + KL + group TC by minibatch-weighted sampling + pose MSE + 0.1 CE; Adam
with weight decay) as a plain PyTorch loop, with the group-TC estimator in the
reference code's formulation: elementwise over a [B, B, D] tensor. Prints one
JSON line: {"threads": T, "steps_per_s": ..., "peak_rss_delta_mb": ...} (peak
resident set over the timed steps minus the resident set before them)."""
import argparse
import json
import math
import time

import torch


class Vae(torch.nn.Module):
    def __init__(self, m, groups, rank, hidden, pose_dims, n_classes):
        super().__init__()
        d = groups * rank
        self.rank = rank
        self.read_in = torch.nn.Linear(m, hidden)
        self.mu = torch.nn.Linear(hidden, d)
        self.logvar = torch.nn.Linear(hidden, d)
        self.read_out = torch.nn.Linear(d, m)
        self.pose_scale = torch.nn.Parameter(torch.randn(pose_dims) * 0.01)
        self.classifier = torch.nn.Linear(rank, n_classes)

    def forward(self, x):
        h = torch.relu(self.read_in(x))
        mu, lv = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * lv)
        p = self.pose_scale.numel()
        return mu, lv, z, self.read_out(z), z[:, :p] * self.pose_scale, self.classifier(z[:, self.rank:2 * self.rank])


def group_tc(z, mu, lv, group_size):
    b, d = z.shape
    ld = -0.5 * (math.log(2 * math.pi) + lv.unsqueeze(0) + (z.unsqueeze(1) - mu.unsqueeze(0)) ** 2 * torch.exp(-lv.unsqueeze(0)))
    log_norm = math.log(b)
    log_qz = torch.logsumexp(ld.sum(2), 1) - log_norm
    log_qzg = (torch.logsumexp(ld.view(b, b, d // group_size, group_size).sum(3), 1) - log_norm).sum(1)
    return (log_qz - log_qzg).mean()


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return -1.0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--neurons", type=int, default=168)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--w-tc", type=float, default=0.02)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    groups, rank, hidden, pose_dims, n_classes = 4, 6, 64, 6, 8
    model = Vae(a.neurons, groups, rank, hidden, pose_dims, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    x = torch.randn(a.batch, a.neurons)
    pose = torch.randn(a.batch, pose_dims)
    cat = torch.randint(n_classes, (a.batch,))

    def step():
        opt.zero_grad()
        mu, lv, z, rec, pose_hat, logits = model(x)
        kl = (0.5 * (mu ** 2 + torch.exp(lv) - 1 - lv)).mean()
        loss = (torch.nn.functional.mse_loss(rec, x) + 0.2 * (torch.nn.functional.mse_loss(pose_hat, pose)
                + 0.1 * torch.nn.functional.cross_entropy(logits, cat)) + 0.002 * kl + a.w_tc * group_tc(z, mu, lv, rank))
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    peak_ok = reset_peak_rss()
    rss0 = status_kb("VmRSS")
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    hwm = status_kb("VmHWM")
    delta = (hwm - rss0) / 1024.0 if peak_ok and rss0 > 0 and hwm > 0 else None
    print(json.dumps({"threads": a.threads, "steps_per_s": a.steps / dt, "peak_rss_delta_mb": delta,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
