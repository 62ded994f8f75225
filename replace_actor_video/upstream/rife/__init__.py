"""Frame interpolation with RIFE: rife-ncnn-vulkan (ncnn.py, a release binary) and Practical-RIFE
(practical.py, run through runtime/launcher.py in its own Python)."""
