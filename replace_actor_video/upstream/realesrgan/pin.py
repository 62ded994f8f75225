"""What the Real-ESRGAN adapter and mirror were checked against (scripts/install_finishing.sh reads this file)."""

REPO = "https://github.com/xinntao/Real-ESRGAN.git"
COMMIT = "a4abfb2979a7bbff3f69f58f58ae324608821e27"
