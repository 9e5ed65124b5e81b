"""Lightning + Hydra RLHF research codebase: SFT, reward models, PPO, evaluation."""

__version__ = "0.1.0"
