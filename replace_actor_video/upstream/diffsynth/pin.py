"""The DiffSynth-Studio commit the training adapter and mirror were checked against
(scripts/install_training.sh reads this file). Not the newer fed7b18 (#1622): there parse_model_configs looks
each --model_paths entry up in a dict, and the sharded Animate DiT is a list, so every Animate run stops with
"TypeError: unhashable type: 'list'"."""

REPO = "https://github.com/modelscope/DiffSynth-Studio.git"
COMMIT = "db5b335abe8eb7573f8b6d63f6dc381e70965da7"
