"""Mirror of rife-ncnn-vulkan src/main.cpp (POSIX branch) at commit a7532fc, tag 20221029: its getopt
string, usage text, defaults, the argument checks it makes before touching the GPU, and how it maps
output frames to input frames in directory mode. Contract tests parse the argv we build with it."""

from __future__ import annotations

import getopt
import math
import os
import re
from dataclasses import dataclass, field

from . import pin

UPSTREAM_COMMIT = pin.NCNN_COMMIT
UPSTREAM_FILE = "src/main.cpp"
OPTSTRING = "0:1:i:o:n:s:m:g:j:f:vxzuh"

# print_usage(), verbatim (upstream prints the -x, -z and -u lines to stdout, the rest to stderr).
USAGE = """\
Usage: rife-ncnn-vulkan -0 infile -1 infile1 -o outfile [options]...
       rife-ncnn-vulkan -i indir -o outdir [options]...

  -h                   show this help
  -v                   verbose output
  -0 input0-path       input image0 path (jpg/png/webp)
  -1 input1-path       input image1 path (jpg/png/webp)
  -i input-path        input image directory (jpg/png/webp)
  -o output-path       output image path (jpg/png/webp) or directory
  -n num-frame         target frame count (default=N*2)
  -s time-step         time step (0~1, default=0.5)
  -m model-path        rife model path (default=rife-v2.3)
  -g gpu-id            gpu device to use (-1=cpu, default=auto) can be 0,1,2 for multi-gpu
  -j load:proc:save    thread count for load/proc/save (default=1:2:2) can be 1:2,2,2:2 for multi-gpu
  -x                   enable spatial tta mode
  -z                   enable temporal tta mode
  -u                   enable UHD mode
  -f pattern-format    output image filename pattern format (%08d.jpg/png/webp, default=ext/%08d.png)
"""


class UsageError(Exception):
    """Where main() prints a message (or the usage) and returns -1."""


@dataclass
class NcnnArgs:
    input0path: str = ""
    input1path: str = ""
    inputpath: str = ""
    outputpath: str = ""
    numframe: int = 0
    timestep: float = 0.5
    model: str = "rife-v2.3"
    gpuid: list[int] = field(default_factory=list)
    jobs_load: int = 1
    jobs_proc: list[int] = field(default_factory=list)
    jobs_save: int = 2
    verbose: bool = False
    tta_mode: bool = False
    tta_temporal_mode: bool = False
    uhd_mode: bool = False
    pattern_format: str = "%08d.png"


def _atoi(text: str) -> int:
    m = re.match(r"\s*[+-]?\d+", text)
    return int(m.group()) if m else 0


def _atof(text: str) -> float:
    m = re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text)
    return float(m.group()) if m else 0.0


def _int_array(text: str) -> list[int]:
    return [_atoi(part) for part in text.split(",")]


def parse(argv: list[str]) -> NcnnArgs:
    """The getopt loop of main() (glibc getopt permutes, like gnu_getopt)."""
    args = NcnnArgs()
    try:
        opts, _rest = getopt.gnu_getopt(argv, OPTSTRING)
    except getopt.GetoptError as exc:
        raise UsageError(f"{exc}\n{USAGE}") from None
    for opt, value in opts:
        key = opt[1]
        if key == "0":
            args.input0path = value
        elif key == "1":
            args.input1path = value
        elif key == "i":
            args.inputpath = value
        elif key == "o":
            args.outputpath = value
        elif key == "n":
            args.numframe = _atoi(value)
        elif key == "s":
            args.timestep = _atof(value)
        elif key == "m":
            args.model = value
        elif key == "g":
            args.gpuid = _int_array(value)
        elif key == "j":
            parts = value.split(":")
            args.jobs_load = _atoi(parts[0])
            args.jobs_save = _atoi(parts[2]) if len(parts) > 2 else args.jobs_save
            args.jobs_proc = _int_array(value.split(":", 1)[1]) if ":" in value else []
        elif key == "f":
            args.pattern_format = value
        elif key == "v":
            args.verbose = True
        elif key == "x":
            args.tta_mode = True
        elif key == "z":
            args.tta_temporal_mode = True
        elif key == "u":
            args.uhd_mode = True
        else:  # -h
            raise UsageError(USAGE)
    return args


def model_kind(model: str) -> str:
    """main() guesses the model type from a substring of the -m text, in this order."""
    for needle, kind in (("rife-v2", "v2"), ("rife-v3", "v2"), ("rife-v4", "v4"), ("rife", "v1")):
        if needle in model:
            return kind
    raise UsageError("unknown model dir type")


def check(args: NcnnArgs) -> str:
    """The checks main() makes before loading the model; returns 'dir' or 'files' (the mode)."""
    if ((not args.input0path or not args.input1path) and not args.inputpath) or not args.outputpath:
        raise UsageError(USAGE)
    if not args.inputpath and (args.timestep <= 0 or args.timestep >= 1):
        raise UsageError("invalid timestep argument, must be 0~1")
    if args.inputpath and args.numframe < 0:
        raise UsageError("invalid numframe argument, must not be negative")
    if args.jobs_load < 1 or args.jobs_save < 1:
        raise UsageError("invalid thread count argument")
    if args.jobs_proc and len(args.jobs_proc) != (len(args.gpuid) or 1):
        raise UsageError("invalid jobs_proc thread count argument")
    if any(j < 1 for j in args.jobs_proc):
        raise UsageError("invalid jobs_proc thread count argument")
    _pattern, dot, fmt = args.pattern_format.rpartition(".")
    if not dot:
        fmt = args.pattern_format
    if not os.path.isdir(args.outputpath):
        ext = args.outputpath.rpartition(".")[2].lower()
        fmt = {"png": "png", "webp": "webp", "jpg": "jpg", "jpeg": "jpg"}.get(ext, "")
        if not fmt:
            raise UsageError("invalid outputpath extension type")
    if fmt not in ("png", "webp", "jpg"):
        raise UsageError("invalid format argument")
    if model_kind(args.model) != "v4" and (args.numframe != 0 or args.timestep != 0.5):
        raise UsageError("only rife-v4 model support custom numframe and timestep")
    if args.inputpath and os.path.isdir(args.inputpath) and os.path.isdir(args.outputpath):
        return "dir"
    if (not args.inputpath and not os.path.isdir(args.input0path) and not os.path.isdir(args.input1path)
            and not os.path.isdir(args.outputpath)):
        return "files"
    raise UsageError("input0path, input1path and outputpath must be file at the same time\n"
                     "inputpath and outputpath must be directory at the same time")


def frame_plan(count: int, numframe: int) -> list[tuple[int, int, float]]:
    """Directory mode: for output frame i (written as pattern % (i+1)), the two input indices (into the
    sorted names) and the timestep between them."""
    numframe = numframe or count * 2
    scale = count / numframe
    plan = []
    for i in range(numframe):
        fx = i * scale
        sx = math.floor(fx)
        fx -= sx
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= count - 1:
            sx, fx = count - 2, 1.0
        plan.append((sx, sx + 1, fx))
    return plan


def resolve_model_dir(model: str, executable_dir: str) -> str:
    """sanitize_dirpath(): -m is used as given when it is a directory (relative to the cwd), else it is
    looked up next to the executable."""
    return model if os.path.isdir(model) else os.path.join(executable_dir, model)
