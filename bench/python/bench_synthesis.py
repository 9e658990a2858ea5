"""Reference timing of MI-guided synthesis (worker/synthesis/guided.cc) in plain
PyTorch: the same UNet (bench_unet.py's, which mirrors worker/diffusion/unet.cc),
the same CNN critic (worker/critic/critic.cc: ConvEncoder + one GroupHead per
group, per-item InfoNCE loss), the same schedule, SDEdit start, DDIM steps (x0_hat clipped in the step),
guidance eps' = eps + gamma * dL/dx_t with either gradient: x0 (the reference's:
UNet forward in inference mode, critic differentiated w.r.t. x0_hat, dL/dx_t =
dL/dx0_hat / sqrt(abar)) or unet (through the UNet, with the gamma == 0 split:
guided items forward + backward, the rest forward only); the critic runs on
guided items only, x0_hat not clipped before it; negatives optionally redrawn
per item and step. Run by bench/bench_synthesis (same run, same machine, same
flags); prints one JSON object on stdout.

usage: /usr/bin/python3 bench/python/bench_synthesis.py --size 32 --width 32 --mults 1,2,2
       --attn-heads 4 --attn-dim-head 32 --timesteps 150 --schedule sigmoid --edit-t 135
       --steps 5 --negatives 10 --items 32 --loop-items 8 --gammas 25,50,75,100 --guidance-grad x0
       --resample-negatives 1 --threads 2 --reps 3
"""
import argparse, json, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_unet import UNet  # noqa: E402


# ---- schedule (worker/diffusion/schedule.cc) ----
def make_abar(T, schedule):
    """abar_t, t = 0..T-1, float64 (linear / cosine / sigmoid as in schedule.cc)."""
    f64 = torch.float64
    if schedule == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=f64).clamp(1e-8, 0.999)
    else:
        t = torch.linspace(0, 1, T + 1, dtype=f64)
        if schedule == "cosine":
            s = 0.008
            ab = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
        elif schedule == "sigmoid":
            start, end, tau = -3.0, 3.0, 1.0
            vs, ve = 1 / (1 + math.exp(-start / tau)), 1 / (1 + math.exp(-end / tau))
            ab = (-torch.sigmoid((t * (end - start) + start) / tau) + ve) / (ve - vs)
        else:
            raise SystemExit(f"--schedule: expected linear, cosine or sigmoid, got {schedule!r}")
        ab = ab / ab[0]
        betas = (1 - ab[1:] / ab[:-1]).clamp(0, 0.999)
    return [float(v) for v in torch.cumprod(1 - betas, 0)]


def llround(v):
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def edit_timesteps(edit_t, steps):
    """diffusion::ddim_timesteps(edit_t, clamp(steps, 1, edit_t + 1)): edit_t ... -1."""
    steps = max(1, min(steps, edit_t + 1))
    seq = [0] * (steps + 1)
    for i in range(steps + 1):
        seq[steps - i] = llround(-1.0 + (edit_t + 1) * i / steps)
    return seq


# ---- critic (worker/critic/critic.cc, trunk: worker/image_trunk.cc) ----
class ImageTrunk(nn.Module):
    def __init__(self, channels, w):
        super().__init__()
        layers = []
        def block(i, o):
            layers.extend([nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(math.gcd(8, o), o), nn.SiLU()])
        block(channels, w); block(w, w); layers.append(nn.MaxPool2d(2))
        block(w, 2 * w); block(2 * w, 2 * w); layers.append(nn.MaxPool2d(2))
        block(2 * w, 4 * w); block(4 * w, 4 * w)
        self.body = nn.Sequential(*layers)
        self.out_features = 20 * w

    def forward(self, x):  # [B, C, S, S] in [-1, 1] -> [B, 20w]
        h = self.body(x)
        return torch.cat([h.mean((2, 3)), F.adaptive_avg_pool2d(h, 2).flatten(1)], 1)


class ConvEncoder(nn.Module):
    def __init__(self, channels, w, feature_dim):
        super().__init__()
        self.body = ImageTrunk(channels, w)
        self.head = nn.Linear(self.body.out_features, feature_dim)

    def forward(self, x):  # [B, C, S, S] in [0, 1] -> [B, F]
        return self.head(self.body(x * 2 - 1))


class GroupHead(nn.Module):
    def __init__(self, rank, feature_dim, embed_dim):
        super().__init__()
        self.z_net = nn.Sequential(nn.Linear(rank, 64), nn.SiLU(), nn.Linear(64, embed_dim))
        self.h_net = nn.Linear(feature_dim, embed_dim)


class Critic(nn.Module):
    def __init__(self, groups, rank, channels, size, width, feature_dim, embed_dim):
        super().__init__()
        self.size, self.rank, self.embed_dim = size, rank, embed_dim
        self.encoder = ConvEncoder(channels, width, feature_dim)
        self.heads = nn.ModuleList([GroupHead(rank, feature_dim, embed_dim) for _ in range(groups)])
        self.register_buffer("z_mean", torch.zeros(groups * rank))
        self.register_buffer("z_std", torch.ones(groups * rank))

    def features(self, x):  # [B, C, H, W] in [0, 1] -> [B, F]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.encoder(x)

    def item_losses(self, h, z_cand, group):  # h [B, F], z_cand [B, 1+K, R], group [B] -> [B]
        per_group = []
        r = self.rank
        for g, head in enumerate(self.heads):
            z = (z_cand - self.z_mean[g * r:(g + 1) * r]) / self.z_std[g * r:(g + 1) * r]
            s = (head.z_net(z) * head.h_net(h).unsqueeze(1)).sum(-1) / math.sqrt(self.embed_dim)  # [B, 1+K]
            per_group.append(s.logsumexp(1) - s[:, 0])
        return torch.stack(per_group, 0).gather(0, group.view(1, -1)).squeeze(0)


# ---- guided edit (worker/synthesis/guided.cc) ----
class NegativeSampler:
    """Per item and call: K pool rows other than the target, in the item's group (guided items only)."""
    def __init__(self, z_pool, target_row, seeds, gamma):
        self.z_pool, self.target_row = z_pool, target_row
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.guided = [i for i in range(len(seeds)) if float(gamma[i]) != 0]

    def next(self, z_cand, group):
        k, r, n = z_cand.shape[1] - 1, z_cand.shape[2], self.z_pool.shape[0]
        out = z_cand.clone()
        for i in self.guided:
            rows = torch.randperm(n - 1, generator=self.gens[i])[:k]
            rows = rows + (rows >= self.target_row[i]).long()
            g = int(group[i])
            out[i, 1:] = self.z_pool.index_select(0, rows)[:, g * r:(g + 1) * r]
        return out


def guided_eps(model, critic, abar, x_t, t, z_cand, group, gamma, clip_x0=False, grad="x0"):
    a = abar[t]
    tt = lambda n: torch.full((n,), t, dtype=torch.long)  # noqa: E731
    guided = gamma != 0
    if not bool(guided.any()):
        with torch.inference_mode():
            return model(x_t, tt(x_t.shape[0]))
    mixed = not bool(guided.all())
    gi = guided.nonzero().squeeze(1) if mixed else None
    pick = (lambda v: v.index_select(0, gi)) if mixed else (lambda v: v)

    def loss_of(x0):
        return critic.item_losses(critic.features(((x0.clamp(-1, 1) if clip_x0 else x0) + 1) * 0.5), pick(z_cand),
                                  pick(group))

    if grad == "x0":
        with torch.inference_mode():
            eps_m = model(x_t, tt(x_t.shape[0]))
        with torch.enable_grad():
            x0 = ((pick(x_t) - math.sqrt(1 - a) * pick(eps_m)) / math.sqrt(a)).requires_grad_(True)
            grad_g, = torch.autograd.grad(loss_of(x0).sum(), x0)
        grad_g = grad_g / math.sqrt(a)
    else:
        with torch.enable_grad():
            x = pick(x_t).detach().requires_grad_(True)
            eps = model(x, tt(x.shape[0]))
            grad_g, = torch.autograd.grad(loss_of((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).sum(), x)
        eps_g = eps.detach()
        if not mixed:
            eps_m = eps_g
        else:
            ui = guided.logical_not().nonzero().squeeze(1)
            with torch.inference_mode():
                eps_u = model(x_t.index_select(0, ui), tt(ui.numel()))
            eps_m = torch.empty_like(x_t).index_copy_(0, gi, eps_g).index_copy_(0, ui, eps_u)
    grad_all = grad_g if not mixed else torch.zeros_like(x_t).index_copy_(0, gi, grad_g)
    return eps_m + gamma.view(-1, 1, 1, 1) * grad_all


def ddim_step(abar, x, eps, t, t_prev, clip_x0=True):  # eta = 0
    a, ap = abar[t], (abar[t_prev] if t_prev >= 0 else 1.0)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    e = eps
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        e = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    return math.sqrt(ap) * x0 + math.sqrt(max(0.0, 1 - ap)) * e


def guided_edit(model, critic, abar, ts, x_source, z_cand, group, gamma, seeds, grad, sampler):
    a = abar[ts[0]]
    noise = torch.stack([torch.randn(x_source.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])
    x = math.sqrt(a) * x_source + math.sqrt(1 - a) * noise
    for t, tp in zip(ts[:-1], ts[1:]):
        zc = sampler.next(z_cand, group) if sampler else z_cand
        eps = guided_eps(model, critic, abar, x, t, zc, group, gamma, grad=grad)
        with torch.no_grad():
            x = ddim_step(abar, x, eps, t, tp)
    return x.clamp(-1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--mults", default="1,2,2")
    ap.add_argument("--attn-heads", type=int, default=4)
    ap.add_argument("--attn-dim-head", type=int, default=32)
    ap.add_argument("--timesteps", type=int, default=150)
    ap.add_argument("--schedule", default="sigmoid")
    ap.add_argument("--edit-t", type=int, default=135)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--negatives", type=int, default=10)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--loop-items", type=int, default=8)
    ap.add_argument("--gammas", default="25,50,75,100")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-rank", type=int, default=6)
    ap.add_argument("--critic-width", type=int, default=16)
    ap.add_argument("--critic-size", type=int, default=0)  # 0: --size
    ap.add_argument("--feature-dim", type=int, default=64)
    ap.add_argument("--embed-dim", type=int, default=32)
    ap.add_argument("--guidance-grad", default="x0", choices=["x0", "unet"])
    ap.add_argument("--resample-negatives", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    unet = UNet(a.width, tuple(int(m) for m in a.mults.split(",")), 1, a.attn_heads, a.attn_dim_head).eval()
    critic = Critic(a.groups, a.group_rank, 1, a.critic_size or a.size, a.critic_width, a.feature_dim,
                    a.embed_dim).eval()
    for p in list(unet.parameters()) + list(critic.parameters()):
        p.requires_grad_(False)
    abar = make_abar(a.timesteps, a.schedule)
    if not 0 <= a.edit_t < a.timesteps:
        raise SystemExit(f"--edit-t {a.edit_t} outside [0, {a.timesteps})")
    ts = edit_timesteps(a.edit_t, a.steps)
    gammas = [float(g) for g in a.gammas.split(",")]
    n, gm = a.items, len(gammas)
    x_source = torch.rand(n, 1, a.size, a.size) * 2 - 1
    z_cand = torch.randn(n, 1 + a.negatives, a.group_rank)
    gamma = torch.tensor([gammas[i % gm] for i in range(n)], dtype=torch.float32)
    group = torch.tensor([(i // gm) % a.groups for i in range(n)], dtype=torch.long)
    seeds = list(range(n))
    n_pool = max(64, a.negatives + 2)
    z_pool = torch.randn(n_pool, a.groups * a.group_rank)
    target_row = [i % n_pool for i in range(n)]
    neg_seeds = [1000 + i for i in range(n)]

    def run(lo, hi):
        sampler = (NegativeSampler(z_pool, target_row[lo:hi], neg_seeds[lo:hi], gamma[lo:hi])
                   if a.resample_negatives else None)
        return guided_edit(unet, critic, abar, ts, x_source[lo:hi], z_cand[lo:hi], group[lo:hi], gamma[lo:hi],
                           seeds[lo:hi], a.guidance_grad, sampler)

    run(0, 2)  # warm-up
    batched_s = loop_s = float("inf")
    for _ in range(a.reps):
        t0 = time.perf_counter()
        xb = run(0, n)
        batched_s = min(batched_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        xl = [run(i, i + 1) for i in range(a.loop_items)]
        loop_s = min(loop_s, time.perf_counter() - t0)
    max_diff = max(float((xl[i][0] - xb[i]).abs().max()) for i in range(a.loop_items)) if a.loop_items else 0.0

    # One denoising step at t = edit_t on the whole batch: unguided (forward in
    # inference mode) and guided with each gradient, each with its negative draw.
    t, tp = ts[0], ts[1]
    x = torch.randn(n, 1, a.size, a.size)
    sampler = NegativeSampler(z_pool, target_row, neg_seeds, gamma)
    step_s = {"ddim": float("inf"), "x0": float("inf"), "unet": float("inf"), "draw": float("inf")}
    for _ in range(a.reps + 1):
        t0 = time.perf_counter()
        with torch.inference_mode():
            ddim_step(abar, x, unet(x, torch.full((n,), t, dtype=torch.long)), t, tp)
        step_s["ddim"] = min(step_s["ddim"], time.perf_counter() - t0)
        for kind in ("x0", "unet"):
            t0 = time.perf_counter()
            eps = guided_eps(unet, critic, abar, x, t, sampler.next(z_cand, group), group, gamma, grad=kind)
            with torch.no_grad():
                ddim_step(abar, x, eps, t, tp)
            step_s[kind] = min(step_s[kind], time.perf_counter() - t0)
        t0 = time.perf_counter()
        sampler.next(z_cand, group)
        step_s["draw"] = min(step_s["draw"], time.perf_counter() - t0)

    out = {
        "torch": torch.__version__,
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "critic_params": sum(p.numel() for p in critic.parameters()),
        "timesteps_walked": ts,
        "batched_s": batched_s, "loop_s": loop_s,
        "batched_images_per_s": n / batched_s,
        "loop_images_per_s": a.loop_items / loop_s if a.loop_items else 0.0,
        "max_abs_batched_minus_loop": max_diff,
        "ddim_step_s": step_s["ddim"], "guided_step_x0_s": step_s["x0"], "guided_step_unet_s": step_s["unet"],
        "negative_draw_s": step_s["draw"],
        "x0_step_over_unguided": step_s["x0"] / step_s["ddim"],
        "unet_step_over_unguided": step_s["unet"] / step_s["ddim"],
        "mean_abs_x0": float(xb.abs().mean()),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
