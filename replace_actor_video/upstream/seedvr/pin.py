"""What the SeedVR adapter and mirror were checked against (docs/FINISHING.md names it for a manual clone)."""

REPO = "https://github.com/ByteDance-Seed/SeedVR"
COMMIT = "673b56374c2adb21b7628b90df3829d457a52bbb"
