"""What the RIFE adapters and mirrors were checked against (scripts/install_finishing.sh reads this file)."""

PRACTICAL_RIFE_REPO = "https://github.com/hzwer/Practical-RIFE.git"
PRACTICAL_RIFE_COMMIT = "17d8c7a1005b37f4c97bfee04e316aaec7fdc536"
NCNN_REPO = "https://github.com/nihui/rife-ncnn-vulkan"
NCNN_COMMIT = "a7532fc3f9f8f008cd6eecd6f2ffe2a9698e0cf7"  # the source of release 20221029
NCNN_RELEASE_ZIP = "https://github.com/nihui/rife-ncnn-vulkan/releases/download/20221029/rife-ncnn-vulkan-20221029-ubuntu.zip"
