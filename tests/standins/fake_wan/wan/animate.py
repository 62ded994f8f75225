class WanAnimate:
    """Records what the pipeline passes to the model (the launcher's prompt patch is checked through it). Shaped
    like upstream where the launcher's patch sites are (replace_actor_video/upstream/wan/runtime/patch_sites.py):
    __init__ builds noise_model through _configure_model, and vae; generate takes the prompts."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.vae = None
        self.noise_model = self._configure_model(None)

    def _configure_model(self, model, *args, **kwargs):
        return model

    def generate(self, src_root_path, replace_flag=False, clip_len=77, refert_num=1, shift=5.0, sample_solver="dpm++",
                 sampling_steps=20, guide_scale=1, input_prompt="", n_prompt="", seed=-1, offload_model=True):
        assert refert_num == 1 or refert_num == 5, "refert_num should be 1 or 5."
        from .modules import attention
        route = "sdpa" if attention.flash_attention.__name__.startswith("_sdpa") else "flash"
        print(f"stand-in WanAnimate.generate: input_prompt={input_prompt!r} n_prompt={n_prompt!r} "
              f"attention={route}", flush=True)
