import pytest

from rlhf.data.tideman import pairwise_counts, tideman_ranks, tideman_tiers
from rlhf.evaluate.ranking import borda_points, borda_scores, group_mean_std, human_ranking_study


def test_thesis_table_9():
    # Votes (2 > 1 > 3), (3 > 1 > 2), (3 > 1 > 2); ballots are {candidate: rank}.
    ballots = [{2: 1, 1: 2, 3: 3}, {3: 1, 1: 2, 2: 3}, {3: 1, 1: 2, 2: 3}]
    # n(3,1)=2 vs n(1,3)=1; n(1,2)=2 vs 1; n(3,2)=2 vs 1: all margins 1, no cycle -> 3 > 1 > 2
    assert tideman_ranks(ballots, candidates=[1, 2, 3]) == {3: 1, 1: 2, 2: 3}


def test_textbook_cycle_is_broken_at_the_weakest_victory():
    # 5 voters A>B>C, 4 voters B>C>A, 2 voters C>A>B.
    ballots = [{"A": 1, "B": 2, "C": 3}] * 5 + [{"B": 1, "C": 2, "A": 3}] * 4 + [{"C": 1, "A": 2, "B": 3}] * 2
    counts = pairwise_counts(ballots, ["A", "B", "C"])
    # A over B: 5 + 2 = 7 vs 4; B over C: 5 + 4 = 9 vs 2; C over A: 4 + 2 = 6 vs 5
    assert (counts[("A", "B")], counts[("B", "A")]) == (7, 4)
    assert (counts[("B", "C")], counts[("C", "B")]) == (9, 2)
    assert (counts[("C", "A")], counts[("A", "C")]) == (6, 5)
    # margins: B>C 7, A>B 3, C>A 1. Lock B>C, lock A>B; C>A would close A>B>C>A -> skipped.
    assert tideman_ranks(ballots) == {"A": 1, "B": 2, "C": 3}


def test_tie_break_rule_equal_margins_follow_candidate_order():
    # Condorcet cycle with equal margins (each pairwise 2 vs 1) and equal winning votes.
    # Rule: equal (margin, winning votes) -> earlier winner in `candidates` first, then earlier loser.
    ballots = [{"A": 1, "B": 2, "C": 3}, {"B": 1, "C": 2, "A": 3}, {"C": 1, "A": 2, "B": 3}]
    # order A,B,C: lock A>B, then B>C; C>A closes a cycle -> A > B > C
    assert tideman_ranks(ballots, ["A", "B", "C"]) == {"A": 1, "B": 2, "C": 3}
    # order C,B,A: lock C>A (C first), then B>C; A>B closes a cycle -> B > C > A
    assert tideman_ranks(ballots, ["C", "B", "A"]) == {"B": 1, "C": 2, "A": 3}


def test_exact_ties_share_a_rank_and_tied_votes_count_for_neither():
    # one voter A>B, one voter B>A, C last on both; a tied vote (A=B) adds nothing
    ballots = [{"A": 1, "B": 2, "C": 3}, {"B": 1, "A": 2, "C": 3}, {"A": 1, "B": 1, "C": 2}]
    assert tideman_tiers(ballots, ["A", "B", "C"]) == [["A", "B"], ["C"]]
    assert tideman_ranks(ballots, ["A", "B", "C"]) == {"A": 1, "B": 1, "C": 3}


def test_borda_points_three_and_four_systems():
    # n = 3: (3-1+1)/3 = 1, (3-2+1)/3 = 0.667, (3-3+1)/3 = 0.333
    assert [borda_points(r, 3) for r in (1, 2, 3)] == pytest.approx([1.0, 2 / 3, 1 / 3])
    # n = 4: 4/4, 3/4, 2/4, 1/4
    assert [borda_points(r, 4) for r in (1, 2, 3, 4)] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError):
        borda_points(4, 3)


def test_borda_scores_average_over_prompts():
    rankings = [{"x": 1, "y": 2, "z": 3}, {"x": 3, "y": 1, "z": 2}]
    # x: (1 + 1/3)/2 = 0.6667; y: (2/3 + 1)/2 = 0.8333; z: (1/3 + 2/3)/2 = 0.5
    assert borda_scores(rankings) == pytest.approx({"x": 2 / 3, "y": 5 / 6, "z": 0.5})


def test_group_mean_std_reproduces_table_17():
    groups = [{"pref": 0.63, "abs": 0.73, "crs": 0.63}, {"pref": 0.48, "abs": 0.87, "crs": 0.65},
              {"pref": 0.52, "abs": 0.78, "crs": 0.70}]
    out = group_mean_std(groups)
    # pref: mean 0.5433; deviations .0867, -.0633, -.0233 -> var (.007511+.004011+.000544)/3 = .004022 -> std .0634
    assert out["pref"]["mean"] == pytest.approx(0.5433, abs=1e-4)
    assert out["pref"]["std"] == pytest.approx(0.0634, abs=1e-4)
    # abs: mean 0.7933, var (.004011+.005878+.000178)/3 = .003356 -> std .0579 (reported 0.058)
    assert out["abs"]["std"] == pytest.approx(0.0579, abs=1e-4)
    # crs: mean 0.66, var (.0009+.0001+.0016)/3 = .000867 -> std .0294 (reported 0.029)
    assert out["crs"]["std"] == pytest.approx(0.0294, abs=1e-4)


def test_human_ranking_study_end_to_end():
    rows = []
    for annotator, order in enumerate([("m2", "m1", "m3"), ("m3", "m1", "m2"), ("m3", "m1", "m2")]):
        rows += [{"group": 1, "prompt_id": "p", "annotator": annotator, "model": m, "rank": r + 1}
                 for r, m in enumerate(order)]
    study = human_ranking_study(rows)
    # Table 9 merge: m3 > m1 > m2 -> Borda 1, 2/3, 1/3
    assert study["groups"][1] == pytest.approx({"m3": 1.0, "m1": 2 / 3, "m2": 1 / 3})
    assert study["ranking"] == ["m3", "m1", "m2"]
