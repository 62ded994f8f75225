"""Contract tests: the argv our adapters build is parsed by exact mirrors of the upstream parsers, and the
mirrors are compared with the real upstream source when a clone is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from contract_utils import mirror_arguments, normalise, upstream_arguments

from replace_actor_video.core.errors import UserError
from replace_actor_video.upstream.wan import generate as wan_generate
from replace_actor_video.upstream.wan import mirror_generate as gen_mirror
from replace_actor_video.upstream.wan import mirror_preprocess_data as pre_mirror
from replace_actor_video.upstream.wan import preprocess as wan_preprocess

WAN22 = Path(os.environ.get("WAN22_DIR", Path(__file__).resolve().parents[1] / "Wan2.2"))
needs_clone = pytest.mark.skipif(
    not (WAN22 / "generate.py").is_file(),
    reason=f"no Wan2.2 clone at {WAN22} (CI has no GitHub access); runs where install.sh cloned it",
)


@needs_clone
@pytest.mark.parametrize("mirror", [gen_mirror, pre_mirror], ids=["generate.py", "preprocess_data.py"])
def test_mirror_matches_upstream_source(mirror):
    real = normalise(upstream_arguments(WAN22 / mirror.UPSTREAM_FILE))
    mine = normalise(mirror_arguments(mirror.build_parser()))
    assert list(mine) == list(real), "flags added, removed or reordered upstream"
    for flag in real:
        for key in ("type", "default", "action", "nargs"):
            if key in real[flag] or key in mine[flag]:
                assert mine[flag].get(key) == real[flag].get(key, "None" if key == "default" else None), (flag, key)


def preprocess_call(**overrides) -> wan_preprocess.PreprocessCall:
    """The call built from the stage's options, as the stage builds it (absolute paths already resolved)."""
    base = dict(wan22_dir="/w", video_path="/v.mp4", refer_path="/r.png", save_path="/out")
    opts = wan_preprocess.PreprocessOptions(**{**base, **overrides})
    return wan_preprocess.PreprocessCall.from_options(opts, process_checkpoint=Path("/c/process_checkpoint"))


@pytest.mark.parametrize(
    "overrides,expect",
    [
        ({}, {"retarget_flag": True, "replace_flag": False, "use_flux": False}),
        ({"use_flux": True}, {"retarget_flag": True, "use_flux": True}),
        ({"retarget": False}, {"retarget_flag": False}),
        (
            {"replace": True, "w_len": 10, "h_len": 20, "fps": 16},
            {"replace_flag": True, "retarget_flag": False, "w_len": 10, "h_len": 20, "fps": 16},
        ),
        ({"resolution": (960, 544), "fps": -1}, {"resolution_area": [960, 544], "fps": -1}),
    ],
)
def test_preprocess_argv_parses_with_upstream_parser(overrides, expect):
    argv = preprocess_call(**overrides).argv("python")
    assert argv[1] == "/w/wan/modules/animate/preprocess/preprocess_data.py"
    args = vars(pre_mirror.build_parser().parse_args(argv[2:]))
    assert args["ckpt_path"] == "/c/process_checkpoint" and args["save_path"] == "/out"
    for key, value in expect.items():
        assert args[key] == value, key


def generate_call(offload_model: bool | None = True, nproc: int = 1, **overrides) -> wan_generate.GenerateCall:
    """The call built from the stage's options, as the stage builds it (paths resolved, the seed drawn, the memory
    profile resolved)."""
    base = dict(wan22_dir="/w", ckpt_dir="/ck", src_root_path="/pp", save_file="/o.mp4", seed=5, memory_profile="full")
    opts = wan_generate.GenerateOptions(**{**base, **overrides})
    return wan_generate.GenerateCall(opts, offload_model=offload_model, nproc=nproc)


def upstream_part(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1 :]


def test_generate_argv_always_has_task_refert_and_save_file():
    args = gen_mirror.build_parser().parse_args(upstream_part(generate_call().argv("python")))
    assert (args.task, args.refert_num, args.save_file, args.src_root_path) == ("animate-14B", 1, "/o.mp4", "/pp")
    assert args.base_seed == 5 and args.offload_model is True and args.prompt is None


def test_generate_argv_replace_with_everything():
    call = generate_call(
        replace=True,
        use_relighting_lora=True,
        prompt="a man",
        sample_steps=30,
        sample_guide_scale=2.5,
        sample_shift=3.0,
        sample_solver="dpm++",
        refert_num=5,
        offload_model=False,
        t5_cpu=True,
        convert_model_dtype=True,
    )
    args = gen_mirror.build_parser().parse_args(upstream_part(call.argv("python")))
    assert args.replace_flag and args.use_relighting_lora and args.t5_cpu and args.convert_model_dtype
    assert (args.prompt, args.sample_steps, args.sample_guide_scale, args.sample_shift) == ("a man", 30, 2.5, 3.0)
    assert (args.sample_solver, args.refert_num, args.offload_model) == ("dpm++", 5, False)


def test_generate_multi_gpu_goes_through_torchrun_with_fsdp_and_ulysses():
    argv = generate_call(nproc=4, offload_model=False).argv("python")
    assert argv[:3] == ["python", "-m", "torch.distributed.run"]
    assert argv[argv.index("--nproc_per_node") + 1] == "4"
    args = gen_mirror.build_parser().parse_args(upstream_part(argv))
    assert args.dit_fsdp and args.t5_fsdp and args.ulysses_size == 4


def test_launcher_options_come_before_the_separator():
    argv = generate_call(negative_prompt="blurry").argv("python")
    head = argv[: argv.index("--")]
    assert head[1].endswith("runtime/launcher.py")
    assert head[head.index("--attention") + 1] == "auto" and head[head.index("--negative_prompt") + 1] == "blurry"


@pytest.mark.parametrize(
    "nproc,size,ok",
    [
        (2, (1280, 720), True),
        (8, (1280, 720), True),
        (3, (1280, 720), False),
        (8, (1264, 720), False),
        (5, (1280, 720), True),
    ],
)
def test_parallel_checks(nproc, size, ok):
    if ok:
        wan_generate.check_parallel(nproc, frame_num=77, width=size[0], height=size[1])
    else:
        with pytest.raises(UserError):
            wan_generate.check_parallel(nproc, frame_num=77, width=size[0], height=size[1])


def test_sequence_length_matches_the_measured_720p_clip():
    assert wan_generate.sequence_length(77, 1280, 720) == 75_600
