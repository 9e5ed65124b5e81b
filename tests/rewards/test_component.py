"""Rewards as components: any callable behind one interface, its checks, errors and statistics,
weighted sums, and every shipped configs/reward_fn file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rlhf.core.errors import ConfigError
from rlhf.rewards.build import build_reward, required_metadata
from rlhf.rewards.component import RewardComponent, RewardError, score_stats
from rlhf.rewards.crs import CombinedReward
from rlhf.rewards.weighted_sum import RewardResult, WeightedSumReward

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "reward_fn"
PROMPT = [{"role": "user", "content": "q"}]


def meta(*answers):
    return [{"id": f"p{i}", "answer": a} for i, a in enumerate(answers)]


def length_of(prompts, responses, metadata):
    return [float(len(r)) for r in responses]


def startswith_answer(prompts, responses, metadata):
    hits = [r.startswith(str(m["answer"])) for r, m in zip(responses, metadata)]
    return torch.tensor(hits, dtype=torch.float64), {"hit": hits}


startswith_answer.required_fields = ("answer",)


class Scaled:
    """A class reward with an argument, as a `_target_` without `_partial_` builds it."""

    def __init__(self, factor: float = 2.0):
        self.factor = factor

    def __call__(self, prompts, responses, metadata):
        return [self.factor * len(r) for r in responses]


def test_a_plain_function_gives_float32_scores_and_its_details():
    reward = build_reward({"_target_": f"{__name__}.startswith_answer", "_partial_": True})
    result = reward([PROMPT] * 3, ["4 apples", "5", "four"], meta(4, 4, 4))
    assert isinstance(result, RewardResult)
    assert result.scores.dtype == torch.float32 and result.scores.tolist() == [1.0, 0.0, 0.0]
    assert reward.names == ["startswith_answer"]
    assert result.details["startswith_answer"] == {"hit": [True, False, False]}
    # mean 1/3, population std sqrt(2)/3, hit rate from the `hit` detail
    stats = result.stats["startswith_answer"]
    assert stats["mean"] == pytest.approx(1 / 3) and stats["std"] == pytest.approx(math.sqrt(2) / 3)
    assert stats["hit_rate"] == pytest.approx(1 / 3) and stats["invalid"] == 0
    assert result.metrics()["reward/startswith_answer/hit_rate"] == pytest.approx(1 / 3)
    assert reward.required_fields == ("answer",)
    with pytest.raises(RewardError, match=r"reads metadata \['answer'\], which reward.score\(prompts, responses\) cannot"):
        reward.score([PROMPT], ["4"])


def test_a_class_target_is_built_with_its_arguments():
    reward = build_reward({"_target_": f"{__name__}.Scaled", "factor": 0.5})
    assert reward.score([PROMPT] * 2, ["ab", "abcd"]).tolist() == [1.0, 2.0]   # .score: no metadata needed


def test_weighted_sum_reports_each_part_under_its_name():
    reward = build_reward([
        {"_target_": "rlhf.rewards.component.RewardComponent", "name": "correct", "weight": 1.0,
         "fn": {"_target_": f"{__name__}.startswith_answer", "_partial_": True}},
        {"_target_": "rlhf.rewards.component.RewardComponent", "name": "length", "weight": -0.1,
         "fn": {"_target_": f"{__name__}.length_of", "_partial_": True}},
    ])
    result = reward([PROMPT] * 2, ["4", "4 is 5"], meta(4, 5))
    # correct: 1, 0; length: 1, 6  ->  total 1 - 0.1 = 0.9 | 0 - 0.6 = -0.6
    assert torch.allclose(result.scores, torch.tensor([0.9, -0.6]))
    assert result.parts["length"].tolist() == [1.0, 6.0] and result.weights == {"correct": 1.0, "length": -0.1}
    assert set(result.stats) == {"correct", "length", "total"}
    assert result.stats["length"]["mean"] == 3.5 and result.stats["total"]["mean"] == pytest.approx(0.15)
    rows = result.rows()
    assert rows[1]["rewards"] == {"correct": 0.0, "length": 6.0} and rows[1]["details"] == {"correct": {"hit": False}}
    # the same list under `combine` (how a reward_fn group file holds one)
    combined = build_reward({"combine": [{"_target_": f"{__name__}.length_of", "_partial_": True}] * 2})
    assert combined.names == ["length_of", "length_of_2"]


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [1.0, float("inf")], [1.0, None]])
def test_nan_inf_or_none_stops_naming_the_reward_and_the_prompt(bad):
    reward = RewardComponent(lambda p, r, m: bad, name="flaky")
    with pytest.raises(RewardError, match=r"reward 'flaky' returned invalid scores: 1 of 2 .* prompt id p1"):
        reward.evaluate([PROMPT] * 2, ["a", "b"], meta(1, 2))


def test_on_invalid_skip_fills_counts_and_logs(caplog):
    reward = WeightedSumReward([RewardComponent(lambda p, r, m: [float("nan"), 2.0, float("inf")], name="flaky",
                                                on_invalid="skip", fill_value=-1.0)])
    result = reward([PROMPT] * 3, ["a", "b", "c"], meta(1, 2, 3))
    assert result.scores.tolist() == [-1.0, 2.0, -1.0]
    assert result.details["flaky"]["invalid"] == [True, False, True]
    assert result.stats["flaky"]["invalid"] == 2 and reward.parts[0].invalid_total == 2
    assert "2 of 3 scores are NaN or inf" in caplog.text and "p0" in caplog.text


def test_wrong_count_is_an_error_or_a_filled_batch():
    with pytest.raises(RewardError, match=r"returned \(1,\) scores for 2 responses"):
        RewardComponent(lambda p, r, m: [1.0], name="short").evaluate([PROMPT] * 2, ["a", "b"], meta(1, 2))
    scores, details, invalid = RewardComponent(lambda p, r, m: [1.0], on_invalid="skip").evaluate(
        [PROMPT] * 2, ["a", "b"], meta(1, 2))
    assert scores.tolist() == [0.0, 0.0] and invalid == 2
    with pytest.raises(RewardError, match="details\\['hit'\\] must be a list of one value per response"):
        RewardComponent(lambda p, r, m: ([1.0, 1.0], {"hit": [True]})).evaluate([PROMPT] * 2, ["a", "b"], meta(1, 2))
    with pytest.raises(RewardError, match="must return numbers"):
        RewardComponent(lambda p, r, m: ["high", "low"]).evaluate([PROMPT] * 2, ["a", "b"], meta(1, 2))


def test_an_exception_names_the_reward_and_the_prompt_that_raised():
    def picky(prompts, responses, metadata):
        return [1.0 / (len(r) - 3) for r in responses]            # "abc" divides by zero

    with pytest.raises(RewardError, match=r"reward 'picky' failed on prompt id p2 \(response 2 of a batch of 3\): "
                                          r"ZeroDivisionError"):
        RewardComponent(picky).evaluate([PROMPT] * 3, ["a", "ab", "abc"], meta(1, 2, 3))


def test_missing_metadata_field_or_rows_are_named():
    reward = RewardComponent(startswith_answer)
    with pytest.raises(RewardError, match=r"metadata field\(s\) \['answer'\], which prompt id q7 lacks"):
        reward.evaluate([PROMPT], ["4"], [{"id": "q7"}])
    with pytest.raises(RewardError, match="1 prompts, 2 responses and 1 metadata rows"):
        reward.evaluate([PROMPT], ["4", "5"], meta(4))


def test_bad_settings_and_nodes_fail_with_the_key():
    with pytest.raises(ConfigError, match="reward_fn.on_invalid"):
        RewardComponent(length_of, on_invalid="ignore")
    with pytest.raises(ConfigError, match="reward_fn._target_"):
        build_reward({"_target_": "no_such_module.reward"})
    with pytest.raises(ConfigError, match="neither `kind` nor `_target_`"):
        build_reward({"word": "x"})
    with pytest.raises(ConfigError, match=r"reward_fn.1': cannot build the reward .*unexpected keyword argument 'factr'"):
        build_reward([{"kind": "word_count"}, {"_target_": f"{__name__}.Scaled", "factr": 1}])
    with pytest.raises(ConfigError, match="'total' names the weighted sum"):
        build_reward({"_target_": "rlhf.rewards.component.RewardComponent", "name": "total",
                      "fn": {"_target_": f"{__name__}.length_of", "_partial_": True}})


def test_builtin_kinds_keep_their_numbers_through_the_interface():
    reward = build_reward({"kind": "word_count", "word": "cat"})
    result = reward([PROMPT], ["cat cat dog"])
    assert result.scores.tolist() == [2.0] and reward.names == ["word_count"]
    assert result.stats["word_count"]["mean"] == 2.0


class FixedScores:
    def __init__(self, scores):
        self.scores = torch.tensor(scores)

    def score(self, prompts, responses):
        return self.scores


def test_crs_state_round_trips_in_the_checkpoint_format_it_had():
    crs = CombinedReward(FixedScores([1.0, 2.0, 3.0]), FixedScores([5.0, 5.0, 5.0]), w=1.0, normalize="running")
    reward = WeightedSumReward([RewardComponent(crs, name="crs")])
    reward.score([PROMPT] * 3, ["a", "b", "c"])
    state = reward.state_dict()
    assert state == crs.state_dict() and set(state) == {"preference", "absolute"}   # as CombinedReward saved it
    fresh = CombinedReward(FixedScores([0.0]), FixedScores([0.0]), w=1.0, normalize="running")
    WeightedSumReward([RewardComponent(fresh, name="crs")]).load_state_dict(state)
    assert fresh.running["preference"].count == 3
    assert build_reward({"kind": "word_count"}).state_dict() == {}


def test_score_stats_hand_worked():
    stats = score_stats(torch.tensor([0.0, 1.0, 1.0, 0.0]), {"parsed": [True, True, True, False]}, invalid=1)
    assert stats == {"mean": 0.5, "std": 0.5, "min": 0.0, "max": 1.0, "invalid": 1.0, "parsed_rate": 0.75}


def test_a_tokenizer_parameter_gets_the_policy_tokenizer():
    node = {"_target_": "rlhf.rewards.length.LengthPenalty", "target_tokens": 2, "coef": 1.0}
    reward = build_reward(node, tokenizer=lambda text: text.split())
    assert reward.score([PROMPT] * 2, ["one two", "one two three four"]).tolist() == [0.0, -2.0]


SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.yaml") if "defaults" not in OmegaConf.load(p))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_target_config_builds_and_scores(name):
    node = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"))
    reward = build_reward(node)
    result = reward([PROMPT] * 2, ["First 3 * 4 = 12\n#### 12", "no idea"], meta("12", "12"))
    assert result.scores.shape == (2,) and torch.isfinite(result.scores).all()
    assert set(result.stats) == set(reward.names) | {"total"}
    fields = {f for _, f in required_metadata(node)}
    assert fields == set(reward.required_fields)


def test_required_metadata_reads_the_configured_field_without_building_models():
    node = OmegaConf.to_container(OmegaConf.load(CONFIGS / "math_answer.yaml"))
    assert required_metadata(node) == [("reward_fn.fn", "answer")]
    node["fn"]["field"] = "gold"
    assert required_metadata(node) == [("reward_fn.fn", "gold")]
    assert required_metadata([{"kind": "reward_model", "path": "nowhere"}, node]) == [("reward_fn.1.fn", "gold")]
    node["required_fields"] = ["answer", "level"]
    assert required_metadata(node) == [("reward_fn", "answer"), ("reward_fn", "level")]
    assert SHIPPED  # the glob found the target configs


def test_rows_of_several_results_are_kept_without_scoring_again():
    """Dynamic sampling keeps rows of several scored batches: parts, details and statistics of
    exactly those rows, by hand (no call of the reward)."""
    from rlhf.rewards.weighted_sum import RewardResult

    first = RewardResult(torch.tensor([1.0, 0.0]), {"hit": torch.tensor([1.0, 0.0])}, {"hit": 1.0},
                         {"hit": {"hit": [True, False]}})
    second = RewardResult(torch.tensor([1.0, 1.0]), {"hit": torch.tensor([1.0, 1.0])}, {"hit": 1.0},
                          {"hit": {"hit": [True, True]}})
    kept = RewardResult.of_rows([first, second], [1, 2, 3])
    assert kept.scores.tolist() == [0.0, 1.0, 1.0] and kept.details["hit"]["hit"] == [False, True, True]
    assert kept.stats["hit"]["hit_rate"] == pytest.approx(2 / 3)
    assert kept.stats["hit"]["invalid"] == 0.0
    assert kept.stats["total"]["mean"] == pytest.approx(2 / 3)
