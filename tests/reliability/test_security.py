"""Loading never runs code from a file: a static scan of the package plus runtime checks."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tests_conf import REPO  # noqa: E402

from rlhf.core.errors import DataError
from rlhf.core.models import load_causal_lm

PACKAGES = ("rlhf", "callbacks")
MODEL_CLASSES = ("AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification", "PeftModel")


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            keywords = {k.arg: k.value for k in node.keywords}
            yield owner, name, keywords, node.lineno


def violations(source: str, where: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n in ("pickle", "dill", "cloudpickle", "joblib") for n in names if n):
                found.append(f"{where}:{node.lineno}: imports an unpickler")
    for owner, name, keywords, line in calls(tree):
        only_weights = keywords.get("weights_only")
        if name == "load" and owner == "torch" and not (isinstance(only_weights, ast.Constant) and only_weights.value is True):
            found.append(f"{where}:{line}: torch.load without weights_only=True")
        remote = keywords.get("trust_remote_code")
        if isinstance(remote, ast.Constant) and remote.value is True:
            found.append(f"{where}:{line}: trust_remote_code=True hard-coded")
        safe = keywords.get("use_safetensors")
        if (name == "from_pretrained" and owner in MODEL_CLASSES and "gguf_file" not in keywords
                and not (isinstance(safe, ast.Constant) and safe.value is True)):
            found.append(f"{where}:{line}: {owner}.from_pretrained without use_safetensors=True")
    return found


def test_scanner_catches_each_pattern():
    bad = ("import pickle\nimport torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "AutoModelForCausalLM.from_pretrained(p)\nAutoTokenizer.from_pretrained(p, trust_remote_code=True)\n")
    # by hand: line 1 pickle, lines 3 and 4 torch.load, line 5 no safetensors, line 6 remote code
    assert [v.split(": ", 1)[0] for v in violations(bad, "x")] == ["x:1", "x:3", "x:4", "x:5", "x:6"]
    good = "torch.load(p, weights_only=True)\nAutoModel.from_pretrained(p, use_safetensors=True)\n"
    assert violations(good, "x") == []


def test_package_has_no_unsafe_loading():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found += violations(path.read_text(), str(path.relative_to(REPO)))
    assert found == []


def test_no_secret_values_in_configs():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            key = line.split(":", 1)[0].strip().lower()
            if ("api_key" in key or "token" == key or "secret" in key) and not key.endswith("_env"):
                pytest.fail(f"{path}:{number}: a secret-looking key; read secrets from the environment instead")


def test_pickled_weights_folder_is_refused(tmp_path):
    model = torch.nn.Linear(2, 2)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 8, "hidden_size": 8,
                                                      "intermediate_size": 16, "num_hidden_layers": 1,
                                                      "num_attention_heads": 2}))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(DataError, match=r"only pickled weights \(pytorch_model.bin\), which are never loaded"):
        load_causal_lm(tmp_path)
