#!/usr/bin/env bash
# bench/gpu.sh: our SLL and BP training steps on WebGPU (tfjs-backend-webgpu through Dawn) beside PyTorch
# (CUDA, the same math: bench/torch_ref.py) on one NVIDIA GPU, and the peak memory of one step against depth
# measured on that GPU; and the step's large matrix products on their own, ours, tfjs-webgpu's and PyTorch's
# (what tells a slow step's products from the rest).
#
# Made for a GPU machine with PyTorch but no Node.js: everything of ours comes from the bundle that
# `npm run bundle:gpu` builds (.gpu-bundle/sll-gpu.tar.xz: a Node binary, the bundled bench and CLI, Dawn,
# the Vulkan loader). From this repository's root there:
#     bash bench/gpu.sh            (the device tool: run with carry [".gpu-bundle"])
# Environment:
#   OUT             the results folder (default gpu-results/): ours.jsonl, torch.jsonl, memory.jsonl,
#                   matmuls.jsonl, gpu.json (everything, with the card's name) and gpu.log
#   SLL_GPU_BUNDLE  the bundle: the .tar.xz (default .gpu-bundle/sll-gpu.tar.xz) or an unpacked sll-gpu/ folder
#   SLL_GPU_QUICK=1 small sizes, counts without timing, PyTorch on the CPU when it has no CUDA: the dry run
#                   that test/gpu/bundle.test.ts makes on SwiftShader, so that the run on the GPU goes right
#   PYTHON          the Python that has torch (default python3)
#   VK_DRIVER_FILES the Vulkan driver; default: NVIDIA's ICD json where the usual places have it
# Exit status: 0 when every part ran; 1 when one failed (the others still run, and gpu.json says which).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
: > "$out/gpu.log"
exec > >(tee -a "$out/gpu.log") 2>&1
failed=()

bundle=${SLL_GPU_BUNDLE:-.gpu-bundle/sll-gpu.tar.xz}
if [ -d "$bundle" ]; then
  B=$(cd "$bundle" && pwd)
elif [ -f "$bundle" ]; then
  work=$(mktemp -d)
  tar -xJf "$bundle" -C "$work" || { echo "gpu.sh: could not unpack $bundle"; exit 1; }
  B=$work/sll-gpu
else
  echo "gpu.sh: no bundle at $bundle: run npm run bundle:gpu on a machine with Node.js, and carry .gpu-bundle"
  exit 1
fi
echo "bundle: $B ($(tr -d '\n ' < "$B/manifest.json" | grep -o '"commit":"[0-9a-f]*"'))"

export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES=$f; break; fi
  done
  # The dry run without a GPU: SwiftShader, from Debian's chromium (the CLI never picks it by itself).
  swiftshader=/usr/lib/chromium/vk_swiftshader_icd.json
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ "${SLL_GPU_QUICK:-0}" = 1 ] && [ -f $swiftshader ]; then export VK_DRIVER_FILES=$swiftshader; fi
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset (the Vulkan loader searches its folders; else SwiftShader)}"
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
echo "card: ${card:-no nvidia-smi}"
py=${PYTHON:-python3}
cuda=$("$py" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo none)
echo "PyTorch: $("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not installed') on $cuda"

if [ "${SLL_GPU_QUICK:-0}" = 1 ]; then
  batches=16; depths=2,4; width=64; mem_batch=16; timing=(--count --steps 1 --warmup 1); torch_steps=(--steps 1 --warmup 1)
  products=(--steps 1 --warmup 1)
else
  batches=128,1024; depths=2,4,8,16; width=1024; mem_batch=128; timing=(--steps 50 --warmup 20); torch_steps=(--steps 50 --warmup 20)
  products=(--steps 50 --warmup 5)
fi
node=("$B/node")

echo "== ours: bench:gpu (webgpu) at batch $batches, width $width"
"${node[@]}" "$B/bench-gpu.mjs" --json --batches "$batches" --width "$width" "${timing[@]}" > "$out/ours.jsonl" || failed+=(ours)
cat "$out/ours.jsonl"

echo "== PyTorch: the same steps"
: > "$out/torch.jsonl"
if [ "$cuda" = none ]; then
  echo "PyTorch is not installed for $py: its rows are skipped"; failed+=(torch)
elif [ "$cuda" = cpu ] && [ "${SLL_GPU_QUICK:-0}" != 1 ]; then
  echo "PyTorch has no CUDA here: its rows are skipped"; failed+=(torch)
else
  for case in mlp-sll mlp-bp; do
    for b in ${batches//,/ }; do
      "$py" "$B/torch_ref.py" --case "$case" --device "$cuda" --batch "$b" "${torch_steps[@]}" >> "$out/torch.jsonl" 2> "$out/torch-$case-$b.log" || { cat "$out/torch-$case-$b.log"; failed+=("torch-$case-$b"); }
    done
  done
fi
cat "$out/torch.jsonl"

echo "== memory of one step against depth (MLP width $width, batch $mem_batch, Adam)"
: > "$out/memory.jsonl"
# One process per row: tfjs-webgpu's buffer pool keeps what it allocated, so its size is one row's only so.
for method in sll bp; do
  for d in ${depths//,/ }; do
    "${node[@]}" "$B/sll.mjs" bench memory --backend webgpu --model mlp --method "$method" --depths "$d" --width "$width" \
      --batch-size "$mem_batch" --optimizer adam --json 2> "$out/memory-$method-$d.log" | sed 's/^{/{"engine":"sll-webgpu",/' >> "$out/memory.jsonl" \
      || { cat "$out/memory-$method-$d.log"; failed+=("memory-$method-$d"); }
  done
done
if [ "$cuda" = cuda ]; then
  for case in mlp-sll mlp-bp; do
    "$py" "$B/torch_ref.py" --case "$case" --device cuda --batch "$mem_batch" --memory-depths "$depths" >> "$out/memory.jsonl" || failed+=("torch-memory-$case")
  done
else
  echo "PyTorch's memory rows need CUDA: skipped"
fi
cat "$out/memory.jsonl"

echo "== the step's large matrix products (width $width) at batch $batches: ours, tfjs-webgpu's, PyTorch's"
"${node[@]}" "$B/bench-gpu.mjs" --matmuls --json --batches "$batches" --width "$width" "${products[@]}" > "$out/matmuls.jsonl" || failed+=(matmuls)
if [ "$cuda" = cuda ] || { [ "$cuda" = cpu ] && [ "${SLL_GPU_QUICK:-0}" = 1 ]; }; then
  for b in ${batches//,/ }; do
    "$py" "$B/torch_ref.py" --matmuls --device "$cuda" --batch "$b" --width "$width" "${products[@]}" >> "$out/matmuls.jsonl" || failed+=("torch-matmuls-$b")
  done
fi
cat "$out/matmuls.jsonl"

echo "== summary"
CARD="$card" FAILED="${failed[*]:-}" MANIFEST="$B/manifest.json" "$py" - "$out" <<'PY' || failed+=(summary)
import json, os, statistics, sys
out = sys.argv[1]
def rows(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]
ours, torch, memory, matmuls = rows("ours.jsonl"), rows("torch.jsonl"), rows("memory.jsonl"), rows("matmuls.jsonl")
for t in torch:
    t["ms_per_step"] = statistics.median(t["steps_ms"])
steps = []
for o in ours:
    t = next((t for t in torch if t["case"] == o["case"] and t["batch"] == o["batch"]), None)
    ratio = o["ms_per_step"] / t["ms_per_step"] if t and o["ms_per_step"] is not None else None
    steps.append({**o, "torch_ms_per_step": t and t["ms_per_step"], "torch_device": t and t["device"], "ours_over_torch": ratio})
summary = {"card": os.environ["CARD"] or None, "adapter": ours[0]["adapter"] if ours else None,
           "bundle": json.load(open(os.environ["MANIFEST"])), "failed": os.environ["FAILED"].split(),
           "steps": steps, "memory": memory, "matmuls": matmuls}
with open(os.path.join(out, "gpu.json"), "w") as f:
    json.dump(summary, f, indent=2)
fmt = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
print(f"card: {summary['card']}; adapter: {summary['adapter']}")
print(f"{'case':8} {'engine':15} {'batch':>5} {'dispatches':>10} {'uploads':>7} {'uniform':>7} {'reads':>5} {'ours ms':>8} {'host ms':>7} {'torch ms':>8} {'ours/torch':>10}")
for s in steps:
    print(f"{s['case']:8} {s['engine']:15} {s['batch']:5} {s['dispatches_per_step']:10} {s['uploads_per_step']:7} {s['uniform_writes_per_step']:7} "
          f"{s['readbacks_per_step']:5} {fmt(s['ms_per_step']):>8} {fmt(s.get('host_ms_per_step')):>7} {fmt(s['torch_ms_per_step'], 2):>8} {fmt(s['ours_over_torch'], 2):>10}")
mb = lambda b: "-" if b is None else f"{b / 2**20:.1f}"
print(f"{'engine':11} {'method':6} {'depth':>5} {'activation peak MiB':>19} {'GPU pool MiB':>12}")
for m in memory:
    print(f"{m['engine']:11} {m['method']:6} {m['depth']:5} {mb(m['activation_peak_bytes']):>19} {mb(m.get('gpu_pool_bytes')):>12}")
# One column (ms and GFLOP/s) for each of our tilings, tfjs's program and PyTorch.
label = lambda r: r["tiling"] if r.get("tiling") else r["engine"]
engines = list(dict.fromkeys(label(r) for r in matmuls))
print(f"{'product':10} {'batch':>5} {'m x n x k':>15} " + " ".join(f"{e:>20}" for e in engines))
for key in dict.fromkeys((r["product"], r["batch"]) for r in matmuls):
    by = {label(r): r for r in matmuls if (r["product"], r["batch"]) == key}
    shape = next(iter(by.values()))
    cells = [f"{fmt(by[e]['ms'], 3)} ms {fmt(by[e]['gflops'], 0):>5} GF" if e in by else "-" for e in engines]
    print(f"{key[0]:10} {key[1]:5} {'{m}x{n}x{k}'.format(**shape):>15} " + " ".join(f"{c:>20}" for c in cells))
PY
if [ ${#failed[@]} -gt 0 ]; then echo "gpu.sh: failed: ${failed[*]}"; exit 1; fi
echo "gpu.sh: done; results in $out/"
