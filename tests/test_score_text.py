"""`eegbench score text`: a file of outside predictions scored as a run scores text, and bad files as one line, exit 2."""

import json
import sys

import pytest

from eegbench import cli
from eegbench.evaluate import text, text_definitions

PAIRS = [("a dog is running on the grass", "A dog runs on the grass."),
         ("The cat sat on the mat.", "The cat, the cat sat on the mat.")]
RUN_METRICS = ["text_bleu/bleu1", "text_bleu/bleu2", "text_bleu/bleu3", "text_bleu/bleu4", "text_rouge/rouge1",
               "text_rouge/rouge2", "text_rouge/rougeL"]  # the names a run writes to metrics.json


def invoke(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["eegbench", "score", "text", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def write_csv(path, rows, header="caption,output,subject"):
    path.write_text(header + "\n" + "".join(f'"{ref}","{pred}",1\n' for ref, pred in rows))
    return path


def test_thought2text_scores_of_a_csv_file_are_the_hand_values(monkeypatch, capsys, tmp_path):
    out = tmp_path / "scores.json"
    code, printed, err = invoke(monkeypatch, capsys, write_csv(tmp_path / "preds.csv", PAIRS), "--reference", "caption",
                                "--prediction", "output", "--definition", "thought2text", "--json", out)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["definition"] == "thought2text" and result["n"] == 2
    assert [m["metric"] for m in result["metrics"]] == RUN_METRICS == list(result["values"])
    hand = {"text_bleu/bleu1": (0.423, 0.750), "text_bleu/bleu4": (0.091, 0.541), "text_rouge/rouge1": (0.615, 0.923),
            "text_rouge/rouge2": (0.364, 0.667), "text_rouge/rougeL": (0.615, 0.923)}
    for name, (dog, cat) in hand.items():
        assert result["values"][name] == pytest.approx((dog + cat) / 2, abs=1e-3), name
    bleu1 = next(m for m in result["metrics"] if m["metric"] == "text_bleu/bleu1")
    swapped = text_definitions.bleu("thought2text", [p for _, p in PAIRS], [PAIRS[1][0], PAIRS[0][0]])["bleu1"]
    assert bleu1["chance"] == pytest.approx(swapped["per_trial"].mean())  # each prediction with the other reference
    assert bleu1["ci"][0] <= bleu1["value"] <= bleu1["ci"][1] and bleu1["definition"] == "thought2text"
    assert "text_rouge/rougeL" in printed and "definition thought2text" in printed


def test_jsonl_and_csv_give_the_same_scores_and_the_default_is_sacrebleu(monkeypatch, capsys, tmp_path):
    from sacrebleu.metrics import BLEU

    rows = PAIRS + [("two birds fly over the sea", "Birds fly.")]
    lines = [json.dumps({"ref": ref, "pred": pred, "id": i}) for i, (ref, pred) in enumerate(rows)]
    (tmp_path / "preds.jsonl").write_text("\n".join(lines) + "\n\n")
    scores = {}
    for name, file, columns in (("jsonl", tmp_path / "preds.jsonl", ("ref", "pred")),
                                ("csv", write_csv(tmp_path / "preds.csv", rows), ("caption", "output"))):
        code, _, err = invoke(monkeypatch, capsys, file, "--reference", columns[0], "--prediction", columns[1],
                              "--json", tmp_path / f"{name}.json")
        assert code == 0, err
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["jsonl"]["values"] == scores["csv"]["values"] and scores["csv"]["definition"] == "sacrebleu"
    preds, refs = [p for _, p in rows], [r for r, _ in rows]
    assert scores["csv"]["values"]["text_bleu/bleu4"] == pytest.approx(BLEU().corpus_score(preds, [refs]).score / 100)


def test_scores_are_the_runs_own(tmp_path):
    from eegbench.evaluate.report import metric_record
    from eegbench.score.text import score_file

    result = score_file(write_csv(tmp_path / "p.csv", PAIRS * 3), "caption", "output", "eeg-to-text", seed=4)
    refs, preds = [r for r, _ in PAIRS * 3], [p for _, p in PAIRS * 3]
    run = metric_record("text_rouge/rouge2", "file", text.text_metrics("rouge", "eeg-to-text", preds, refs, 4)["rouge2"], {}, 4)
    assert next(m for m in result["metrics"] if m["metric"] == "text_rouge/rouge2") == run


@pytest.mark.parametrize("name, content, args, message", [
    ("missing.csv", None, (), "no such file"),
    ("p.csv", "caption,output,subject\n\"a cat\",\"a cat\",1\n\"a dog\",\"a dog\",1\n", ("--reference", "ref"),
     "no column 'ref'; the columns are caption, output, subject; pass --reference"),
    ("p.csv", "", (), "no rows"),
    ("p.csv", "caption,output,subject\n", (), "no rows"),
    ("p.csv", "caption,output,subject\n\"a cat\",\"a cat\",1\n", (), "one row"),
    ("p.csv", "caption,output,subject\na cat,a cat,1\na dog,a, dog,1\n", (), "line 3 has 4 fields, the header 3"),
    ("p.csv", "caption,output,subject\n\"a cat,a cat,1\n", (), "not valid CSV"),
    ("p.csv", "caption,output,subject\n,a cat,1\na dog,a dog,1\n", (), "row 1 has no 'caption'"),
    ("p.jsonl", '{"caption": "a cat", "output": "a cat"}\n{caption: 1}\n', (), "line 2: not JSON"),
    ("p.jsonl", '["a cat", "a cat"]\n', (), "line 1 is a JSON list, not an object"),
    ("p.txt", "a cat\ta cat\n", (), "unknown file type .txt"),
    ("p.csv", "caption,output,subject\na cat,a cat,1\na dog,a dog,1\n", ("--definition", "bleu"), "--definition bleu"),
])
def test_a_bad_file_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, name, content, args, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, _, err = invoke(monkeypatch, capsys, path, "--reference", "caption", "--prediction", "output", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
