"""Same seed and config -> identical metrics on CPU; the run dir records what produced them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).parent))
from sft_runs import logged_losses, write_sft_jsonl  # noqa: E402
from tests_conf import CONFIG_DIR, REPO  # noqa: E402

from rlhf.train import run


def sft_run(data: Path, out: Path, seed: int) -> dict:
    # paths.* given literally so the config resolves outside a Hydra run
    overrides = ["model=tiny", "data=jsonl", f"data.sources.0.path={data}", "data.max_length=48",
                 "data.batch_size=4", "data.val_fraction=0", "trainer=debug", "trainer.max_steps=3", "logger=csv",
                 f"seed={seed}", f"paths.root_dir={REPO}", f"paths.output_dir={out}", "export_dir=null"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return run(cfg)


@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    data = write_sft_jsonl(tmp_path / "sft.jsonl", n=16)
    first = sft_run(data, tmp_path / "a", seed=0)
    second = sft_run(data, tmp_path / "b", seed=0)
    other = sft_run(data, tmp_path / "c", seed=1)
    assert first["train/loss"] == second["train/loss"]
    assert first == second
    assert logged_losses(tmp_path / "a") == logged_losses(tmp_path / "b")
    assert sorted(logged_losses(tmp_path / "a")) == [0, 1, 2]
    assert first["train/loss"] != other["train/loss"]

    info = json.loads((tmp_path / "a" / "run_info.json").read_text())
    assert info["seed"] == 0 and info["versions"]["torch"] and info["versions"]["lightning"]
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
    resolved = (tmp_path / "a" / "config_resolved.yaml").read_text()
    assert "seed: 0" in resolved and str(data) in resolved
