"""Reference timing of the migvis diffusion UNet (worker/diffusion/unet.cc) in plain
PyTorch: same layers, same parameter count, same train step (q_sample, MSE on
eps, Adam, clip 1.0) and DDIM step. Run by bench/bench_unet (same run, same
machine); prints one JSON object on stdout.

usage: /usr/bin/python3 bench/python/bench_unet.py --width 32 --mults 1,2,2 --size 32
       --batch 64 --train-steps 3 --fwd-steps 5 --threads 1,2
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.scale = dim ** 0.5

    def forward(self, x):
        return F.normalize(x, dim=1) * self.g * self.scale


class ResnetBlock(nn.Module):
    def __init__(self, din, dout, tdim):
        super().__init__()
        self.time_mlp = nn.Linear(tdim, 2 * dout)
        self.conv1, self.norm1 = nn.Conv2d(din, dout, 3, padding=1), RMSNorm(dout)
        self.conv2, self.norm2 = nn.Conv2d(dout, dout, 3, padding=1), RMSNorm(dout)
        self.res_conv = nn.Conv2d(din, dout, 1) if din != dout else None

    def forward(self, x, temb):
        scale, shift = self.time_mlp(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(self.conv1(x)) * (scale + 1) + shift)
        h = F.silu(self.norm2(self.conv2(h)))
        return h + (self.res_conv(x) if self.res_conv is not None else x)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads, dh):
        super().__init__()
        self.h, self.d = heads, dh
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dh, dim, 1)
        self.out_norm = RMSNorm(dim)

    def forward(self, x):
        b, _, hh, ww = x.shape
        q, k, v = (t.reshape(b, self.h, self.d, hh * ww) for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        q = q.softmax(-2) / math.sqrt(self.d)
        k = k.softmax(-1)
        ctx = k @ v.transpose(-1, -2)
        out = (ctx.transpose(-1, -2) @ q).reshape(b, self.h * self.d, hh, ww)
        return self.out_norm(self.to_out(out))


class Attention(nn.Module):
    def __init__(self, dim, heads, dh):
        super().__init__()
        self.h, self.d = heads, dh
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dh, dim, 1)

    def forward(self, x):
        b, _, hh, ww = x.shape
        q, k, v = (t.reshape(b, self.h, self.d, hh * ww).transpose(-1, -2)
                   for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        attn = (q / math.sqrt(self.d) @ k.transpose(-1, -2)).softmax(-1)
        out = (attn @ v).transpose(-1, -2).reshape(b, self.h * self.d, hh, ww)
        return self.to_out(out)


def space_to_depth(x):
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


class UNet(nn.Module):
    def __init__(self, width=32, mults=(1, 2, 2), channels=1, heads=4, dh=32):
        super().__init__()
        self.width = width
        tdim = 4 * width
        dims = [width] + [width * m for m in mults]
        L = len(mults)
        self.init_conv = nn.Conv2d(channels, width, 7, padding=3)
        self.time_fc1, self.time_fc2 = nn.Linear(width, tdim), nn.Linear(tdim, tdim)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i in range(L):
            din, dout, last = dims[i], dims[i + 1], i + 1 == L
            self.downs.append(nn.ModuleList([
                ResnetBlock(din, din, tdim), ResnetBlock(din, din, tdim),
                Attention(din, heads, dh) if last else LinearAttention(din, heads, dh),
                nn.Conv2d(din, dout, 3, padding=1) if last else nn.Conv2d(din * 4, dout, 1)]))
        mid = dims[-1]
        self.mid1, self.mid_attn, self.mid2 = ResnetBlock(mid, mid, tdim), Attention(mid, heads, dh), ResnetBlock(mid, mid, tdim)
        for j in range(L):
            i = L - 1 - j
            din, dout = dims[i], dims[i + 1]
            self.ups.append(nn.ModuleList([
                ResnetBlock(dout + din, dout, tdim), ResnetBlock(dout + din, dout, tdim),
                Attention(dout, heads, dh) if i + 1 == L else LinearAttention(dout, heads, dh),
                nn.Conv2d(dout, din, 3, padding=1)]))
        self.final_block = ResnetBlock(2 * width, width, tdim)
        self.final_conv = nn.Conv2d(width, channels, 1)

    def forward(self, x, t):
        x = self.init_conv(x)
        r = x
        half = self.width // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        args = t.float()[:, None] * freqs[None]
        temb = self.time_fc2(F.gelu(self.time_fc1(torch.cat([args.sin(), args.cos()], 1))))
        skips = []
        L = len(self.downs)
        for i, (b1, b2, attn, res) in enumerate(self.downs):
            x = b1(x, temb); skips.append(x)
            x = b2(x, temb); x = attn(x) + x; skips.append(x)
            x = res(x if i + 1 == L else space_to_depth(x))
        x = self.mid2(self._mid(x, temb), temb)
        for j, (b1, b2, attn, res) in enumerate(self.ups):
            x = b1(torch.cat([x, skips.pop()], 1), temb)
            x = b2(torch.cat([x, skips.pop()], 1), temb)
            x = attn(x) + x
            if j + 1 < L:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = res(x)
        return self.final_conv(self.final_block(torch.cat([x, r], 1), temb))

    def _mid(self, x, temb):
        x = self.mid1(x, temb)
        return self.mid_attn(x) + x


def sigmoid_abar(T=150):
    t = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    vs, ve = torch.sigmoid(torch.tensor(-3.0, dtype=torch.float64)), torch.sigmoid(torch.tensor(3.0, dtype=torch.float64))
    ab = (-torch.sigmoid(t * 6 - 3) + ve) / (ve - vs)
    ab = ab / ab[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(0, 0.999)
    return torch.cumprod(1 - betas, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--mults", default="1,2,2")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--fwd-steps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    torch.manual_seed(0)
    net = UNet(a.width, tuple(int(m) for m in a.mults.split(",")))
    abar = sigmoid_abar().float()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.99))
    x0 = torch.rand(a.batch, 1, a.size, a.size) * 2 - 1
    out = {"params": sum(p.numel() for p in net.parameters()), "torch": torch.__version__, "train_img_s": {}, "ddim_step_s": {}}
    for th in [int(s) for s in a.threads.split(",")]:
        torch.set_num_threads(th)

        def train_step():
            t = torch.randint(0, 150, (a.batch,))
            noise = torch.randn_like(x0)
            ab = abar[t][:, None, None, None]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
            loss = F.mse_loss(net(xt, t), noise)
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()

        train_step()  # warm-up
        t0 = time.perf_counter()
        for _ in range(a.train_steps):
            train_step()
        out["train_img_s"][str(th)] = a.batch * a.train_steps / (time.perf_counter() - t0)

        def ddim_step(x):
            with torch.no_grad():
                t, tp = 100, 97
                eps = net(x, torch.full((a.batch,), t, dtype=torch.long))
                at, ap_ = float(abar[t]), float(abar[tp])
                x0h = ((x - math.sqrt(1 - at) * eps) / math.sqrt(at)).clamp(-1, 1)
                e = (x - math.sqrt(at) * x0h) / math.sqrt(1 - at)
                return math.sqrt(ap_) * x0h + math.sqrt(1 - ap_) * e

        x = torch.randn_like(x0)
        ddim_step(x)
        t0 = time.perf_counter()
        for _ in range(a.fwd_steps):
            x = ddim_step(x)
        out["ddim_step_s"][str(th)] = (time.perf_counter() - t0) / a.fwd_steps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
