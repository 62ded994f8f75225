"""The SAM2-L checkpoint that preprocess_data.py loads in replace mode."""

from __future__ import annotations

from pathlib import Path

from .layout import SAM2_FILE

SAM2_OBJ_SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"


def write_sam2(out: Path) -> None:
    """``{"model": state_dict}`` of the sam2 package's ``sam2_hiera_l.yaml`` model.

    Built by the sam2 package itself (random init from the config) so the keys
    match what sam2.build_sam._load_checkpoint loads strictly; a CUDA-less sam2
    build (SAM2_BUILD_CUDA=0) is enough. One override: the object-score head
    always says "object present". A random head says "absent" on some frames,
    SAM2 then blanks the whole mask, and upstream's get_aug_mask crashes on an
    empty mask (Wan2.2 issue #300). The masks themselves stay random (near-zero
    logits; measured 14-27% of the frame on CPU).
    """
    import torch
    from sam2.build_sam import build_sam2

    model = build_sam2("sam2_hiera_l.yaml", ckpt_path=None, device="cpu", mode="eval")
    state = model.state_dict()
    state[f"{SAM2_OBJ_SCORE_HEAD}.weight"].zero_()
    state[f"{SAM2_OBJ_SCORE_HEAD}.bias"].fill_(10.0)
    path = out / SAM2_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
