import gzip
import json

import pytest
import torch

from rlhf.data.pairs import (
    PAIR_BUILDERS,
    all_ranked_pairs,
    best_vs_rest_pairs,
    build_pairs,
    consensus_ranking,
    ranked_group_to_pair_index,
    top2_bottom2_pairs,
)
from rlhf.core.errors import ConfigError, DataError


def test_all_pairs_of_three_are_every_better_worse_pair():
    # C(3,2) = 3 pairs, always (better, worse)
    assert all_ranked_pairs([0, 1, 2]) == [(0, 1), (0, 2), (1, 2)]
    # rank order: reply 1 (0), reply 2 (1), reply 0 (2)
    assert all_ranked_pairs([2, 0, 1]) == [(1, 2), (1, 0), (2, 0)]


def test_all_pairs_skip_ties_and_unranked():
    # replies 0 and 1 tie: 3 pairs minus the tie = 2
    assert all_ranked_pairs([0, 0, 1]) == [(0, 2), (1, 2)]
    # reply 1 unranked: only 0 vs 2 remains
    assert all_ranked_pairs([0, None, 1]) == [(0, 2)]
    assert all_ranked_pairs([3, 3, 3]) == []


def test_top2_bottom2_gives_ice_grt_four_pairs_and_skips_middle():
    # ranks 0,1 chosen x ranks 3,4 rejected; rank 2 (reply 2) unused
    assert top2_bottom2_pairs([0, 1, 2, 3, 4]) == [(0, 3), (0, 4), (1, 3), (1, 4)]
    # shuffled: rank 0 = reply 2, rank 1 = reply 4, rank 3 = reply 3, rank 4 = reply 0
    assert top2_bottom2_pairs([4, 2, 0, 3, 1]) == [(2, 3), (2, 0), (4, 3), (4, 0)]


def test_top2_bottom2_with_fewer_than_four_replies():
    # K = 4: two best (0, 1) x two worst (2, 3)
    assert top2_bottom2_pairs([0, 1, 2, 3]) == [(0, 2), (0, 3), (1, 2), (1, 3)]
    # K = 3 and K = 2: one best vs one worst
    assert top2_bottom2_pairs([0, 1, 2]) == [(0, 2)]
    assert top2_bottom2_pairs([1, 0]) == [(1, 0)]
    assert top2_bottom2_pairs([0]) == []
    assert top2_bottom2_pairs([]) == []


def test_top2_bottom2_ties():
    # all tied: no pair
    assert top2_bottom2_pairs([0, 0, 0, 0, 0]) == []
    # 1 reply is strictly better than each of replies 1-3 and 1 strictly worse, so they are
    # both "among the two best" and "among the two worst"; only strictly ordered pairs survive:
    # 0 beats 1,2,3,4 and 1,2,3 each beat 4 -> 7 pairs
    assert top2_bottom2_pairs([0, 1, 1, 1, 2]) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 4), (2, 4), (3, 4)]


def test_best_vs_rest_with_tied_best():
    # replies 1 and 3 share rank 0; each beats reply 0 (rank 1) and reply 2 (rank 2)
    assert best_vs_rest_pairs([1, 0, 2, 0]) == [(1, 0), (1, 2), (3, 0), (3, 2)]
    assert best_vs_rest_pairs([None, None]) == []


def test_build_pairs_dispatches_and_rejects_unknown_strategy():
    assert set(PAIR_BUILDERS) == {"top2_bottom2", "all_pairs", "best_vs_rest"}
    assert build_pairs([0, 1, 2], "best_vs_rest") == [(0, 1), (0, 2)]
    with pytest.raises(ConfigError, match=r"reward\.pairs.*allowed: top2_bottom2, all_pairs, best_vs_rest"):
        build_pairs([0, 1], "every_pair")


@pytest.mark.parametrize("bad", [[-1, 0], [0.5, 1], [True, 0], ["1", 0]])
def test_bad_ranks_raise_data_error(bad):
    with pytest.raises(DataError, match="rank of reply"):
        all_ranked_pairs(bad)


def test_pair_index_points_into_flattened_replies():
    # group 0 = replies 0..2, group 1 = replies 3..4 ([1, 0] -> reply 4 beats reply 3), group 2 = reply 5 alone
    pair_index, group_ids = ranked_group_to_pair_index([[0, 1, 2], [1, 0], [0]], "all_pairs")
    assert pair_index.dtype == torch.long and group_ids.dtype == torch.long
    assert pair_index.tolist() == [[0, 1], [0, 2], [1, 2], [4, 3]]
    assert group_ids.tolist() == [0, 0, 0, 1]
    # one forward per reply, then the loss gathers: scores 3,2,1 | 0,5 -> chosen 3,3,2,5 rejected 2,1,1,0
    scores = torch.tensor([3.0, 2.0, 1.0, 0.0, 5.0, 9.0])
    assert scores[pair_index[:, 0]].tolist() == [3.0, 3.0, 2.0, 5.0]
    assert scores[pair_index[:, 1]].tolist() == [2.0, 1.0, 1.0, 0.0]


def test_pair_index_empty():
    pair_index, group_ids = ranked_group_to_pair_index([[0], [1, 1]], "top2_bottom2")
    assert pair_index.shape == (0, 2) and group_ids.shape == (0,)


def test_consensus_mean_rank():
    # rank sums per reply: 0+1+0 = 1, 1+0+2 = 3, 2+2+1 = 5 -> [0, 1, 2]
    assert consensus_ranking([[0, 1, 2], [1, 0, 2], [0, 2, 1]], method="mean_rank") == [0, 1, 2]
    # sums 1, 1, 4: replies 0 and 1 tie -> dense ranks [0, 0, 1]
    assert consensus_ranking([[0, 1, 2], [1, 0, 2]], method="mean_rank") == [0, 0, 1]


def test_consensus_errors():
    with pytest.raises(DataError, match="ranking 1 has 2 ranks"):
        consensus_ranking([[0, 1, 2], [0, 1]], method="mean_rank")
    with pytest.raises(DataError, match="int rank"):
        consensus_ranking([[0, None]], method="mean_rank")
    with pytest.raises(ConfigError, match="reward.consensus.*allowed: tideman, mean_rank"):
        consensus_ranking([[0, 1]], method="borda")


def test_consensus_tideman_is_default_and_uses_majorities():
    pytest.importorskip("rlhf.evaluate.ranking")
    # rank sums 0+0+2 = 2, 1+1+0 = 2, 2+2+1 = 5: mean rank ties replies 0 and 1 ...
    ballots = [[0, 1, 2], [0, 1, 2], [2, 0, 1]]
    assert consensus_ranking(ballots, method="mean_rank") == [0, 0, 1]
    # ... but 2 of 3 ballots put reply 0 above reply 1, 2 of 3 put 0 above 2, 3 of 3 put 1 above 2:
    # Tideman locks 1>2 (3:0), then 0>1 and 0>2 (2:1) -> 0, 1, 2
    assert consensus_ranking(ballots) == [0, 1, 2]


def _walk(message):
    yield message
    for reply in message.get("replies") or []:
        yield from _walk(reply)


def test_oasst_sibling_groups_give_754_pairs(shared_data_dir):
    path = shared_data_dir / "preference" / "oasst_en_100_message.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} not found: set RLHF_DATA_DIR")
    groups = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            for message in _walk(json.loads(line)):
                ranks = [reply.get("rank") for reply in message.get("replies") or []]
                if sum(r is not None for r in ranks) >= 2:
                    groups.append(ranks)
    pair_index, group_ids = ranked_group_to_pair_index(groups, "all_pairs")
    # data README: 212 sibling groups with >= 2 ranked replies, 754 pairwise comparisons
    assert len(groups) == 212
    assert pair_index.shape == (754, 2)
    assert len(set(group_ids.tolist())) == 212
