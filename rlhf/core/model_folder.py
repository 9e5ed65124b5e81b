"""What a model folder must hold before Hugging Face is asked to load it, so that a wrong folder is
one line naming the folder and what is missing, not a traceback from inside transformers.

A model folder is a saved HF model: `config.json` and safetensors weights (`model.safetensors`, or
shards with `model.safetensors.index.json`). Pickled weights (`pytorch_model.bin`) are refused:
unpickling a file can run code (RELIABILITY.md, Security).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from rlhf.core.errors import DataError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def looks_local(source: str) -> bool:
    """A path, not a hub id: hub ids are `name` or `org/name`, never absolute, relative with ./ or
    ../, or deeper than one slash."""
    return source.startswith(("/", "./", "../", "~")) or source.count("/") > 1 or Path(source).exists()


def check_model_folder(source: str) -> None:
    """Raise DataError naming the folder when `source` is a local path that is not a loadable model."""
    if not looks_local(source):
        return
    folder = Path(source).expanduser()
    if not folder.exists():
        raise DataError("model folder not found", source=source)
    if not folder.is_dir():
        raise DataError("a model is a folder (config.json + model.safetensors), got a file", source=source)
    if not (folder / "config.json").is_file():
        inside = " (an export dir: give its merged/ folder)" if (folder / "merged" / "config.json").is_file() else ""
        raise DataError(f"no config.json: not a saved Hugging Face model folder{inside}", source=source)
    if any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file():
        return
    pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
    if pickled:
        raise DataError(f"only pickled weights ({', '.join(pickled)}), which are never loaded because unpickling can "
                        "run code; save the model as safetensors (save_pretrained(..., safe_serialization=True))",
                        source=source)
    raise DataError("no weights: expected model.safetensors (or safetensors shards with model.safetensors.index.json)",
                    source=source)


def check_tokenizer_folder(source: str) -> None:
    if not looks_local(source):
        return
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise DataError("tokenizer folder not found" if not folder.exists() else "a tokenizer is a folder, got a file",
                        source=source)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(f"no tokenizer files (one of {list(TOKENIZER_FILES)}); save the tokenizer beside the model",
                        source=source)


@contextlib.contextmanager
def loading(source: str, what: str = "model"):
    """What transformers raises for a folder or hub id it cannot read (OSError, ValueError on a bad
    config) becomes one DataError naming the source."""
    try:
        yield
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise DataError(f"cannot load the {what}: {first}", source=source) from err
