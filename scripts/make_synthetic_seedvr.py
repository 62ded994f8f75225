#!/usr/bin/env python3
"""Write a random-weight SeedVR2 checkpoint with the real layout into a SeedVR clone, so that the official inference
script (projects/inference_seedvr2_{3b,7b}.py) runs end to end on a GPU machine without the 7-16 GB download:

    python3 scripts/make_synthetic_seedvr.py --seedvr_dir /tmp/SeedVR --model 3b [--device cuda]

SeedVR's own config (configs_3b/main.yaml) builds the NaDiT and the video VAE with SeedVR's own classes
(common.config.create_object) and their own initialisation, on --device; the state dicts are saved where the script
loads them: ckpts/seedvr2_ema_{model}.pth (bf16: upstream loads it with assign=True, so the file's dtype is the
model's) and ckpts/ema_vae.pth. The text embeddings (pos_emb.pt, neg_emb.pt) ship with the clone. flash_attn
and apex, which SeedVR imports, are stood in for as replace_actor_video/upstream/seedvr/runtime/launcher.py does at
run time.
--set KEY=VALUE overrides config entries (OmegaConf dot-list, e.g. dit.model.num_layers=2 for the CPU test).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def launcher():
    spec = importlib.util.spec_from_file_location(
        "rav_seedvr_launcher", REPO / "replace_actor_video" / "upstream" / "seedvr" / "runtime" / "launcher.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(seedvr_dir: Path, model: str, device: str, overrides: list[str]):
    """(dit, vae) built by SeedVR's own config and classes, with their own random initialisation."""
    import torch

    launcher().install_stand_ins()
    os.chdir(seedvr_dir)  # the configs inherit by paths relative to the clone, as the inference script runs it
    sys.path.insert(0, str(seedvr_dir))
    from common.config import create_object, load_config

    config = load_config(os.path.join(f"configs_{model}", "main.yaml"), overrides or None)
    torch.manual_seed(0)
    with torch.device(device):
        dit = create_object(config.dit.model)
        vae = create_object(config.vae.model)
    return dit, vae


def write(seedvr_dir: Path, model: str, device: str = "cpu", overrides: list[str] | None = None) -> dict[str, float]:
    import torch

    seedvr_dir = seedvr_dir.resolve()
    started = time.perf_counter()
    dit, vae = build(seedvr_dir, model, device, overrides or [])
    out = seedvr_dir / "ckpts"
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, module, dtype in ((f"seedvr2_ema_{model}.pth", dit, torch.bfloat16), ("ema_vae.pth", vae, None)):
        state = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).cpu()
            for k, v in module.state_dict().items()
        }
        tmp = out / f"{name}.partial"
        torch.save(state, tmp)
        os.replace(tmp, out / name)
        sizes[name] = round((out / name).stat().st_size / 1e9, 2)
    print(f"[synthetic-seedvr] {sizes} in {time.perf_counter() - started:.0f} s", flush=True)
    return sizes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seedvr_dir", type=Path, required=True, help="a SeedVR clone (its code and configs)")
    p.add_argument("--model", choices=("3b", "7b"), default="3b")
    p.add_argument("--device", default="cpu", help="where SeedVR's classes initialise their weights (cuda: fast)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (dot-list)")
    args = p.parse_args(argv)
    write(args.seedvr_dir, args.model, args.device, args.set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
