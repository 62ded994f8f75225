def flash_attention(*args, **kwargs):
    raise AssertionError("flash_attn is not installed")


class CLIPModel:
    def __init__(self, dtype, device, checkpoint_path, tokenizer_path):
        self.dtype = dtype
        self.device = device
