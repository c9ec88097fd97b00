#!/usr/bin/python3
"""PyTorch reference for `npm run bench:speed`: the same three cases as bench/speed-step.ts, in plain
PyTorch (float32, CPU). Run with Debian's interpreter, which has python3-torch (1.13):

    /usr/bin/python3 bench/torch_ref.py --case mlp-sll|mlp-bp|conv-unit|vit-unit|vgg11-step|vgg11-bp|vgg11-bn-step|vgg11-bn-bp [--threads T] [--steps S] [--warmup W]

The mlp cases also run on a GPU for bench/gpu.sh: `--device cuda [--batch B]` times them there (masks drawn on
the GPU), and `--device cuda --memory-depths 2,4,8,16` prints the peak CUDA memory of one step at each depth
instead ({case, engine, device, batch, depth, method, peak_bytes, held_bytes, activation_peak_bytes}).
`--matmuls [--device cuda] [--batch B] [--width N]` times the MLP step's large matrix products on their own,
as `npm run bench:gpu -- --matmuls` does ours: one JSON line per product {product, engine: "torch", device,
batch, m, n, k, ms, gflops, tf32}.

Thread counts: torch.set_num_threads(T) here; OMP_NUM_THREADS and OPENBLAS_NUM_THREADS must be set by the
caller before the process starts (OpenBLAS reads them at load), as bench/speed.ts does: OMP_NUM_THREADS=T,
OPENBLAS_NUM_THREADS=1 and OMP_WAIT_POLICY=PASSIVE (GNU OpenMP's spin-waiting makes 2 threads 5-10x slower
when other jobs share the 2 cores).

Cases (same shapes, masks and losses as ours; initial weights differ):
- mlp-sll: MLP 784-1024-1024-1024, 3 local ReLU units, each with a fixed head R_i (1024 x 10, N(0,1)/sqrt(d))
  under a fresh Bernoulli(0.5) mask every step divided by keep; unit loss CE(v_i, y) + lambda *
  mean(-logsumexp((logsoftmax(v_i) + logsoftmax(v_{i-1}.detach())) / 2)), no alignment term on unit 1;
  each unit its own Adam (1e-3, 0.9/0.999, eps 1e-8); each unit's input is .detach()ed. Batch 128.
- mlp-bp: the same MLP plus a trainable Linear(1024, 10), end-to-end CE, one Adam.
- conv-unit: input 64x64x32x32 (NCHW), conv3x3 64->64 padding 1 + ReLU, adaptive average pooling to 2x2,
  flattened in NHWC order (as ours) to 256 features, masked R (256 x 10), CE + BC against fixed random
  parent logits, Adam over the conv weight and bias.
- vit-unit: one SLL^{2+} unit of a ViT: patch embedding (conv 4x4 stride 4 of 32x32x3 images to 192 channels,
  a class token, learned positions: 65 tokens), two pre-norm blocks (LayerNorm eps 1e-6, 3-head attention
  with separate q, k, v maps, GELU MLP 768), the head R (192 x 10, masked) on the class token, CE (no parent),
  one Adam over the unit; batch 128.
- vgg11-step: VGG-11 at half width (32-64-128-128-256-256-256-256 channels) on 28x28x1 inputs, batch 128, one
  SLL unit per conv layer (conv3x3 + ReLU [+ 2x2 max-pool with ceil_mode, as tfjs's 'same' pooling]), each head
  adaptive-average-pooling its unit's output to s x s x C with s*s*C <= 4096 (read whole when it fits), masked R,
  eq. (5) against the previous unit's logits, Adam per unit. vgg11-bp: the same network, a Linear(256, 10)
  classifier of h_8, end-to-end CE, one Adam. vgg11-bn-step, vgg11-bn-bp: the same with batch norm between
  each conv (then without bias) and its ReLU, in training mode (batch statistics).

Prints one JSON line on stdout: {case, engine: "torch", threads, steps_ms, first_loss}; progress on stderr.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

K = 10
KEEP = 0.5
LAMBDA = 1.0
LR = 1e-3


def he_uniform_(w, fan_in):
    limit = math.sqrt(6.0 / fan_in)
    with torch.no_grad():
        w.uniform_(-limit, limit)
    return w


def make_adam(params):
    return torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999), eps=1e-8)


def head(d, gen):
    return torch.randn(d, K, generator=gen) / math.sqrt(d)


def masked(r, gen):
    """r under a fresh Bernoulli(KEEP) mask, drawn where r lives (gen is a generator on r's device)."""
    return r * ((torch.rand(r.shape, generator=gen, device=r.device) < KEEP).float() / KEEP)


def unit_loss(v, y, parent):
    ce = F.cross_entropy(v, y)
    if parent is None or LAMBDA == 0:
        return ce
    log_bc = torch.logsumexp((F.log_softmax(v, 1) + F.log_softmax(parent.detach(), 1)) * 0.5, 1)
    return ce + LAMBDA * (-log_bc).mean()


def labels(n, seed):
    """The LCG labels of speed-step.ts."""
    out, s = [], seed
    for _ in range(n):
        s = (s * 1664525 + 1013904223) % (1 << 32)
        out.append(s % K)
    return torch.tensor(out, dtype=torch.long)


def linear(fan_in, fan_out, init="he"):
    layer = torch.nn.Linear(fan_in, fan_out)
    if init == "he":
        he_uniform_(layer.weight, fan_in)
    else:  # glorot uniform, as tfjs's default for the BP classifier
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            layer.weight.uniform_(-limit, limit)
    with torch.no_grad():
        layer.bias.zero_()
    return layer


def device_generator(device):
    """The generator of the masks: on the GPU for CUDA, so that no mask is uploaded per step."""
    return torch.Generator(device=device).manual_seed(1)


def mlp_sll(batch=128, width=1024, depth=3, device="cpu"):
    gen = torch.Generator().manual_seed(0)
    dims = [784] + [width] * depth
    layers = [linear(dims[i], dims[i + 1]).to(device) for i in range(depth)]
    heads = [head(width, gen).to(device) for _ in range(depth)]
    opts = [make_adam(l.parameters()) for l in layers]
    x = torch.randn(batch, 28, 28, 1, generator=gen).to(device)
    y = labels(batch, 2).to(device)
    gen = device_generator(device)

    def step(_):
        h = x.reshape(batch, -1)
        parent = None
        losses = []
        for layer, r, opt in zip(layers, heads, opts):
            hi = F.relu(layer(h.detach()))
            v = hi @ masked(r, gen)
            loss = unit_loss(v, y, parent)
            (v.detach().argmax(1) == y).sum()  # the library's per-unit accuracy statistic
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            h, parent = hi, v.detach()
        return losses

    return step


def mlp_bp(batch=128, width=1024, depth=3, device="cpu"):
    gen = torch.Generator().manual_seed(0)
    dims = [784] + [width] * depth
    mods = []
    for i in range(depth):
        mods += [linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
    net = torch.nn.Sequential(*mods, linear(width, K, init="glorot")).to(device)
    opt = make_adam(net.parameters())
    x = torch.randn(batch, 28, 28, 1, generator=gen).to(device)
    y = labels(batch, 2).to(device)

    def step(_):
        logits = net(x.reshape(batch, -1))
        loss = F.cross_entropy(logits, y)
        (logits.detach().argmax(1) == y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return [loss.item()]

    return step


def conv_unit(batch=64, size=32, channels=64, grid=2):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=gen)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    he_uniform_(conv.weight, 9 * channels)
    with torch.no_grad():
        conv.bias.zero_()
    r = head(grid * grid * channels, gen)
    parent = torch.randn(batch, K, generator=gen)
    y = labels(batch, 2)
    opt = make_adam(conv.parameters())

    def step(_):
        h = F.relu(conv(x))
        pooled = F.adaptive_avg_pool2d(h, grid).permute(0, 2, 3, 1).reshape(batch, -1)
        v = pooled @ masked(r, gen)
        loss = unit_loss(v, y, parent)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return [loss.item()]

    return step


VGG11_HALF = [32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256, "M"]
POOL_DIM = 4096


def pool_side(h, w, c, pool_dim=POOL_DIM):
    """s of the library's s x s head pooling (projection.ts, spatialPoolSide): the largest s <= min(h, w) with
    s*s*c <= pool_dim; None when the unit's output is read whole."""
    if h * w * c <= pool_dim:
        return None
    side = 1
    while side + 1 <= min(h, w) and (side + 1) ** 2 * c <= pool_dim:
        side += 1
    return None if side == h and side == w else side


def vgg_units(gen, size=28, channels=1, batch_norm=False):
    """The library's VGG-11 at half width as units: conv3x3 'same' (+ batch norm, the conv then without bias,
    eps 1e-3 and momentum 0.01 as tfjs-layers' defaults) + ReLU [+ 2x2 max-pool rounding up, as tfjs's 'same'
    pooling: 28-14-7-4-2-1], each with its head's pooling side and R."""
    units, c, hw = [], channels, size
    for i, v in enumerate(VGG11_HALF):
        if v == "M":
            continue
        conv = torch.nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm)
        with torch.no_grad():  # He normal, as the library's heNormal
            conv.weight.normal_(0, math.sqrt(2.0 / (9 * c)), generator=gen)
            if conv.bias is not None:
                conv.bias.zero_()
        bn = torch.nn.BatchNorm2d(v, eps=1e-3, momentum=0.01) if batch_norm else None
        pool = i + 1 < len(VGG11_HALF) and VGG11_HALF[i + 1] == "M"
        c = v
        if pool:
            hw = (hw + 1) // 2
        side = pool_side(hw, hw, c)
        d = (side * side if side else hw * hw) * c
        units.append({"conv": conv, "bn": bn, "pool": pool, "side": side, "r": head(d, gen)})
    return units, c * hw * hw


def vgg_params(unit):
    return [*unit["conv"].parameters(), *(unit["bn"].parameters() if unit["bn"] is not None else [])]


def vgg_forward(unit, x):
    h = unit["conv"](x)
    h = F.relu(unit["bn"](h) if unit["bn"] is not None else h)
    return F.max_pool2d(h, 2, 2, ceil_mode=True) if unit["pool"] else h


def vgg_features(unit, h):
    if unit["side"]:
        h = F.adaptive_avg_pool2d(h, unit["side"])
    return h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # NHWC order, as the library flattens


def vgg11_step(batch=128, batch_norm=False):
    """One SLL step of VGG-11 at half width on 28x28x1: 8 local units, heads as the library's, Adam per unit."""
    gen = torch.Generator().manual_seed(0)
    units, _ = vgg_units(gen, batch_norm=batch_norm)
    opts = [make_adam(vgg_params(u)) for u in units]
    x = torch.randn(batch, 1, 28, 28, generator=gen)
    y = labels(batch, 2)

    def step(_):
        h, parent, losses = x, None, []
        for u, opt in zip(units, opts):
            hi = vgg_forward(u, h.detach())
            v = vgg_features(u, hi) @ masked(u["r"], gen)
            loss = unit_loss(v, y, parent)
            (v.detach().argmax(1) == y).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            h, parent = hi, v.detach()
        return losses

    return step


def vgg11_bp(batch=128, batch_norm=False):
    """The same network trained end to end through a linear classifier of h_8 (flattened), one Adam."""
    gen = torch.Generator().manual_seed(0)
    units, features = vgg_units(gen, batch_norm=batch_norm)
    classifier = linear(features, K, init="glorot")
    params = [p for u in units for p in vgg_params(u)] + list(classifier.parameters())
    opt = make_adam(params)
    x = torch.randn(batch, 1, 28, 28, generator=gen)
    y = labels(batch, 2)

    def step(_):
        h = x
        for u in units:
            h = vgg_forward(u, h)
        logits = classifier(h.permute(0, 2, 3, 1).reshape(batch, -1))
        loss = F.cross_entropy(logits, y)
        (logits.detach().argmax(1) == y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return [loss.item()]

    return step


class Block(torch.nn.Module):
    """A pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)), as the library's TransformerBlock."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.q, self.k, self.v = (torch.nn.Linear(dim, dim) for _ in range(3))
        self.proj = torch.nn.Linear(dim, dim)
        self.ln2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        split = lambda z: z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def vit_unit(batch=128, size=32, channels=3, patch=4, dim=192, heads=3, mlp_ratio=4, blocks=2):
    gen = torch.Generator().manual_seed(0)
    tokens = 1 + (size // patch) ** 2
    embed = torch.nn.Conv2d(channels, dim, patch, stride=patch)
    cls = torch.nn.Parameter(torch.zeros(1, 1, dim))
    pos = torch.nn.Parameter(torch.randn(1, tokens, dim, generator=gen) * 0.02)
    body = torch.nn.Sequential(*(Block(dim, heads, dim * mlp_ratio) for _ in range(blocks)))
    r = head(dim, gen)
    x = torch.randn(batch, channels, size, size, generator=gen)
    y = labels(batch, 2)
    opt = make_adam([*embed.parameters(), cls, pos, *body.parameters()])

    def step(_):
        patches = embed(x.detach()).flatten(2).transpose(1, 2)
        h = body(torch.cat([cls.expand(batch, -1, -1), patches], 1) + pos)
        v = h[:, 0] @ masked(r, gen)
        loss = unit_loss(v, y, None)
        (v.detach().argmax(1) == y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return [loss.item()]

    return step


CASES = {"mlp-sll": mlp_sll, "mlp-bp": mlp_bp, "conv-unit": conv_unit, "vit-unit": vit_unit,
         "vgg11-step": vgg11_step, "vgg11-bp": vgg11_bp,
         "vgg11-bn-step": lambda: vgg11_step(batch_norm=True), "vgg11-bn-bp": lambda: vgg11_bp(batch_norm=True)}


MLP_CASES = ("mlp-sll", "mlp-bp")


MATMULS = ("forward-in", "forward", "weights-in", "weights", "head")


def matmul_rows(batch, width, device, reps, warmup):
    """The MLP step's large products (bench/gpu.ts's --matmuls), each run `reps` times after `warmup`."""
    gen = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for product in MATMULS:
        fan_in = 784 if product.endswith("-in") else width
        a = torch.randn(batch, fan_in, generator=gen).to(device)
        if product == "head":  # h (M * R), a unit's head (the mask drawn beforehand, as in mlp_sll's step)
            r = masked(head(width, gen), gen).to(device)
            run = lambda: a @ r
        elif product.startswith("forward"):  # relu(a W + b), as a unit's layer
            w, bias = torch.randn(fan_in, width, generator=gen).to(device), torch.randn(width, generator=gen).to(device)
            run = lambda: F.relu(torch.addmm(bias, a, w))
        else:  # a^T dz, as a layer's weight gradient
            dz = torch.randn(batch, width, generator=gen).to(device)
            run = lambda: a.t() @ dz
        for _ in range(warmup):
            run()
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            out = run()
        sync()
        ms = (time.perf_counter() - t0) * 1000 / reps
        m, n = out.shape
        k = batch if product.startswith("weights") else fan_in
        yield {"product": product, "engine": "torch", "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "batch": batch, "m": m, "n": n, "k": k, "ms": round(ms, 3), "gflops": round(2 * m * n * k / (ms * 1e6), 1),
               "tf32": torch.backends.cuda.matmul.allow_tf32}


def cuda_memory(case, depth, batch, device, warmup):
    """Peak CUDA memory of one step after `warmup` steps (optimizer state made), as `sll bench memory` rows."""
    step = CASES[case](batch=batch, depth=depth, device=device)
    for i in range(warmup):
        step(i)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(warmup)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"case": case, "engine": "torch", "device": torch.cuda.get_device_name(), "batch": batch, "depth": depth,
            "method": case.split("-")[1], "peak_bytes": peak, "held_bytes": before, "activation_peak_bytes": peak - before}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--matmuls", action="store_true", help="time the MLP step's large products instead of a case")
    ap.add_argument("--width", type=int, default=1024, help="--matmuls: the MLP's width")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="mlp cases only: run on the GPU")
    ap.add_argument("--batch", type=int, help="mlp cases: the batch size (default 128)")
    ap.add_argument("--memory-depths", help="cuda, mlp cases: print the peak memory of one step at each depth "
                    "(comma-separated unit counts) instead of timing")
    ap.add_argument("--json", action="store_true", help="accepted for symmetry; the output is always JSON")
    args = ap.parse_args()
    if args.matmuls == (args.case is not None):
        ap.error("give one of --case and --matmuls")
    mlp = args.case in MLP_CASES or args.matmuls
    if (args.device != "cpu" or args.batch or args.memory_depths) and not mlp:
        ap.error("--device, --batch and --memory-depths apply to the mlp cases and --matmuls only")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_ref.py: --device cuda, but torch.cuda.is_available() is False")
    if args.memory_depths and args.matmuls:
        ap.error("--memory-depths goes with --case")
    if args.memory_depths and args.device != "cuda":
        ap.error("--memory-depths measures CUDA memory: it needs --device cuda")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = {"batch": args.batch or 128, "device": args.device} if mlp else {}
    if args.matmuls:
        for row in matmul_rows(kwargs["batch"], args.width, args.device, args.steps, args.warmup):
            print(json.dumps(row), flush=True)
        return
    if args.memory_depths:
        for depth in (int(d) for d in args.memory_depths.split(",")):
            print(json.dumps(cuda_memory(args.case, depth, kwargs["batch"], args.device, args.warmup)), flush=True)
        return
    tag = f"[{args.case} torch {args.device} t{args.threads} omp={os.environ.get('OMP_NUM_THREADS')} blas={os.environ.get('OPENBLAS_NUM_THREADS')}]"
    step = CASES[args.case](**kwargs)
    times, first = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        losses = step(i)  # .item() on each loss waits for the GPU: the step is whole when it returns
        ms = (time.perf_counter() - t0) * 1000
        if i == 0:
            first = losses
        if i >= args.warmup:
            times.append(ms)
        kind = "warm-up" if i < args.warmup else "step"
        print(f"{tag} {kind} {i + 1}/{args.warmup + args.steps}: {ms:.1f} ms, loss {' '.join(f'{l:.4f}' for l in losses)}",
              file=sys.stderr, flush=True)
    row = {"case": args.case, "engine": "torch", "threads": args.threads, "torch_threads": torch.get_num_threads(),
           "steps_ms": times, "first_loss": first}
    if mlp:
        row.update(device=torch.cuda.get_device_name() if args.device == "cuda" else "cpu", batch=kwargs["batch"])
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
