"""compare(): several models over the same images, against the offline server whose models pick
labels by a rule the tests repeat (``offline_choice``): answers, agreement, accuracy, the table,
the shared run (interleaved, one budget, one stop), the cache per model, and each refusal."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas
import pytest
from matplotlib.figure import Figure
from PIL import Image

import reka_nb
from reka_nb import Comparison, InvalidRequestError, Results
from reka_nb.batch.comparison import SUMMARY_COLUMNS
from reka_nb.testing import OfflineServer, image_digest, offline_choice, reference_choice

ROOT = Path(__file__).resolve().parents[2]
COUNT = 12
LABELS = ["damaged", "intact", "unclear"]
PROMPT = "Is the product damaged?"
TWO = ["reka-core", "reka-edge"]


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (90, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "shots"
    out.mkdir()
    for i in range(COUNT):
        (out / f"img{i:02}.png").write_bytes(png(10 + i))
    return out


def paths(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def expected(model: str, folder: Path, prompt: str = PROMPT) -> list[str]:
    """The label the offline rule gives ``model`` for each image of ``folder``."""
    return [
        offline_choice(model, LABELS, [image_digest(p.read_bytes())], prompt) for p in paths(folder)
    ]


def truth_of(folder: Path, prompt: str = PROMPT) -> list[str]:
    return [reference_choice(LABELS, [image_digest(p.read_bytes())], prompt) for p in paths(folder)]


def sent(server: OfflineServer) -> list[tuple[str, str]]:
    """(model, image digest) of each chat request, in arrival order."""
    return [(r.body["model"], r.images[0]) for r in server.chat_requests()]


def test_labels_with_truth_answer_as_the_rule_says_and_are_scored(
    varied: OfflineServer, folder: Path
) -> None:
    truth = truth_of(folder)
    cmp = reka_nb.compare(
        folder, PROMPT, models=TWO, labels=LABELS, truth=truth, concurrency=1, show=False
    )
    assert isinstance(cmp, Comparison) and cmp.models == TWO and cmp.measure == "accuracy"
    digests = [image_digest(p.read_bytes()) for p in paths(folder)]
    # one run, image by image: image 1 to every model, then image 2...
    assert sent(varied) == [(m, d) for d in digests for m in TWO]
    summary = cmp.summary()
    assert list(summary.index) == TWO
    assert list(summary.columns) == [*SUMMARY_COLUMNS, "accuracy"]
    for model in TWO:
        results = cmp.results[model]
        assert isinstance(results, Results) and results.complete
        assert [r.index for r in results] == list(range(COUNT))
        assert [r.source for r in results] == [str(p) for p in paths(folder)]
        labels = [r.description.data["label"] for r in results]
        assert labels == expected(model, folder)
        right = sum(a == t for a, t in zip(labels, truth, strict=True))
        assert summary.loc[model, "accuracy"] == right / COUNT
        assert summary.loc[model, "answered"] == COUNT and summary.loc[model, "failed"] == 0
        assert summary.loc[model, "input_tokens"] == sum(
            r.description.usage.input_tokens for r in results
        )
        score = cmp.scores[model]
        assert (score.correct, score.answered, score.accuracy) == (right, COUNT, right / COUNT)
        pairs = Counter(zip(truth, labels, strict=True))
        matrix = score.confusion
        assert list(matrix.index) == LABELS and list(matrix.columns) == LABELS
        assert {(t, a): int(matrix.loc[t, a]) for t in LABELS for a in LABELS} == {
            (t, a): pairs[(t, a)] for t in LABELS for a in LABELS
        }
    core, edge = (expected(m, folder) for m in TWO)
    assert core != edge  # the models do disagree here
    page = cmp._repr_html_()
    wrong = sum(a != t for m in TWO for a, t in zip(expected(m, folder), truth, strict=True))
    assert page.count("✗ ") == wrong and page.count("✓ ") == 2 * COUNT - wrong
    assert page.count('class="reka-nb-differs"') == sum(
        a != b for a, b in zip(core, edge, strict=True)
    )
    assert page.count("<tr") == 1 + COUNT + 1 + len(TWO)  # heads, images, summary
    assert repr(cmp).startswith(f"<Comparison 2 models · {COUNT} images\n  reka-core: 12 answered")


def test_a_misspelt_model_fails_alone_and_is_asked_no_more_once_refused(
    env: OfflineServer, folder: Path
) -> None:
    """One of the models compared does not exist: its column fails with the server's 404,
    sent at most once per request in flight, and the other model answers every image."""
    cmp = reka_nb.compare(
        folder, PROMPT, models=["reka-core", "reka-cor"], concurrency=2, show=False
    )
    assert cmp.results["reka-core"].complete and len(cmp.results["reka-core"].errors) == 0
    failed = cmp.results["reka-cor"]
    assert len(failed.errors) == COUNT
    assert all(str(r.error).startswith("Unknown model 'reka-cor'") for r in failed)
    asked = Counter(model for model, _ in sent(env))
    assert asked["reka-core"] == COUNT and 1 <= asked["reka-cor"] <= 2
    assert repr(cmp).endswith(f"reka-cor: 0 answered · {COUNT} failed>")


def test_acompare_in_a_running_loop_gives_the_same_comparison(
    varied: OfflineServer, folder: Path
) -> None:
    import asyncio

    truth = truth_of(folder)

    async def main() -> Comparison:
        return await reka_nb.acompare(
            folder, PROMPT, models=TWO, labels=LABELS, truth=truth, cache=False, show=False
        )

    cmp = asyncio.run(main())
    assert isinstance(cmp, Comparison) and cmp.models == TWO
    for model in TWO:
        labels = [r.description.data["label"] for r in cmp.results[model]]
        assert labels == expected(model, folder)
        right = sum(a == t for a, t in zip(labels, truth, strict=True))
        assert cmp.scores[model].accuracy == right / COUNT
    assert len(varied.chat_requests()) == 2 * COUNT


def test_out_of_credits_keeps_the_comparison_so_far(env: OfflineServer, folder: Path) -> None:
    """A stop other than Ctrl-C carries the comparison too, each model's answers by image,
    not the run's mixed rows."""
    env.credits = 5
    with pytest.raises(reka_nb.RateLimitError) as caught:
        reka_nb.compare(folder, PROMPT, models=TWO, concurrency=1, cache=False, show=False)
    kept = caught.value.results  # type: ignore[attr-defined]
    assert isinstance(kept, Comparison) and kept.models == TWO
    assert [r.index for r in kept.results["reka-core"]] == [0, 1, 2]
    assert [r.index for r in kept.results["reka-edge"]] == [0, 1]
    assert all(r.ok for model in TWO for r in kept.results[model])


def test_without_truth_the_summary_has_agreement(varied: OfflineServer, folder: Path) -> None:
    cmp = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, show=False)
    core, edge = (expected(m, folder) for m in TWO)
    same = sum(a == b for a, b in zip(core, edge, strict=True)) / COUNT
    summary = cmp.summary()
    assert list(summary.columns) == [*SUMMARY_COLUMNS, "agreement"]
    assert summary["agreement"].tolist() == [same, same]
    assert cmp.scores == {} and cmp.measure == "agreement"
    assert [cmp.differs(i) for i in range(COUNT)] == [
        a != b for a, b in zip(core, edge, strict=True)
    ]
    assert len(cmp.plot().axes) == 1


def test_three_models_agreement_is_the_share_of_the_others_that_agree(
    varied: OfflineServer, folder: Path
) -> None:
    models = ["reka-core", "reka-flash", "reka-edge"]
    cmp = reka_nb.compare(folder, PROMPT, models=models, labels=LABELS, show=False)
    answers = {m: expected(m, folder) for m in models}
    for model in models:
        others = [m for m in models if m != model]
        shares = [sum(answers[o][i] == answers[model][i] for o in others) / 2 for i in range(COUNT)]
        assert cmp.agreement(model) == pytest.approx(sum(shares) / COUNT, abs=1e-12)


def test_long_form_and_records(varied: OfflineServer, folder: Path) -> None:
    truth = truth_of(folder)
    cmp = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=truth, show=False)
    frame = cmp.to_pandas()
    assert len(frame) == 2 * COUNT
    assert list(frame.columns[:3]) == ["image", "model", "label"]
    assert list(frame.columns[-2:]) == ["cost", "correct"]
    assert frame["model"].tolist() == TWO * COUNT
    assert frame["image"].tolist() == [str(p) for p in paths(folder) for _ in TWO]
    answers = [a for pair in zip(*(expected(m, folder) for m in TWO), strict=True) for a in pair]
    assert frame["label"].astype(str).tolist() == answers
    right = [a == t for a, t in zip(answers, [t for t in truth for _ in TWO], strict=True)]
    assert frame["correct"].tolist() == right
    assert isinstance(frame["label"].dtype, pandas.CategoricalDtype)
    records = cmp.records()
    assert [(r["image"], r["model"], r["label"], r["correct"]) for r in records] == list(
        zip(frame["image"], frame["model"], answers, right, strict=True)
    )


def test_free_text_is_side_by_side_without_agreement(env: OfflineServer, folder: Path) -> None:
    cmp = reka_nb.compare(paths(folder)[:2], "Describe.", models=TWO, show=False)
    assert cmp.measure is None and cmp.agreement("reka-core") is None
    assert list(cmp.summary().columns) == list(SUMMARY_COLUMNS)
    page = cmp._repr_html_()
    assert page.count("Model: reka-core.") == 2 and page.count("Model: reka-edge.") == 2
    assert "reka-nb-differs" not in page and "✗" not in page
    assert "agreement" not in page and "accuracy" not in page
    figure = cmp.plot(theme="dark")
    assert isinstance(figure, Figure) and figure.axes[0].get_ylabel() == "mean seconds (s)"


def test_a_schema_field_is_compared_and_scored(varied: OfflineServer, folder: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "caption": {"type": "string"},
            "state": {"type": "string", "enum": LABELS},
        },
        "required": ["caption", "state"],
    }
    truth = truth_of(folder)
    cmp = reka_nb.compare(
        folder, PROMPT, models=TWO, schema=schema, truth=truth, field="state", show=False
    )
    for model in TWO:
        assert [d["state"] for d in cmp.results[model].data] == expected(model, folder)
        right = sum(a == t for a, t in zip(expected(model, folder), truth, strict=True))
        assert cmp.accuracy(model) == right / COUNT
    # without field=, all the fields together: the caption is the same for both models
    whole = reka_nb.compare(folder, PROMPT, models=TWO, schema=schema, show=False)
    core, edge = (expected(m, folder) for m in TWO)
    assert [whole.differs(i) for i in range(COUNT)] == [
        a != b for a, b in zip(core, edge, strict=True)
    ]


def test_adding_a_model_asks_only_that_model(varied: OfflineServer, folder: Path) -> None:
    reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, show=False)
    assert len(varied.chat_requests()) == 2 * COUNT
    three = [*TWO, "reka-flash"]
    cmp = reka_nb.compare(folder, PROMPT, models=three, labels=LABELS, show=False)
    asked = varied.chat_requests()[2 * COUNT :]
    assert [r.body["model"] for r in asked] == ["reka-flash"] * COUNT
    assert [cmp.results[m].cached_count for m in three] == [COUNT, COUNT, 0]
    assert [d["label"] for d in cmp.results["reka-flash"].data] == expected("reka-flash", folder)
    assert "(cached)" in cmp._repr_html_()


def test_the_budget_holds_for_all_models_and_stops_image_by_image(
    varied: OfflineServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # prices from GET /models
    cmp = reka_nb.compare(
        folder,
        PROMPT,
        models=["reka-edge", "reka-flash"],
        labels=LABELS,
        max_cost=0.0005,
        max_tokens=50,
        concurrency=1,
        cache=False,
        show=False,
    )
    asked = len(varied.chat_requests())
    assert 2 < asked < 2 * COUNT
    assert cmp.stopped is not None and cmp.stopped.startswith("stopped before max_cost $0.0005")
    counts = [len(cmp.results[m]) for m in ("reka-edge", "reka-flash")]
    assert counts == [(asked + 1) // 2, asked // 2]  # image by image: every model, in turn
    for model in ("reka-edge", "reka-flash"):
        results = cmp.results[model]
        assert [r.index for r in results] == list(range(len(results)))
        assert results.stopped == cmp.stopped and not results.complete
    spent = sum(cmp.summary()["cost"])
    assert spent <= 0.0005
    assert cmp.caption().endswith(cmp.stopped)


_STOP_SCRIPT = """
import json, sys
import reka_nb
try:
    reka_nb.compare(sys.argv[1], "Damaged?", models=sys.argv[2].split(","),
                    labels=["a", "b"], concurrency=3, show=False)
except KeyboardInterrupt as exc:
    cmp = exc.results
    print(json.dumps({m: [r.index for r in cmp.results[m] if r.ok] for m in cmp.models}))
    sys.exit(0)
print("not stopped")
"""


def test_a_stop_keeps_answers_from_every_model_for_the_same_images(
    env: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    env.latency = 0.5
    models = ["reka-core", "reka-flash", "reka-edge"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    environ.update(
        REKA_BASE_URL=env.base_url,
        REKA_API_KEY=env.api_key,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        REKA_NB_MODEL_INFO="off",
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _STOP_SCRIPT, str(folder), ",".join(models)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    # The questions go image by image, each image to every model: question 3 * image + m.
    # The first goes alone (it learns whether the model takes response_format), then three
    # at a time. Once question 12 has arrived, all three workers have kept their answers to
    # questions 7-9 and moved on: the stop comes while 10-12 wait out the latency.
    deadline = time.monotonic() + 60
    while env.chats_arrived < 13:
        assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    kept = json.loads(out)
    for model in models:
        assert kept[model] == list(range(len(kept[model])))  # the same first images
    asked = sorted(3 * image + models.index(m) for m in models for image in kept[m])
    assert asked[:10] == list(range(10)), kept  # every answer received before the stop
    assert set(asked[10:]) <= {10, 11, 12}, kept  # nothing asked after it
    assert env.wait_idle()  # the requests cut off are logged now, not in the next test


def test_a_model_that_takes_no_images_is_refused_by_name(
    env: OfflineServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    with pytest.raises(InvalidRequestError, match="model 'reka-flash-3' does not take image"):
        reka_nb.compare(folder, PROMPT, models=["reka-core", "reka-flash-3"], show=False)
    assert env.chat_requests() == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"models": ["reka-core"]}, "compare needs two or more models, not 1"),
        ({"models": ["reka-core", "reka-core"]}, "models names 'reka-core' twice"),
        ({"models": 3}, "models must be a list of model names, not int"),
        ({"models": ["reka-core", ""]}, "models has an empty model name"),
        (
            {"labels": LABELS, "truth": ["intact"] * 3},
            f"truth has 3 answers and there are {COUNT} images",
        ),
        ({"labels": LABELS, "truth": {"img00.png": "intact"}}, "truth has no answer for "),
        (
            {"labels": LABELS, "truth": ["intact"] * (COUNT - 1) + [None]},
            "truth has no answer for ",
        ),
        (
            {"labels": LABELS, "truth": ["intact"] * (COUNT - 1) + ["broken"]},
            "the true answer 'broken' for ",
        ),
        ({"truth": ["intact"] * COUNT}, "only structured answers can be scored"),
        (
            {"schema": "caption, state", "truth": ["intact"] * COUNT},
            "the schema has the fields caption, state: name the one to score",
        ),
        ({"labels": LABELS, "truth": 7}, "truth must be a list"),
        ({"labels": LABELS, "truth": "no-such.csv"}, "cannot read the truth CSV no-such.csv"),
    ],
)
def test_each_mistake_is_refused_before_anything_is_sent(
    env: OfflineServer, folder: Path, options: dict[str, Any], message: str
) -> None:
    options = {"models": TWO, **options}
    with pytest.raises(InvalidRequestError) as info:
        reka_nb.compare(folder, PROMPT, show=False, **options)
    assert message in str(info.value)
    assert env.requests == []


def test_truth_from_a_csv_a_dict_and_a_series(
    varied: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    truth = truth_of(folder)
    names = [p.name for p in paths(folder)]
    csv_path = _write(
        tmp_path / "labels.csv",
        "image,label\n"
        + "".join(f"{n},{t}\n" for n, t in reversed(list(zip(names, truth, strict=True)))),
    )
    by_csv = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=csv_path, show=False)
    by_dict = reka_nb.compare(
        folder,
        PROMPT,
        models=TWO,
        labels=LABELS,
        truth=dict(zip(names, truth, strict=True)),
        show=False,
    )
    series = pandas.Series(truth[::-1], index=[str(p) for p in paths(folder)][::-1])
    by_series = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=series, show=False)
    by_position = reka_nb.compare(
        folder, PROMPT, models=TWO, labels=LABELS, truth=pandas.Series(truth), show=False
    )
    expected_truth = dict(enumerate(truth))
    for cmp in (by_csv, by_dict, by_series, by_position):
        assert cmp.truth == expected_truth
    columns = _write(tmp_path / "bad.csv", "file,answer\na.png,intact\n")
    with pytest.raises(InvalidRequestError, match="needs the columns image,label; it has file"):
        reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=columns, show=False)
    short = _write(tmp_path / "short.csv", "image,label\nimg00.png,intact\n")
    with pytest.raises(InvalidRequestError, match=r"short\.csv has no answer for .*img01\.png"):
        reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=short, show=False)


def test_the_plots_are_figures_with_a_confusion_matrix_per_model(
    varied: OfflineServer, folder: Path
) -> None:
    truth = truth_of(folder)
    cmp = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, truth=truth, show=False)
    for theme, face in (
        ("light", (1.0, 1.0, 1.0, 1.0)),
        ("dark", (17 / 255, 17 / 255, 17 / 255, 1.0)),
    ):
        figure = cmp.plot(theme=theme)
        assert isinstance(figure, Figure) and len(figure.axes) == 3
        assert figure.get_facecolor() == pytest.approx(face)
        first = figure.axes[0]
        assert first.get_xlabel() == "cost of the answers (US dollars)"
        assert first.get_ylabel() == "accuracy (fraction 0-1)"
        assert [a.get_title() for a in figure.axes[1:]] == [
            f"{m}: accuracy {cmp.accuracy(m):.0%}" for m in TWO
        ]
    auto = cmp.plot()
    assert auto.get_facecolor()[3] == 0.0  # transparent: the notebook's own background
    with pytest.raises(InvalidRequestError, match="theme must be one of auto, light, dark"):
        cmp.plot(theme="blue")


def test_answers_from_the_cache_cost_what_they_cost_when_asked(
    varied: OfflineServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # prices from GET /models
    first = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, show=False)
    again = reka_nb.compare(folder, PROMPT, models=TWO, labels=LABELS, show=False)
    assert [again.results[m].cached_count for m in TWO] == [COUNT, COUNT]
    costs = first.summary()["cost"].tolist()
    assert all(c > 0 for c in costs) and again.summary()["cost"].tolist() == costs
    assert costs == [float(first.results[m].cost) for m in TWO]
    assert again.to_pandas()["cost"].tolist() == [0.0] * 2 * COUNT  # nothing spent this time
    assert math.isnan(again.summary()["mean_seconds"].iloc[0])  # nothing asked: no time


def test_a_models_failed_rows_are_asked_again_of_that_model_only(
    varied: OfflineServer, folder: Path
) -> None:
    from reka_nb.testing import Fault

    varied.queue(Fault.status(400))  # the first request: image 1, reka-core
    cmp = reka_nb.compare(
        paths(folder)[:3], PROMPT, models=TWO, labels=LABELS, concurrency=1, show=False
    )
    assert [len(cmp.results[m].errors) for m in TWO] == [1, 0]
    assert cmp.summary()["failed"].tolist() == [1, 0]
    assert "reka-nb-error" in cmp._repr_html_()
    before = len(varied.chat_requests())
    again = cmp.results["reka-core"].retry_failed()
    asked = varied.chat_requests()[before:]
    assert [(r.body["model"], r.images[0]) for r in asked] == [
        ("reka-core", image_digest(paths(folder)[0].read_bytes()))
    ]
    assert again.errors == [] and [r.index for r in again] == [0, 1, 2]
    assert [d["label"] for d in again.data] == expected("reka-core", folder)[:3]
