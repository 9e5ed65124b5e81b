import pytest

from rlhf.core.errors import ConfigError
from rlhf.evaluate import lm_eval_bridge
from rlhf.evaluate.lm_eval_bridge import ICE_GRT_BENCHMARKS, LMEvalUnavailable, run_benchmarks, select_benchmarks


def test_benchmark_list_follows_ice_grt_table_1():
    shots = {b.name: b.num_fewshot for b in ICE_GRT_BENCHMARKS}
    # Table 1 header: MMLU 5, ARC-E/ARC-C/HellaSwag/Winogrande/RACE 1, GSM8K 8, MATH 4
    assert len(ICE_GRT_BENCHMARKS) == 12
    assert (shots["MMLU"], shots["ARC-C"], shots["RACE-H"], shots["GSM8K"], shots["MATH"]) == (5, 1, 1, 8, 4)
    runnable = select_benchmarks()
    assert len(runnable) == 11 and "RACE-M" not in [b.name for b in runnable]  # no harness task for RACE-M
    assert [b.task for b in select_benchmarks(["gsm8k", "LAMBADA"])] == ["gsm8k", "lambada_openai"]
    with pytest.raises(ConfigError, match="unknown benchmarks"):
        select_benchmarks(["MMLU-Pro"])
    with pytest.raises(ConfigError, match="no lm-eval task for .*RACE-M"):
        select_benchmarks(["RACE-M"])


def test_missing_harness_raises_with_install_hint(monkeypatch):
    monkeypatch.setattr(lm_eval_bridge, "lm_eval_available", lambda: False)
    with pytest.raises(LMEvalUnavailable, match=r'pip install "lm_eval\[hf\]"'):
        run_benchmarks("some/model")
    with pytest.raises(ImportError):  # also catchable as the usual missing-package error
        run_benchmarks("some/model")
