"""Which of torch's CPU kernel paths change fp32 training results (README, "Where the tables
move across CPUs"). Run on demand:
    python tests/benchmarks/kernel_paths.py

Trains a small MLP for 20 Adam steps in fp32 on one thread, once per environment setting (each
in a fresh process: the settings are read when the libraries load), and prints a digest of
the final weights. Settings that print the same digest took bit-identical paths here. MKL
does the matrix products (`MKL_CBWR` pins its code branch, `MKL_ENABLE_INSTRUCTIONS` caps
it); ATen's own vectorised kernels do the elementwise ops and reductions
(`ATEN_CPU_CAPABILITY` picks their build); oneDNN (`ONEDNN_MAX_CPU_ISA`) serves bf16 products.
"""

from __future__ import annotations

import os
import subprocess
import sys

SETTINGS = [
    {},
    {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"MKL_CBWR": "AVX2"},
    {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"},
    {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
]

TRAIN = """
import hashlib, torch
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(300, 517), torch.nn.GELU(), torch.nn.LayerNorm(517), torch.nn.Linear(517, 7))
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
x, y = torch.randn(64, 300), torch.randint(0, 7, (64,))
for _ in range(20):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
print(hashlib.sha256(weights.numpy().tobytes()).hexdigest()[:16], f"{loss.item():.10f}")
"""


def main() -> None:
    print("| setting | weights digest | final loss |\n| --- | --- | --- |")
    for setting in SETTINGS:
        env = {k: v for k, v in os.environ.items() if k not in {name for s in SETTINGS for name in s}}
        out = subprocess.run([sys.executable, "-c", TRAIN], env={**env, **setting}, capture_output=True, text=True,
                             check=True).stdout.split()
        name = " ".join(f"{k}={v}" for k, v in setting.items()) or "(none)"
        print(f"| {name} | {out[0]} | {out[1]} |")


if __name__ == "__main__":
    main()
