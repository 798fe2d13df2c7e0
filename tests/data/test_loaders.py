import json
import os
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from rlreason.config import ArithConfig, DataConfig
from rlreason.data import DataError, load_questions

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("RLREASON_DATA", ROOT.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")


@pytest.fixture(autouse=True)
def no_probe(monkeypatch):
    """Where the hub is read here, `datasets` is mocked: the Hub's reachability probe stays home too
    (tests/data/test_hub.py tests it)."""
    monkeypatch.setattr("rlreason.data.hub.check_reachable", lambda *args: None)


def data_cfg(name: str, **overrides):
    """The composed conf/data/<name>.yaml, as Hydra would hand it over (a DictConfig)."""
    cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(ROOT / "conf" / "data" / f"{name}.yaml"))
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- real data ---


@needs_data
def test_gsm8k_real():
    train, test = load_questions(data_cfg("gsm8k", train_path=str(DATA / "gsm8k_train.jsonl"),
                                          test_path=str(DATA / "gsm8k_test.jsonl")))
    assert (len(train), len(test)) == (7473, 1319)
    q = test[0]
    assert q.answer == "18" and q.source == "gsm8k" and q.problem.startswith("Janet")
    assert q.solution.endswith("#### 18") and "<<" not in q.solution and "9 * 2 = $18" in q.solution
    assert all("," not in q.answer and "<<" not in q.solution for q in train + test)
    assert len({q.id for q in train}) == len(train) and len({q.id for q in test}) == len(test)
    again, _ = load_questions(data_cfg("gsm8k", train_path=str(DATA / "gsm8k_train.jsonl"),
                                       test_path=str(DATA / "gsm8k_test.jsonl"), max_train=5))
    assert [q.id for q in again] == [q.id for q in train[:5]]  # stable ids, prefix subset


@needs_data
def test_math500_real(monkeypatch):
    # MATH train comes from the hub by default; only the local MATH-500 test split is real here.
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda hub_id: ["default"])
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(
        [{"problem": "1+1?", "solution": "It is $\\boxed{2}$.", "level": "Level 1", "type": "Algebra"}]))
    train, test = load_questions(data_cfg("math", test_path=str(DATA / "math500_test.jsonl")))
    assert len(train) == 1 and len(test) == 500
    q = test[0]
    assert q.answer == "\\left( 3, \\frac{\\pi}{2} \\right)" and q.level == 2
    assert q.meta["subject"] == "Precalculus" and q.source == "math"
    assert all(q.level in range(1, 6) and q.answer for q in test)
    assert len({q.id for q in test}) == 500


# --- malformed input ---


GOOD_GSM8K = {"question": "What is 1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}


@pytest.mark.parametrize("rows, line, message", [
    ([GOOD_GSM8K, "{not json"], 2, "bad JSON"),
    ([GOOD_GSM8K, GOOD_GSM8K, {"question": "Q?"}], 3, "missing field 'answer'"),
    ([{"question": 7, "answer": "#### 7"}], 1, "field 'question' should be a string, got int"),
    ([GOOD_GSM8K, {"question": "Q?", "answer": "no final line"}], 2, "no '#### N'"),
    ([GOOD_GSM8K, "[1, 2]"], 2, "expected a JSON object"),
    ([{"question": "Q?", "answer": "x\n####  "}], 1, "nothing after '####'"),
])
def test_malformed_gsm8k_names_file_and_line(tmp_path, rows, line, message):
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    good = write_jsonl(tmp_path / "good.jsonl", [GOOD_GSM8K])
    with pytest.raises(DataError) as e:
        load_questions(data_cfg("gsm8k", train_path=str(bad), test_path=str(good)))
    assert f"{bad}:{line}:" in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("row, message", [
    ({"problem": "P", "solution": "no box here"}, "no 'answer' field and no \\boxed{...}"),
    ({"problem": "P", "solution": "\\boxed{1}", "level": [3]}, "field 'level' should be an int"),
    ({"problem": "P", "solution": "\\boxed{1}", "answer": 1}, "field 'answer' should be a string"),
    ({"problem": "", "solution": "\\boxed{1}"}, "field 'problem' is empty"),
])
def test_malformed_math_names_file_and_line(tmp_path, row, message):
    good = {"problem": "P", "solution": "\\boxed{1}"}
    bad = write_jsonl(tmp_path / "m.jsonl", [good, row])
    with pytest.raises(DataError) as e:
        load_questions(data_cfg("math", train_path=str(bad), test_path=str(bad)))
    assert f"{bad}:2:" in str(e.value) and message in str(e.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=f"{empty}: empty file"):
        load_questions(data_cfg("gsm8k", train_path=str(empty), test_path=str(empty)))
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        load_questions(data_cfg("gsm8k", train_path=str(tmp_path / "nope.jsonl"), test_path=str(empty)))


def test_math_parquet_hendrycks_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": "Find $x$.", "solution": "So $x=\\boxed{\\frac{1}{2}}$, not \\boxed{1}... \\boxed{{3}}",
             "level": "Level 3", "type": "Algebra"},
            {"problem": "Odd level.", "solution": "$\\boxed{5}$", "level": "Level ?", "type": "Geometry"}]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    train, _ = load_questions(data_cfg("math", train_path=str(path), test_path=str(path)))
    assert [q.answer for q in train] == ["{3}", "5"]  # the last box, balanced braces
    assert [q.level for q in train] == [3, None] and train[0].meta == {"subject": "Algebra"}


# --- the hub path (mocked: no network in tests) ---


def test_hub_arguments(monkeypatch):
    calls = []
    gsm = [{"question": f"Q{i}?", "answer": f"step\n#### {i},000"} for i in range(4)]

    def fake_load(hub_id, config, split):
        calls.append((hub_id, config, split))
        if hub_id == "openai/gsm8k":
            return datasets.Dataset.from_list(gsm)
        return datasets.Dataset.from_list([{"problem": f"{config} {split}", "solution": "\\boxed{1}",
                                            "unique_id": f"{config}/{split}.json", "level": 1}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(datasets, "get_dataset_config_names",
                        lambda hub_id: ["algebra", "geometry"] if "hendrycks" in hub_id else ["default"])
    train, test = load_questions(data_cfg("gsm8k", source="hub", max_test=2))
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert len(train) == 4 and len(test) == 2 and train[1].answer == "1000"

    calls.clear()
    train, test = load_questions(data_cfg("math", test_path=None))
    assert calls == [("EleutherAI/hendrycks_math", "algebra", "train"),
                     ("EleutherAI/hendrycks_math", "geometry", "train"), ("HuggingFaceH4/MATH-500", None, "test")]
    assert [q.id for q in train] == ["math-algebra/train.json", "math-geometry/train.json"]
    assert test[0].problem == "None test"


@needs_data
def test_ids_same_from_hub_and_local(monkeypatch):
    local = [json.loads(line) for line in open(DATA / "gsm8k_test.jsonl")][:3]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(local))
    hub, _ = load_questions(data_cfg("gsm8k", source="hub", max_train=3))
    _, files = load_questions(data_cfg("gsm8k", test_path=str(DATA / "gsm8k_test.jsonl"), max_test=3))
    assert hub == files


# --- arith ---


def test_arith_splits_deterministic_and_disjoint():
    cfg = data_cfg("arith", max_test=50)
    cfg.arith = OmegaConf.structured(ArithConfig(n_train=300, n_test=100, seed=3))
    train, test = load_questions(cfg)
    assert len(train) == 300 and len(test) == 50
    assert not {q.id for q in train} & {q.id for q in test}
    assert load_questions(cfg) == (train, test)
    cfg.arith.seed = 4
    assert load_questions(cfg)[0] != train
    assert all(q.solution.endswith(f"#### {q.answer}") for q in train)


def test_dataclass_config_works_too(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [GOOD_GSM8K])
    train, test = load_questions(DataConfig(name="gsm8k", train_path=str(path), test_path=str(path)))
    assert train == test and train[0].answer == "2" and train[0].solution == "1+1=2\n#### 2"


def test_arith_invertible_steps_make_one_wrong_step_change_the_answer():
    """Why invertible=True: with x0/x5/x-even a wrong intermediate value is often erased, so a wrong
    chain ends right by luck and outcome reward praises it. With unit multipliers it cannot."""
    from rlreason.data.arith import ArithSpec, apply, generate_splits, units

    assert units(10) == [1, 3, 7, 9]
    train, _ = generate_splits(2000, 0, ArithSpec(), seed=0)
    lucky = 0
    for q in train:
        ops = list(q.problem[4::3])  # Q:3a+5b*3c-7 -> operands at 2, 5, 8, ...; operators at 4, 7, ...
        operands = [int(c) for c in q.problem[2::3]]
        assert all(b in (1, 3, 7, 9) for op, b in zip(ops, operands[1:]) if op == "*")
        for wrong_step in range(len(ops)):  # replay the chain with one step's result off by one
            acc = operands[0]
            for i, (op, b) in enumerate(zip(ops, operands[1:])):
                acc = apply(op, acc, b, 10)
                if i == wrong_step:
                    acc = (acc + 1) % 10
            lucky += str(acc) == q.answer
    assert lucky == 0
    old, _ = generate_splits(2000, 0, ArithSpec(invertible=False), seed=0)
    assert any("*0" in q.problem or "*5" in q.problem for q in old)
