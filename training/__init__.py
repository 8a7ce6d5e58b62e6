"""Training GFP-GAN: ``python -m training.train --config cfg.toml``. See training/README.md.

config (option tree) -> dataset (+ degradations) -> loop (generator from vidrestore.models,
discriminators, arcface, losses, metrics, logs) -> export (release-format weights).
"""
