"""The `accelerate launch` config files we generate for DiffSynth-Studio's train.py, and the launch argv.

Strategies:
- fsdp: PyTorch FSDP2 (accelerate `fsdp_version: 2`), full shard (`fsdp_reshard_after_forward: true`), each
  DiT block its own shard unit (`DiTBlock`, diffsynth/models/wan_video_dit.py:211), likewise each umT5 block
  (`T5SelfAttention`, wan_video_text_encoder.py:116) and each face-adapter block (`FaceBlock`,
  wan_video_animate_adapter.py:235); bf16; the frozen CLIP stays whole (FSDP_IGNORED_MODULES below).
  FSDP2 rather than FSDP1 because DiffSynth saves checkpoints by matching `named_parameters()` of the
  unwrapped model against the state dict (logger.py:127-129, training_module.py:119-121): FSDP1 puts
  `_fsdp_wrapped_module.` into the parameter names, so every checkpoint would come out empty; FSDP2 keeps
  the names. Activation checkpointing is DiffSynth's own (train.py forces it on, per DiT block);
  accelerate's would wrap the blocks a second time and add `_checkpoint_wrapped_module.` to the names, so
  it stays off.
- zero2, zero3: DeepSpeed, as DiffSynth ships them (examples/wanvideo/model_training/full/
  accelerate_config_14B.yaml for ZeRO-2 with optimizer and parameter offload to CPU, the Animate scripts'
  choice; accelerate_config_zero3.yaml for ZeRO-3). Needs the deepspeed package.
- ddp: plain data parallel (every GPU holds the whole model).
- layer_offload: one process, no distributed wrapper; train.py's --enable_model_cpu_offload streams layers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STRATEGIES = ("fsdp", "zero2", "zero3", "ddp", "layer_offload")
FSDP_WRAP_CLASSES = "DiTBlock,T5SelfAttention,FaceBlock"
# Modules FSDP2 leaves unsharded: a regex that accelerate fullmatches against the module names of what train.py
# hands to accelerator.prepare (WanTrainingModule: `pipe` is the WanVideoPipeline, `pipe.image_encoder` its CLIP).
# fully_shard refuses 0-dim parameters, and the CLIP holds one, `log_scale = nn.Parameter(... torch.ones([]))`
# (wan_video_image_encoder.py:564); it is frozen in every mode, so a whole copy per GPU (1.3 GB) costs no
# gradient traffic. Ignored parameters keep their names and stay in the full state dict.
FSDP_IGNORED_MODULES = r"pipe\.image_encoder"


@dataclass(frozen=True)
class Topology:
    num_processes: int  # in all, over every machine (accelerate's meaning)
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None


def _common(topology: Topology, distributed_type: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": distributed_type,
        "downcast_bf16": "no",
        "enable_cpu_affinity": False,
        "machine_rank": topology.machine_rank,
        "main_training_function": "main",
        "mixed_precision": "bf16",
        "num_machines": topology.num_machines,
        "num_processes": topology.num_processes,
        "rdzv_backend": "static",
        "same_network": True,
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
        "use_cpu": False,
    }
    if topology.num_machines > 1:
        config["main_process_ip"] = topology.main_process_ip
        config["main_process_port"] = topology.main_process_port
    return config


def fsdp_section(
    wrap_classes: str = FSDP_WRAP_CLASSES, offload_params: bool = False, ignored_modules: str = FSDP_IGNORED_MODULES
) -> dict[str, Any]:
    section = {
        "fsdp_version": 2,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_transformer_layer_cls_to_wrap": wrap_classes,
        "fsdp_reshard_after_forward": True,
        "fsdp_offload_params": offload_params,
        "fsdp_state_dict_type": "FULL_STATE_DICT",
        "fsdp_cpu_ram_efficient_loading": False,
        "fsdp_activation_checkpointing": False,
    }
    if ignored_modules:
        # Not an `accelerate launch` flag, but the launcher copies every fsdp_config key onto its arguments and
        # exports this one as FSDP_IGNORED_MODULES, which FullyShardedDataParallelPlugin reads.
        section["fsdp_ignored_modules"] = ignored_modules
    return section


def deepspeed_section(stage: int) -> dict[str, Any]:
    if stage == 2:
        return {
            "gradient_accumulation_steps": 1,
            "offload_optimizer_device": "cpu",
            "offload_param_device": "cpu",
            "zero3_init_flag": False,
            "zero_stage": 2,
        }
    return {
        "gradient_accumulation_steps": 1,
        "offload_optimizer_device": "none",
        "offload_param_device": "none",
        "zero3_init_flag": True,
        "zero3_save_16bit_model": True,
        "zero_stage": 3,
    }


def accelerate_config(
    strategy: str,
    topology: Topology,
    *,
    gradient_accumulation_steps: int = 1,
    fsdp_wrap_classes: str = FSDP_WRAP_CLASSES,
    fsdp_offload_params: bool = False,
    fsdp_ignored_modules: str = FSDP_IGNORED_MODULES,
) -> dict[str, Any]:
    """The accelerate config dict for `strategy` (one of STRATEGIES)."""
    if strategy == "fsdp":
        config = _common(topology, "FSDP")
        config["fsdp_config"] = fsdp_section(fsdp_wrap_classes, fsdp_offload_params, fsdp_ignored_modules)
    elif strategy in ("zero2", "zero3"):
        config = _common(topology, "DEEPSPEED")
        config["deepspeed_config"] = deepspeed_section(2 if strategy == "zero2" else 3)
        # DeepSpeed owns accumulation; it must agree with train.py's --gradient_accumulation_steps.
        config["deepspeed_config"]["gradient_accumulation_steps"] = gradient_accumulation_steps
    elif strategy == "ddp":
        config = _common(topology, "MULTI_GPU")
    elif strategy == "layer_offload":
        config = _common(topology, "NO")
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return config


def to_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def launch_argv(config_file: Path, script: Path, script_args: list[str], *, python: str = sys.executable) -> list[str]:
    """`accelerate launch --config_file CONFIG script ARGS`, run as a module of `python` so the launcher
    and the workers use the interpreter that has DiffSynth-Studio installed."""
    return [python, "-m", "accelerate.commands.launch", "--config_file", str(config_file), str(script), *script_args]
