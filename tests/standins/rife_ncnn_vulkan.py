"""Contract stand-in for the rife-ncnn-vulkan binary (release 20221029), run through a tiny shell wrapper
that the tests put where the binary would be. It parses argv exactly as src/main.cpp does (the getopt
mirror, its checks and its exit code -1 = 255), resolves -m like sanitize_dirpath(), prints the Vulkan
device line ncnn prints (STANDIN_VULKAN=llvmpipe for a software device, =none for no driver), and writes
the frames upstream writes: output i (named pattern % (i+1)) from the input pair and timestep of
frame_plan(), here the nearer of the two input frames."""

import os
import shutil
import sys

sys.path.insert(1, os.environ["RAV_REPO"])

from replace_actor_video.upstream.rife import mirror_ncnn_main as mirror  # noqa: E402

DEVICES = {"": "NVIDIA H100 80GB HBM3", "llvmpipe": "llvmpipe (LLVM 15.0.6, 256 bits)"}


def main() -> int:
    try:
        args = mirror.parse(sys.argv[1:])
        mode = mirror.check(args)
    except mirror.UsageError as exc:
        print(exc, file=sys.stderr)
        return 255
    vulkan = os.environ.get("STANDIN_VULKAN", "")
    if vulkan == "none":
        print("vkCreateInstance failed -9", file=sys.stderr)
        print("invalid gpu device", file=sys.stderr)
        return 255
    print(f"[0 {DEVICES[vulkan]}]  queueC=2[8]  queueG=0[16]  queueT=1[2]", file=sys.stderr)
    model_dir = mirror.resolve_model_dir(args.model, os.environ["STANDIN_EXE_DIR"] + "/")
    if not os.path.isfile(os.path.join(model_dir, "flownet.param")):
        print(f"fopen {model_dir}/flownet.param failed", file=sys.stderr)
        return 255
    if mode == "files":
        shutil.copyfile(args.input0path if args.timestep < 0.5 else args.input1path, args.outputpath)
        return 0
    names = sorted(os.listdir(args.inputpath))
    pattern, _dot, fmt = args.pattern_format.rpartition(".")
    for i, (s0, s1, t) in enumerate(mirror.frame_plan(len(names), args.numframe)):
        source = names[s0] if t < 0.5 else names[s1]
        shutil.copyfile(os.path.join(args.inputpath, source),
                        os.path.join(args.outputpath, (pattern or "%08d") % (i + 1) + "." + fmt))
        if args.verbose:
            print(f"{source} {t:f} -> {(pattern or '%08d') % (i + 1)}.{fmt} done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
