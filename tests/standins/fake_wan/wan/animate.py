import os


class _TinyVAE:
    """Decodes each clip to flat grey 8×8 frames (what the launcher's colour-match hook wraps)."""

    def decode(self, zs):
        import torch

        return [torch.zeros(3, 1 + (z.shape[1] - 1) * 4, 8, 8) for z in zs]


class WanAnimate:
    """Records what the pipeline passes to the model (the launcher's prompt patch is checked through it), and walks
    the clips the way upstream's WanAnimate.generate does (wan/animate.py @ 42bf4cf) with the statements the
    launcher's colour-match hook checks for, at 8×8 pixels and without sampling."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.vae = _TinyVAE()

    def get_valid_len(self, real_len, clip_len=81, overlap=1):
        real_clip_len = clip_len - overlap
        last_clip_num = (real_len - overlap) % real_clip_len
        return real_len + (0 if last_clip_num == 0 else real_clip_len - last_clip_num)

    def inputs_padding(self, array, target_len):
        return [array[min(i, len(array) - 1)] for i in range(target_len)]

    def prepare_source(self, src_pose_path, src_face_path, src_ref_path):
        from standins._media import probe_frames_fps

        frames = probe_frames_fps(src_pose_path)[0]
        return list(range(frames)), list(range(frames)), None

    def prepare_source_for_replace(self, src_bg_path, src_mask_path):
        import numpy as np

        frames = len(self.prepare_source(os.path.join(os.path.dirname(src_mask_path), "src_pose.mp4"), "", "")[0])
        return list(range(frames)), np.ones((frames, 8, 8))

    def generate(self, src_root_path, replace_flag=False, clip_len=77, refert_num=1, shift=5.0, sample_solver="dpm++",
                 sampling_steps=20, guide_scale=1, input_prompt="", n_prompt="", seed=-1, offload_model=True):
        assert refert_num == 1 or refert_num == 5, "refert_num should be 1 or 5."
        import torch

        from .modules import attention
        route = "sdpa" if attention.flash_attention.__name__.startswith("_sdpa") else "flash"
        print(f"stand-in WanAnimate.generate: input_prompt={input_prompt!r} n_prompt={n_prompt!r} "
              f"attention={route}", flush=True)
        cond_images, _, _ = self.prepare_source(src_pose_path=os.path.join(src_root_path, "src_pose.mp4"),
                                                src_face_path="", src_ref_path="")
        target_len = self.get_valid_len(len(cond_images), clip_len, overlap=refert_num)
        cond_images = self.inputs_padding(cond_images, target_len)
        if replace_flag:
            self.prepare_source_for_replace(os.path.join(src_root_path, "src_bg.mp4"),
                                            os.path.join(src_root_path, "src_mask.mp4"))
        start, clips = 0, 0
        while start + refert_num < len(cond_images):
            x0 = [torch.zeros(16, (clip_len - 1) // 4 + 2, 1, 1)]
            out_frames = torch.stack(self.vae.decode([x0[0][:, 1:]]))
            guide = out_frames[0, :, -refert_num:]
            clips += 1
            start += clip_len - refert_num
        print(f"stand-in WanAnimate.generate: {clips} clips decoded (guide {tuple(guide.shape)})", flush=True)
