"""The two ONNX models preprocess_data.py runs (pose2d.py): the YOLOv10 person detector and the ViTPose
whole-body model, as tiny graphs with fixed outputs built with the onnx package's helpers: one person box
over the centre of the frame, and 133 whole-body heatmaps that peak on a standing skeleton inside that box,
so pose drawing, face crops and SAM2 point prompts all get sane coordinates.

The lent GPU machine has onnxruntime but not the onnx package (its wheel and dependencies, ~15 MB, do not
fit the carry beside the other wheels), so the graphs are written on the CPU side (`--write_onnx DIR`) and
the GPU run copies them (`--onnx_from DIR`); both files together are 1.6 MB.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .layout import DET_FILE, POSE_FILE

if TYPE_CHECKING:
    import numpy as np

OPSET = 17
IR_VERSION = 8  # what onnxruntime 1.1x and later accept with opset 17
CARRIED = {"det": "yolov10m.onnx", "pose": "vitpose_h_wholebody.onnx"}  # flat names in an --onnx_from folder


def constant_output_onnx(input_name: str, input_shape: Sequence[int], output_name: str, output: np.ndarray) -> bytes:
    """Serialized ModelProto: ``output = template + 0 * mean(input)``.

    The zero-weighted input term keeps the graph a function of its input
    (onnxruntime checks the feed), while the result is the fixed template.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["scaled"]),
        helper.make_node("Add", ["scaled", "template"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic",
        inputs=[helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        outputs=[helper.make_tensor_value_info(output_name, TensorProto.FLOAT, list(output.shape))],
        initializer=[
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
            numpy_helper.from_array(output.astype(np.float32), "template"),
        ],
    )
    model = helper.make_model(
        graph, producer_name="make_synthetic_checkpoint", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# The detector's person box, in fractions of the frame (x1, y1, x2, y2).
PERSON_BOX = (0.3, 0.1, 0.7, 0.95)
DET_INPUT = 640  # pose2d.Yolo resizes every frame to 640 x 640
POSE_INPUT = (256, 192)  # ViTPose crop (height, width)
HEATMAP = (64, 48)  # ViTPose output (height, width): input / 4
HEATMAP_SIGMA = 2.0  # heatmap pixels, as ViTPose was trained with
HEATMAP_PEAK = 0.9  # becomes the keypoint score; drawing needs > 0.5


def yolo_output() -> np.ndarray:
    """[1, 300, 6] rows of (x1, y1, x2, y2, score, class) in 640 x 640 input pixels.

    YOLOv10 end-to-end export layout, read by pose2d.Yolo.postprocess (6
    columns: boxes, score, class id; class 0 = person). One confident person,
    299 empty rows that the 0.05 score threshold drops.
    """
    import numpy as np

    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0, :4] = [c * DET_INPUT for c in PERSON_BOX]
    out[0, 0, 4] = 0.9
    return out


def wholebody_keypoints() -> np.ndarray:
    """133 COCO-WholeBody keypoints (u, v) of a front-facing standing person.

    Coordinates are fractions of the ViTPose crop, which is the detector box
    enlarged 1.25x to a 3:4 aspect. For frames from 9:16 to 16:9 the box then
    covers at least u in [0.36, 0.64] and v in [0.14, 0.86] of the crop; every
    point here lies in u [0.39, 0.61], v [0.22, 0.83], so inside the box. The
    person's left is image right.
    """
    import numpy as np

    cx, head_y, hw, hh = 0.5, 0.235, 0.02, 0.026  # face centre and half size
    body = {
        0: (cx, head_y + 0.1 * hh),  # nose
        1: (cx + 0.45 * hw, head_y - 0.2 * hh),
        2: (cx - 0.45 * hw, head_y - 0.2 * hh),  # eyes
        3: (cx + hw, head_y),
        4: (cx - hw, head_y),  # ears
        5: (cx + 0.05, 0.30),
        6: (cx - 0.05, 0.30),  # shoulders
        7: (cx + 0.07, 0.41),
        8: (cx - 0.07, 0.41),  # elbows
        9: (cx + 0.08, 0.50),
        10: (cx - 0.08, 0.50),  # wrists
        11: (cx + 0.035, 0.52),
        12: (cx - 0.035, 0.52),  # hips
        13: (cx + 0.04, 0.66),
        14: (cx - 0.04, 0.66),  # knees
        15: (cx + 0.04, 0.79),
        16: (cx - 0.04, 0.79),  # ankles
        # feet: big toe, small toe, heel; left then right
        17: (cx + 0.045, 0.825),
        18: (cx + 0.06, 0.82),
        19: (cx + 0.037, 0.80),
        20: (cx - 0.045, 0.825),
        21: (cx - 0.06, 0.82),
        22: (cx - 0.037, 0.80),
    }
    kps = np.zeros((133, 2), np.float64)
    for k, uv in body.items():
        kps[k] = uv
    kps[23:91] = _face68(cx, head_y, hw, hh)
    kps[91:112] = _hand21(body[9], direction=+1)
    kps[112:133] = _hand21(body[10], direction=-1)
    return kps


def _face68(cx: float, cy: float, hw: float, hh: float) -> np.ndarray:
    """iBUG 68-point face: jaw 17, brows 5+5, nose 4+5, eyes 6+6, lips 12+8."""
    import numpy as np

    pts: list[tuple[float, float]] = []
    for t in np.linspace(np.pi, 0.0, 17):  # jaw, ear to ear under the chin
        pts.append((cx - hw * np.cos(t), cy + hh * np.sin(t)))
    for side in (-1, 1):
        pts += [(cx + side * hw * s, cy - 0.45 * hh) for s in np.linspace(0.8, 0.2, 5)]
    pts += [(cx, cy + hh * s) for s in np.linspace(-0.35, 0.2, 4)]  # nose bridge
    pts += [(cx + hw * s, cy + 0.3 * hh) for s in np.linspace(-0.3, 0.3, 5)]  # nostrils
    for side in (-1, 1):
        ex, ey = cx + side * 0.45 * hw, cy - 0.2 * hh
        pts += [
            (ex + 0.25 * hw * np.cos(a), ey + 0.08 * hh * np.sin(a))
            for a in np.linspace(0.0, 2 * np.pi, 6, endpoint=False)
        ]
    for radius, count in ((1.0, 12), (0.6, 8)):
        pts += [
            (cx + radius * 0.4 * hw * np.cos(a), cy + 0.6 * hh + radius * 0.12 * hh * np.sin(a))
            for a in np.linspace(0.0, 2 * np.pi, count, endpoint=False)
        ]
    return np.asarray(pts)


def _hand21(wrist: tuple[float, float], direction: int) -> np.ndarray:
    """Wrist, then 4 joints for each of 5 fingers, fanning downwards."""
    import numpy as np

    wx, wy = wrist
    pts = [(wx, wy)]
    for finger in range(5):
        dx = direction * (finger - 1.5) * 0.003
        pts += [(wx + dx * j, wy + 0.007 * j) for j in range(1, 5)]
    return np.asarray(pts)


def vitpose_output() -> np.ndarray:
    """[1, 133, 64, 48] Gaussian heatmaps peaking at ``wholebody_keypoints``.

    pose2d_utils.keypoints_from_heatmaps (unbiased=True) takes the argmax,
    refines it from the log of a blurred heatmap, and maps it back through the
    crop; the peak value becomes the score. Every channel must have a positive
    peak away from the border, or decoding yields -1 / NaN.
    """
    import numpy as np

    h, w = HEATMAP
    kps = wholebody_keypoints()
    ys, xs = np.mgrid[0:h, 0:w]
    dx = xs[None] - (kps[:, 0] * w)[:, None, None]
    dy = ys[None] - (kps[:, 1] * h)[:, None, None]
    heat = HEATMAP_PEAK * np.exp(-(dx**2 + dy**2) / (2 * HEATMAP_SIGMA**2))
    return heat[None].astype(np.float32)


def detector_onnx() -> bytes:
    return constant_output_onnx("images", (1, 3, DET_INPUT, DET_INPUT), "output0", yolo_output())


def pose_onnx() -> bytes:
    return constant_output_onnx("input", (1, 3, *POSE_INPUT), "output", vitpose_output())


def write_onnx_files(folder: Path) -> None:
    """The two graphs under their flat names, for carrying to a machine without the onnx package."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARRIED["det"]).write_bytes(detector_onnx())
    (folder / CARRIED["pose"]).write_bytes(pose_onnx())


def write_onnx_models(out: Path, pose2d_layout: str, source: Path | None = None) -> None:
    """YOLO detector and ViTPose whole-body model under process_checkpoint/, built here or copied from
    `source` (a write_onnx_files folder).

    Input/output names are those of the public exports (ultralytics YOLOv10:
    images -> output0; mmdeploy ViTPose: input -> output); upstream reads them
    from the session anyway.
    """
    if source is None:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise SystemExit(
                "the onnx package is not importable here: write the two graphs where it is "
                "(make_synthetic_checkpoint.py --write_onnx DIR) and pass --onnx_from DIR"
            ) from None
    det = out / DET_FILE
    pose = out / POSE_FILE
    if pose2d_layout == "folder":
        # The Hugging Face repo ships a folder; SimpleOnnxInference opens end2end.onnx in it.
        pose = pose / "end2end.onnx"
    for path in (det, pose):
        path.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        for kind, path in (("det", det), ("pose", pose)):
            if not (source / CARRIED[kind]).is_file():
                raise SystemExit(
                    f"--onnx_from {source}: {CARRIED[kind]} is missing; write the folder with "
                    "make_synthetic_checkpoint.py --write_onnx DIR"
                )
            shutil.copyfile(source / CARRIED[kind], path)
        return
    det.write_bytes(detector_onnx())
    pose.write_bytes(pose_onnx())
