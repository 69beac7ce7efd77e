"""Thread oversubscription on a shared CPU: samples/s of a generating model with 1 or 2 torch threads,
alone and with a second identical process on the same cores.

Why `vlora.placement.cpu_threads` shares the cores among processes and leaves busy cores out: torch's
threads spin while they wait for each other, so two processes with a thread per core each slow each
other down many times over. Run with nothing else on the machine:

    .venv/bin/python benchmarks/cpu_threads.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

WORKER = """
import sys, time, torch
threads, seconds, width = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
from PIL import Image
from vlora.model import build_model
from vlora.overrides import apply_overrides
from vlora.presets import preset
sets = [] if width == 64 else [f"llm.hidden_size={width}", f"llm.intermediate_size={width * 8 // 3 // 16 * 16}",
                               "llm.num_layers=8", "llm.num_heads=8", "llm.num_kv_heads=8"]
model = build_model(apply_overrides(preset("vlora-tiny"), sets), seed=0).eval()
image = Image.new("RGB", (96, 96), (200, 10, 10))
prompts = [model.prompt("What color is the circle? A. red B. blue")] * 8
model.generate(prompts, [image] * 8, 8)
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    model.generate(prompts, [image] * 8, 8)
    done += 8
print(done / (time.perf_counter() - start))
"""


def rate(threads: int, seconds: float, width: int, copies: int) -> float:
    """Mean samples/s of `copies` identical processes running at the same time."""
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(seconds), str(width)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    rates = [float(p.communicate()[0]) for p in processes]
    return sum(rates) / len(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"{'LLM width':>10}{'threads':>9}{'alone':>10}{'beside a twin':>15}{'slowdown':>10}")
    for width in (64, 512):
        for threads in (1, 2):
            alone = rate(threads, args.seconds, width, 1)
            time.sleep(1)
            shared = rate(threads, args.seconds, width, 2)
            print(f"{width:>10}{threads:>9}{alone:>10.1f}{shared:>15.1f}{alone / shared:>9.1f}x")


if __name__ == "__main__":
    main()
