"""Reward-model training throughput (pairs/s) and peak RSS: our RewardModule vs TRL's RewardTrainer.

Same model (SmolLM2-135M fp32 + LoRA r16/a32/dropout 0.05 on all linear layers, score head trained),
same data (the first HH-RLHF harmless-base pairs of ../shared/data, chatml, truncated by our rule to
`--max-length` tokens: TRL receives our token ids in our loader's order and reads them sequentially, so
both see identical batches in the same order), same batch (pairs per step; 2 × that many sequences),
AdamW lr 5e-5 cosine, grad-norm clip 0.3, no gradient checkpointing (TRL's default is on: switched off here so the work is the same). Ours runs through a
Lightning Trainer fit of the `stage=reward` config. Each (run, system) is a fresh subprocess; the
ratio ours/TRL is computed run by run (median and range over 5 paired runs), each after `--warmup` untimed steps.

    .venv/bin/python bench/rm_throughput.py            # 5 paired runs
    .venv/bin/python bench/rm_throughput.py --quick    # tiny model smoke run
    .venv/bin/python bench/rm_throughput.py --gpu      # bf16, FSDP2 on one GPU for ours, bf16 for TRL
"""

from __future__ import annotations

import pair_bench
from harness import multi_worker_main
from pair_bench import data_overrides, result
from ppo_settings import LORA, model_overrides, model_spec

LR, GRAD_CLIP = 5e-5, 0.3


def ours_worker(args, layout: list[str] | None = None, name: str = "ours") -> dict:
    from lightning_run import GPU, fit_stage

    steps = args.warmup + args.steps
    overrides = model_overrides(args) + data_overrides(args) + (layout or []) + [
        "stage=reward", "peft=lora", f"stage.module.optim.lr={LR}", f"trainer.gradient_clip_val={GRAD_CLIP}",
        f"trainer.max_steps={steps}", "+trainer.limit_val_batches=0"] + (GPU if args.gpu else [])
    _, _, durations = fit_stage(overrides)
    return result(name, args, durations)


def ours_padded_worker(args) -> dict:
    """Ours without the shared-prefix packing: every sequence its own padded row, as TRL does."""
    return ours_worker(args, ["data.shared_prefix=false"], "ours_padded")


def trl_worker(args) -> dict:
    import tempfile

    from datasets import Dataset
    from hydra.utils import instantiate
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer

    from lightning_run import GPU, compose_train_config
    from rlhf.reward_model.module import load_reward_backbone
    from step_timers import HFStepTimer

    steps = args.warmup + args.steps
    cfg = compose_train_config(model_overrides(args) + data_overrides(args) + ["stage=reward"] + (GPU if args.gpu else []),
                               tempfile.gettempdir())
    from rlhf.core.models import load_backbone_tokenizer

    datamodule = instantiate(cfg.data, tokenizer=load_backbone_tokenizer(model_spec(args)))  # our tokenisation and truncation, so both systems get the same ids
    datamodule.setup("fit")
    chosen, rejected = [], []
    for group in pair_bench.groups_in_our_order(datamodule):
        for c, r in group["pairs"]:
            chosen.append(group["input_ids"][c])
            rejected.append(group["input_ids"][r])
    tokenizer = datamodule.tokenizer
    model = load_reward_backbone(model_spec(args), tokenizer)
    config = RewardConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-rm-bench-"), per_device_train_batch_size=args.batch, max_steps=steps,
        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03, adam_beta1=0.9, adam_beta2=0.95,
        weight_decay=0.0, max_grad_norm=GRAD_CLIP, gradient_checkpointing=False, bf16=args.gpu, use_cpu=not args.gpu,
        report_to=[], save_strategy="no", logging_steps=1_000_000, disable_tqdm=True, max_length=None,
        disable_dropout=False, dataloader_num_workers=0, seed=0)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="SEQ_CLS", modules_to_save=["score"])
    timer = HFStepTimer()
    trainer = pair_bench.sequential(RewardTrainer)(model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
                            train_dataset=Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected}),
                            callbacks=[timer])
    trainer.train()
    return result("trl", args, timer.durations)


WORKERS = {"ours": ours_worker, "ours_padded": ours_padded_worker, "trl": trl_worker}


def compare(args) -> dict:
    return pair_bench.compare(args, __file__)


def parse(argv: list[str] | None):
    return pair_bench.parse(lambda: pair_bench.parser(__doc__), argv)


def main(argv: list[str] | None = None) -> None:
    multi_worker_main(parse(argv), WORKERS, compare)


if __name__ == "__main__":
    main()
