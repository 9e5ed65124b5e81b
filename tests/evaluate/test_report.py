import pytest

from rlhf.evaluate.report import (Section, Table, markdown_table, report_from_judgments, score_length_points,
                                  write_report)


def test_markdown_table_formats_cells():
    table = Table("T", ["model", "win_rate", "se"], [["x|y", 0.7, None]])
    # pipes escaped, floats to 4 places, None as a dash
    assert markdown_table(table).splitlines()[-1] == "| x\\|y | 0.7000 | – |"


def test_markdown_string_tables_are_parsed():
    table = Table.from_markdown("| step | kl |\n|---|:---:|\n| 1 | 0.5 |\n| 2 | 0.25 |", "KL")
    assert (table.columns, table.rows) == (["step", "kl"], [["1", "0.5"], ["2", "0.25"]])
    with pytest.raises(ValueError, match="pipe table"):
        Table.from_markdown("just text")


def test_write_report_with_external_figure_and_table(tmp_path):
    import matplotlib.pyplot as plt

    png = tmp_path / "elsewhere" / "kl.png"
    png.parent.mkdir()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.1, 0.2])
    fig.savefig(png)
    plt.close(fig)
    section = Section("Training curves", "KL stayed small.",
                      [Table.from_records("Final", [{"step": 10, "kl": 0.02}]), "| beta |\n|---|\n| 0.1 |"],
                      [("KL per step", png)])
    paths = write_report(tmp_path / "out", [section], title="Run 1")
    md = paths["markdown"].read_text()
    assert md.startswith("# Run 1") and "## Training curves" in md and "| 10 | 0.0200 |" in md
    assert "![KL per step](figures/kl.png)" in md
    assert (tmp_path / "out" / "figures" / "kl.png").is_file()
    html = paths["html"].read_text()
    assert "<td>0.1</td>" in html and "<table>" in html and "<img src='figures/kl.png'" in html and "<h2>Training curves</h2>" in html
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "out", [Section("x", figures=[("missing", tmp_path / "nope.png")])])


def test_report_from_judgments_has_tables_and_plots(tmp_path):
    judgments = [
        {"id": "1", "dataset": "koala", "model_a": "x", "model_b": "y", "winner": "a", "judge": "reward_model",
         "score_a": 1.0, "score_b": 0.0, "length_a": 100, "length_b": 20},
        {"id": "2", "dataset": "vicuna", "model_a": "x", "model_b": "y", "winner": "b", "judge": "reward_model",
         "score_a": 0.5, "score_b": 2.0, "length_a": 40, "length_b": 300},
    ]
    assert score_length_points(judgments) == ([100.0, 20.0, 40.0, 300.0], [1.0, 0.0, 0.5, 2.0], ["x", "y", "x", "y"])
    paths = report_from_judgments(judgments, tmp_path)
    md = paths["markdown"].read_text()
    assert "Judge(s): reward_model" in md and "Per dataset" in md and "| x | y | koala |" in md
    # pearson: ds = .125,-.875,-.375,1.125; dl = -15,-95,-75,185; sxy = 317.5, sxx = 2.1875, syy = 49100
    # r = 317.5 / sqrt(2.1875 * 49100) = 317.5 / 327.729 = 0.9688; spearman 1
    assert "| 4 | 0.9688 | 1.0000 |" in md
    for name in ("win_rates.png", "reward_length.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    assert paths["html"].is_file()
