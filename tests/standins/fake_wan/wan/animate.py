"""wan/animate.py: WanAnimate builds T5, CLIP, the VAE and the DiT as upstream does (in that order), and generate()
walks the clips as upstream's does (wan/animate.py @ 42bf4cf, with the statements the launcher's colour-match hook
checks for, at 8×8 pixels) calling them per sampling step; it records what the pipeline passes (the launcher's
prompt patch is checked through it) and counts how often models are built (the warm worker builds them once). With
STANDIN_GENERATE_GATE=<file> it samples for as long as that file exists, with a worker process of its own (as
torchrun's workers or an ffmpeg would be), so a test can stop or kill a run mid-generate."""
import os
import subprocess
import sys
import time

from .modules.animate import CLIPModel, WanAnimateModel
from .modules.t5 import T5EncoderModel
from .modules.vae2_1 import Wan2_1_VAE

BUILT = {"count": 0}


def hold_at_gate(gate):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "standin-worker", gate])
    start, step = time.monotonic(), 0
    while os.path.exists(gate) and time.monotonic() - start < 300:
        step = min(step + 1, 99)
        sys.stdout.write(f"\r{step:3d}%|{'#' * (step // 10):<10}| {step}/100 [00:{step % 60:02d}<00:30,  5.00it/s]")
        sys.stdout.flush()
        time.sleep(0.2)
    print(flush=True)
    worker.terminate()
    worker.wait()


class Video:
    """Stands for the generated frames tensor: what save_video needs to write the file."""

    def __init__(self, frames, width, height):
        self.frames, self.width, self.height = frames, width, height

    def __getitem__(self, index):
        return [self]


class WanAnimate:
    def __init__(self, config, checkpoint_dir, device_id=0, rank=0, t5_fsdp=False, dit_fsdp=False, use_sp=False,
                 t5_cpu=False, init_on_cpu=True, convert_model_dtype=False, use_relighting_lora=False):
        self.rank = rank
        self.device = f"cuda:{device_id}"  # upstream's torch.device; the stand-ins never place anything on it
        self.text_encoder = T5EncoderModel(text_len=512, device="cpu",
                                           checkpoint_path=os.path.join(checkpoint_dir, "models_t5_umt5-xxl-enc-bf16.pth"))
        self.clip = CLIPModel(dtype=None, device=device_id, checkpoint_path=os.path.join(
            checkpoint_dir, "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"), tokenizer_path=None)
        self.vae = Wan2_1_VAE(vae_pth=os.path.join(checkpoint_dir, "Wan2.1_VAE.pth"), device=device_id)
        self.noise_model = WanAnimateModel.from_pretrained(checkpoint_dir, device_map=self.device)
        self.noise_model = self._configure_model(model=self.noise_model, use_sp=use_sp,
                                                 dit_fsdp=dit_fsdp, shard_fn=None,
                                                 convert_model_dtype=convert_model_dtype,
                                                 use_lora=use_relighting_lora, checkpoint_dir=checkpoint_dir,
                                                 config=config)
        BUILT["count"] += 1
        print(f"stand-in WanAnimate built (#{BUILT['count']} in this process, pid {os.getpid()}, "
              f"relighting={use_relighting_lora})", flush=True)

    def _configure_model(self, model, use_sp, dit_fsdp, shard_fn, convert_model_dtype, use_lora, checkpoint_dir,
                         config):
        return model.eval().requires_grad_(False)

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
        from standins._media import probe_frames_fps

        from .modules import attention
        route = "sdpa" if attention.flash_attention.__name__.startswith("_sdpa") else "flash"
        print(f"stand-in WanAnimate.generate: input_prompt={input_prompt!r} n_prompt={n_prompt!r} "
              f"attention={route}", flush=True)
        self.text_encoder.model.to(self.vae.device)
        self.text_encoder([input_prompt], self.vae.device)
        cond_images, _, _ = self.prepare_source(src_pose_path=os.path.join(src_root_path, "src_pose.mp4"),
                                                src_face_path="", src_ref_path="")
        target_len = self.get_valid_len(len(cond_images), clip_len, overlap=refert_num)
        cond_images = self.inputs_padding(cond_images, target_len)
        if replace_flag:
            self.prepare_source_for_replace(os.path.join(src_root_path, "src_bg.mp4"),
                                            os.path.join(src_root_path, "src_mask.mp4"))
        if os.environ.get("STANDIN_GENERATE_GATE"):
            hold_at_gate(os.environ["STANDIN_GENERATE_GATE"])
        step_seconds = float(os.environ.get("STANDIN_STEP_SECONDS", "0"))
        start = 0
        while start + refert_num < len(cond_images):
            self.vae.encode([src_root_path])
            for step in range(sampling_steps):
                if step_seconds:
                    time.sleep(step_seconds)  # lets a test cancel a job half-way
                self.noise_model([step])
                print(f"{step + 1}/{sampling_steps}", flush=True)
            x0 = [torch.zeros(16, (clip_len - 1) // 4 + 2, 1, 1)]
            out_frames = torch.stack(self.vae.decode([x0[0][:, 1:]]))
            guide = out_frames[0, :, -refert_num:]
            print(f"stand-in clip decoded: {tuple(out_frames.shape)}, guide {tuple(guide.shape)}", flush=True)
            start += clip_len - refert_num
        frames, _fps, width, height = probe_frames_fps(os.path.join(src_root_path, "src_pose.mp4"))
        return Video(frames, width, height) if self.rank == 0 else None
