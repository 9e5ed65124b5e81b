"""DPO training throughput (pairs/s) and peak RSS: our DPOModule vs TRL's DPOTrainer.

Same model (SmolLM2-135M fp32 + LoRA r16/a32/dropout 0.05 on all linear layers; both take the
reference as the adapter-disabled policy, so neither holds a second copy), same data (the first
HH-RLHF harmless-base pairs of ../shared/data, chatml, truncated by our rule to `--max-length`
tokens: TRL receives our prompt / chosen / rejected token ids in our loader's order and reads them
sequentially, so both see identical batches in the same order),
same loss (sigmoid DPO, β 0.1, docs/algorithms.md §3.1), same batch (pairs per step), AdamW lr 5e-6
constant without warm-up, grad-norm clip 0.3, no gradient checkpointing. Ours runs through a
Lightning Trainer fit of the `stage=dpo` config (shared-prefix packing: one prompt forward per pair;
`ours_padded` switches it off, as TRL pads). Each (run, system) is a fresh subprocess; the ratio ours/TRL is
computed run by run (median and range over 5 paired runs), each after `--warmup` untimed steps.

    .venv/bin/python bench/dpo_throughput.py            # 5 paired runs
    .venv/bin/python bench/dpo_throughput.py --quick    # tiny model smoke run
    .venv/bin/python bench/dpo_throughput.py --gpu      # bf16, FSDP2 on one GPU for ours, bf16 for TRL
"""

from __future__ import annotations

import pair_bench
from harness import multi_worker_main
from pair_bench import data_overrides, result
from ppo_settings import LORA, model_overrides, model_spec

LR, GRAD_CLIP, BETA = 5e-6, 0.3, 0.1


def ours_worker(args, layout: list[str] | None = None, name: str = "ours") -> dict:
    from lightning_run import GPU, fit_stage

    steps = args.warmup + args.steps
    overrides = model_overrides(args) + data_overrides(args) + (layout or []) + [
        "stage=dpo", "peft=lora", f"stage.module.loss.beta={BETA}", f"stage.module.optim.lr={LR}",
        "stage.module.optim.warmup_ratio=0", f"trainer.gradient_clip_val={GRAD_CLIP}", f"trainer.max_steps={steps}",
        "+trainer.limit_val_batches=0"] + (GPU if args.gpu else [])
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
    from trl import DPOConfig, DPOTrainer

    from lightning_run import GPU, compose_train_config
    from rlhf.core.models import load_backbone, load_backbone_tokenizer
    from step_timers import HFStepTimer

    class PreTokenizedDPOTrainer(pair_bench.sequential(DPOTrainer)):
        """Takes our prompt / chosen / rejected ids as they are, so both systems train on the same tokens."""

        def _prepare_dataset(self, dataset, *unused, **unused_kw):
            return dataset

    steps = args.warmup + args.steps
    cfg = compose_train_config(model_overrides(args) + data_overrides(args) + ["stage=dpo"] + (GPU if args.gpu else []),
                               tempfile.gettempdir())
    tokenizer = load_backbone_tokenizer(model_spec(args))
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    datamodule.setup("fit")
    rows = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for group in pair_bench.groups_in_our_order(datamodule):
        for c, r in group["pairs"]:
            # group truncation: one prompt for the group, so chosen and rejected share it
            start = group["prompt_lengths"][c]
            rows["prompt_ids"].append(group["input_ids"][c][:start])
            rows["chosen_ids"].append(group["input_ids"][c][start:])
            rows["rejected_ids"].append(group["input_ids"][r][group["prompt_lengths"][r]:])
    model = load_backbone(model_spec(args), tokenizer)
    config = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-dpo-bench-"), per_device_train_batch_size=args.batch, max_steps=steps,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=GRAD_CLIP,
        beta=BETA, loss_type=["sigmoid"], max_length=None, precompute_ref_log_probs=False,
        gradient_checkpointing=False, bf16=args.gpu, use_cpu=not args.gpu, report_to=[], save_strategy="no",
        logging_steps=1_000_000, disable_tqdm=True, disable_dropout=False, dataloader_num_workers=0,
        remove_unused_columns=False, seed=0)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    timer = HFStepTimer()
    trainer = PreTokenizedDPOTrainer(model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
                                     train_dataset=Dataset.from_dict(rows), callbacks=[timer])
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
