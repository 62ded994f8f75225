"""File names under the checkpoint folder, as upstream loads them (wan/configs/wan_animate_14B.py,
wan/animate.py, preprocess_data.py at Wan2.2 42bf4cf)."""

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
VAE_FILE = "Wan2.1_VAE.pth"
LORA_FILE = "relighting_lora.ckpt"
T5_TOKENIZER_DIR = "google/umt5-xxl"
CLIP_TOKENIZER_DIR = "xlm-roberta-large"
DET_FILE = "process_checkpoint/det/yolov10m.onnx"
POSE_FILE = "process_checkpoint/pose2d/vitpose_h_wholebody.onnx"
SAM2_FILE = "process_checkpoint/sam2/sam2_hiera_large.pt"
DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
# Not part of the official folder: a LoRA in LightX2V's step-distill layout for `--preset fast` runs (bench_job.py).
DISTILL_LORA_FILE = "synthetic_lightx2v_4step_lora.safetensors"
