"""LoRA placement: all decoder layers by default, only the top N with `top_layers`."""

from rlhf.core.lora import apply_lora
from rlhf.core.models import build_tiny_llama, load_tokenizer


def lora_layers(model) -> set[int]:
    return {int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_" in name}


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_top_layers_puts_adapters_only_in_the_last_layers():
    tokenizer = load_tokenizer("embedded:smollm2-135m")
    every = apply_lora(build_tiny_llama(tokenizer, num_layers=4), {"r": 4, "alpha": 8})
    top = apply_lora(build_tiny_llama(tokenizer, num_layers=4), {"r": 4, "alpha": 8, "top_layers": 1})
    assert lora_layers(every) == {0, 1, 2, 3}
    assert lora_layers(top) == {3}
    # identical layers, so one layer of four carries exactly a quarter of the adapter parameters
    assert trainable(top) * 4 == trainable(every)
