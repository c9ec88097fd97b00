#!/usr/bin/env python3
"""PyTorch reference for native/bench-conv.mjs: one SLL conv-unit training step on CPU.

x: 64x64x32x32 (NCHW here; the tfjs side is NHWC 64x32x32x64), conv3x3 64->64 pad 1 + ReLU, adaptive average
pool to 2x2, flatten to 256, fixed 256x10 projection, softmax cross-entropy + Bhattacharyya alignment to
fixed parent logits, backward (weights only: the input needs no gradient), Adam (lr 1e-3, eps 1e-8).
Prints the median ms/step.

  /usr/bin/python3 native/bench-conv-torch.py [--threads 1] [--steps 10] [--warmup 3] [--channels-last]
"""
import argparse
import os
import statistics
import time

p = argparse.ArgumentParser()
p.add_argument('--threads', type=int, default=1)
p.add_argument('--steps', type=int, default=10)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--batch', type=int, default=64)
p.add_argument('--channels-last', action='store_true')
args = p.parse_args()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
B, C, H, W, K = args.batch, 64, 32, 32, 10
x = torch.rand(B, C, H, W)
if args.channels_last:
    x = x.contiguous(memory_format=torch.channels_last)
conv = torch.nn.Conv2d(C, C, 3, padding=1)
if args.channels_last:
    conv = conv.to(memory_format=torch.channels_last)
R = torch.randn(4 * C, K) / 16.0
parent = torch.randn(B, K)
y = torch.randint(0, K, (B,))
opt = torch.optim.Adam(conv.parameters(), lr=1e-3, eps=1e-8)


def step():
    opt.zero_grad(set_to_none=True)
    h = F.relu(conv(x))
    v = F.adaptive_avg_pool2d(h, 2).flatten(1) @ R
    ce = F.cross_entropy(v, y)
    bc = torch.logsumexp((F.log_softmax(v, 1) + F.log_softmax(parent, 1)) * 0.5, 1)
    loss = ce + (-bc).mean()
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(args.warmup):
    step()
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append((time.perf_counter() - t0) * 1000)
print(f'pytorch {torch.__version__} threads={args.threads} channels_last={args.channels_last} '
      f'median {statistics.median(times):.1f} ms/step (min {min(times):.1f})')
