"""Results.score(truth): accuracy, the confusion matrix, precision and recall per label, the
plot and the reprs, against the offline server's varied labels (``offline_choice``)."""

from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path

import pandas
import pytest
from matplotlib.figure import Figure
from PIL import Image

from reka_nb import InvalidRequestError, Score, describe_many
from reka_nb.testing import Fault, OfflineServer, image_digest, offline_choice, reference_choice

COUNT = 10
LABELS = ["cat", "dog", "bird"]
PROMPT = "Which animal?"
MODEL = "reka-edge"


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 6), (20, 160, 90)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "animals"
    out.mkdir()
    for i in range(COUNT):
        (out / f"a{i:02}.png").write_bytes(png(12 + i))
    return out


def digests(folder: Path) -> list[str]:
    return [image_digest(p.read_bytes()) for p in sorted(folder.iterdir())]


def answers(folder: Path, model: str = MODEL) -> list[str]:
    return [offline_choice(model, LABELS, [d], PROMPT) for d in digests(folder)]


def truth(folder: Path) -> list[str]:
    return [reference_choice(LABELS, [d], PROMPT) for d in digests(folder)]


def test_accuracy_confusion_and_per_label_are_exact(varied: OfflineServer, folder: Path) -> None:
    results = describe_many(folder, PROMPT, model=MODEL, labels=LABELS, show=False)
    right, given = truth(folder), answers(folder)
    assert [d["label"] for d in results.data] == given
    score = results.score(right)
    assert isinstance(score, Score)
    correct = sum(a == t for a, t in zip(given, right, strict=True))
    assert 0 < correct < COUNT  # some right, some wrong
    assert (score.correct, score.answered, score.failed) == (correct, COUNT, 0)
    assert score.accuracy == correct / COUNT
    assert score.field == "label" and score.model == MODEL
    pairs = Counter(zip(right, given, strict=True))
    matrix = score.confusion
    assert matrix.index.name == "truth" and matrix.columns.name == "answer"
    assert matrix.values.tolist() == [[pairs[(t, a)] for a in LABELS] for t in LABELS]
    per = score.per_label
    assert list(per.index) == LABELS and list(per.columns) == ["precision", "recall", "support"]
    for label in LABELS:
        tp = pairs[(label, label)]
        said = sum(a == label for a in given)
        real = sum(t == label for t in right)
        assert per.loc[label, "support"] == real
        precision, recall = per.loc[label, "precision"], per.loc[label, "recall"]
        assert precision == tp / said if said else math.isnan(precision)
        assert recall == tp / real if real else math.isnan(recall)
    assert repr(score) == (
        f"<Score {MODEL} label: accuracy {correct / COUNT:.0%} ({correct} of {COUNT} right)>"
    )
    page = score._repr_html_()
    assert page.count("<tr>") == 1 + len(LABELS) and f"{correct} of {COUNT} right" in page


def test_truth_by_series_dict_csv_and_case(
    varied: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    results = describe_many(folder, PROMPT, model=MODEL, labels=LABELS, show=False)
    right = truth(folder)
    expected = results.score(right).accuracy
    sources = [r.source for r in results]
    by_path = pandas.Series(right[::-1], index=sources[::-1])
    assert results.score(by_path).accuracy == expected
    assert results.score(pandas.Series(right)).accuracy == expected
    assert results.score(dict(zip(sources, right, strict=True))).accuracy == expected
    assert results.score([t.upper() + " " for t in right]).accuracy == expected
    names = [Path(s).name for s in sources]
    csv = tmp_path / "truth.csv"
    csv.write_text(
        "image,label\n" + "".join(f"{n},{t}\n" for n, t in zip(names, right, strict=True))
    )
    assert results.score(csv).accuracy == results.score(str(csv)).accuracy == expected


def test_failed_rows_are_counted_not_scored(varied: OfflineServer, folder: Path) -> None:
    varied.queue(Fault.status(400))
    results = describe_many(
        folder, PROMPT, model=MODEL, labels=LABELS, concurrency=1, cache=False, show=False
    )
    assert len(results.errors) == 1 and results.errors[0].index == 0
    right, given = truth(folder), answers(folder)
    score = results.score(right)
    correct = sum(a == t for a, t in zip(given[1:], right[1:], strict=True))
    assert (score.correct, score.answered, score.failed) == (correct, COUNT - 1, 1)
    assert score.accuracy == correct / (COUNT - 1)
    assert score.rows[0].answer is None and score.rows[0].correct is None
    assert int(score.confusion.values.sum()) == COUNT - 1
    assert repr(score).endswith(f"({correct} of {COUNT - 1} right, 1 failed)>")


def test_a_stopped_run_is_scored_on_what_it_has(
    varied: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3 * COUNT):
        (many / f"m{i:02}.png").write_bytes(png(40 + i))
    # the first question may cost up to $0.00045 (1008 tokens in, 50 out); each answer costs
    # about $0.00003: the budget stops the run after about a dozen
    results = describe_many(
        many, PROMPT, model=MODEL, labels=LABELS, max_cost=0.00047, max_tokens=50,
        concurrency=1, cache=False, show=False,
    )  # fmt: skip
    done = len(results)
    assert 0 < done < 3 * COUNT and not results.complete
    right, given = truth(many), answers(many)
    score = results.score(right)
    correct = sum(a == t for a, t in zip(given[:done], right[:done], strict=True))
    assert (score.correct, score.answered, score.total) == (correct, done, 3 * COUNT)
    assert repr(score).endswith(f", {3 * COUNT - done} not asked)>")
    with pytest.raises(InvalidRequestError, match=f"truth has 3 answers and there are {3 * COUNT}"):
        results.score(["cat"] * 3)


def test_multi_label_answers_are_right_with_exactly_the_true_labels(
    varied: OfflineServer, folder: Path
) -> None:
    results = describe_many(
        folder, PROMPT, model=MODEL, labels=LABELS, multi_label=True, show=False
    )
    given = [d["labels"] for d in results.data]
    assert [g[0] for g in given] == answers(folder)  # one label each, the model's choice
    right = [[g[0]] if i % 2 else "cat, dog" for i, g in enumerate(given)]
    score = results.score(right)
    expected = sum((set(g) == {"cat", "dog"}) if i % 2 == 0 else True for i, g in enumerate(given))
    assert score.correct == expected and score.multi_label
    with pytest.raises(InvalidRequestError, match="a multi-label answer has no confusion"):
        _ = score.confusion
    figure = score.plot()
    assert isinstance(figure, Figure) and figure.axes[0].get_ylabel() == "fraction (0-1)"


def test_a_schema_field_is_named_and_free_text_is_refused(env: OfflineServer, folder: Path) -> None:
    results = describe_many(folder, PROMPT, schema="caption, people int", show=False)
    with pytest.raises(InvalidRequestError, match="the schema has the fields caption, people"):
        results.score([1] * COUNT)
    assert results.score([1] * COUNT, field="people").accuracy == 1.0
    assert results.score(["1"] * COUNT, field="people").accuracy == 1.0  # a CSV's text
    with pytest.raises(InvalidRequestError, match="the schema has no field 'age'"):
        results.score([1] * COUNT, field="age")
    text = describe_many(folder, PROMPT, show=False)
    with pytest.raises(InvalidRequestError, match="only structured answers can be scored"):
        text.score(["x"] * COUNT)


def test_a_true_label_that_is_not_a_label_is_an_error(varied: OfflineServer, folder: Path) -> None:
    results = describe_many(folder, PROMPT, model=MODEL, labels=LABELS, show=False)
    wrong = truth(folder)
    wrong[4] = "horse"
    with pytest.raises(InvalidRequestError, match=r"the true answer 'horse' for .*a04\.png is not"):
        results.score(wrong)
    with pytest.raises(InvalidRequestError, match=r"truth has no answer for .*a00\.png"):
        results.score({"elsewhere.png": "cat"})


def test_the_plot_is_a_confusion_matrix_figure(varied: OfflineServer, folder: Path) -> None:
    results = describe_many(folder, PROMPT, model=MODEL, labels=LABELS, show=False)
    score = results.score(truth(folder))
    figure = score.plot(theme="dark")
    (ax,) = figure.axes
    assert ax.get_xlabel() == "answer given (images)" and ax.get_ylabel() == "true label (images)"
    assert [t.get_text() for t in ax.get_yticklabels()] == LABELS
    cells = sorted(int(t.get_text()) for t in ax.texts)
    assert sum(cells) == COUNT and len(cells) == len(LABELS) ** 2
    assert ax.title.get_color() == "#e6e6e6"
