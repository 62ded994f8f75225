"""A random-weight stand-in for the Wan2.2-Animate-14B checkpoint folder, by concern:

- layout.py: the file names upstream loads (wan/configs/wan_animate_14B.py, preprocess_data.py);
- specs.py: every state dict as a list of tensor specs (name, shape, dtype, how to fill it), checked against the
  upstream modules in tests/test_synthetic_checkpoint.py; the structured attention weights (specs.QK_GAIN);
- tensors.py: filling the specs (CPU or GPU random numbers) and writing torch / safetensors files;
- tokenizer_files.py: offline Hugging Face tokenizers for umT5 and XLM-R;
- onnx_models.py: the YOLO detector and ViTPose stand-ins, built with the onnx package's helpers;
- sam2_file.py: the SAM2-L checkpoint, built by the sam2 package itself;
- checkpoint.py: the whole folder.

`scripts/make_synthetic_checkpoint.py` is the command line. Heavy imports (torch, numpy, onnx, tokenizers, sam2)
happen inside functions, so that `--help` works with the standard library alone.
"""
