from ..model import flash_attention, rope_apply


class WanAnimateModel:
    """The DiT: diffusers' from_pretrained builds it from the checkpoint folder."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        return cls()

    def after_patch_embedding(self, x, pose_latents, face_pixel_values):
        raise AssertionError("upstream after_patch_embedding: the launcher wraps it")

    def eval(self):
        return self

    def requires_grad_(self, flag):
        return self

    def __call__(self, x, **kwargs):
        return x

    def forward(self, x, pose_latents, face_pixel_values, grid_sizes, freqs):
        """Where upstream calls the names the launcher patches (never run by the stand-ins)."""
        x, _ = self.after_patch_embedding(x, pose_latents, face_pixel_values)
        return flash_attention(q=rope_apply(x, grid_sizes, freqs), k=rope_apply(x, grid_sizes, freqs), v=x)
