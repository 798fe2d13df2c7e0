"""reward.fn: a user's reward function through the real worker pool (spawned processes, hard deadlines)."""

import math
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlreason.data.record import Question
from rlreason.reward import FunctionGrader, RewardFnError, make_grader
from rlreason.reward.function import load
from rlreason.reward.meter import GradeMeter, RewardFailed
from tests.reward.test_pool import ROOT, alive

USER = textwrap.dedent('''
    import math, time

    CALLS = []

    def target(response, record):
        """Reads a field that is neither problem nor answer."""
        return float(response.strip() == str(record["target"]))

    def parts(response, record):
        return {"correct": float(response.strip() == str(record["target"])), "format": float(response.isdigit())}

    def graded(response, record):
        return len(response) / 10  # success only when >= reward.success_threshold

    def hang(response, record):
        if response == "hang":
            time.sleep(600)
        return 1.0

    def boom(response, record):
        if response == "boom":
            raise ZeroDivisionError("the user's own bug")
        return 1.0

    def nan(response, record):
        return {"nan": math.nan, "str": "1.0", "none": None, "inf": {"x": math.inf}}.get(response, 0.5)

    def unpicklable(response, record):
        return (x for x in range(3))

    def many(responses, records):
        return [float(r.strip() == str(rec["target"])) for r, rec in zip(responses, records)]

    def short(responses, records):
        return [1.0]

    def counted(response, record):
        import os
        with open(record["log"], "a") as f:
            f.write(response + "\\n")
        return 1.0

    def one_arg(response):
        return 1.0

    NOT_A_FUNCTION = 3
''')


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_reward.py"
    path.write_text(USER)
    return path


def q(target=7, **extra) -> Question:
    return Question(id=f"q{target}", problem="p", answer="", record={"target": target, **extra})


def grader(user, name, **kw) -> FunctionGrader:
    return FunctionGrader(f"{user}:{name}", timeout_s=kw.pop("timeout_s", 2.0), workers=2, **kw)


def test_reads_a_record_field(user):
    with grader(user, "target") as g:
        v = g.grade(["7", "8", " 7\n", "7"], [q(7), q(7), q(7), q(8)], [False, False, False, False])
    assert [x.reward for x in v] == [1.0, 0.0, 1.0, 0.0]
    assert [x.reason for x in v] == ["correct", "wrong", "correct", "wrong"]
    assert [x.success for x in v] == [True, False, True, False]


def test_components_weights_and_success(user):
    with grader(user, "parts", weights={"format": 0.25}) as g:
        v = g.grade(["7", "8", "x"], [q(7)] * 3)
    assert [x.components for x in v] == [{"correct": 1.0, "format": 1.0}, {"correct": 0.0, "format": 1.0},
                                         {"correct": 0.0, "format": 0.0}]
    assert [x.reward for x in v] == [1.25, 0.25, 0.0]
    assert [x.success for x in v] == [True, False, False]  # success is `correct`, not the total


def test_success_threshold_without_a_correct_component(user):
    with grader(user, "graded", success_threshold=0.5) as g:
        v = g.grade(["abc", "abcde", "abcdefgh"], [q()] * 3)
    assert [x.reward for x in v] == pytest.approx([0.3, 0.5, 0.8])
    assert [x.success for x in v] == [False, True, True]


def test_truncated_responses_are_not_sent(user, tmp_path):
    log = tmp_path / "calls.txt"
    with grader(user, "counted") as g:
        v = g.grade(["a", "b"], [q(log=str(log))] * 2, [True, False])
    assert [x.reason for x in v] == ["truncated", "correct"] and log.read_text() == "b\n"


def test_each_distinct_response_is_graded_once(user, tmp_path):
    log = tmp_path / "calls.txt"
    question = q(log=str(log))
    other = Question(id="other", problem="p", answer="", record={"target": 1, "log": str(log)})
    with grader(user, "counted") as g:
        v = g.grade(["a", "a", "b", "a", "a"], [question, question, question, question, other])
    assert len(v) == 5 and all(x.reward == 1.0 for x in v)
    assert sorted(log.read_text().split()) == ["a", "a", "b"]  # (question, a), (question, b), (other, a)
    assert g.calls == 3


def test_a_hang_is_a_timeout_within_the_deadline(user):
    with grader(user, "hang", timeout_s=1.0) as g:
        g.grade(["warm"], [q()])  # workers up, outside the timing
        start = time.perf_counter()
        v = g.grade(["hang", "fine", "fine too"], [q()] * 3)
        elapsed = time.perf_counter() - start
        again = g.grade(["fine"], [q()])  # the hung worker was replaced
    assert [x.reason for x in v] == ["timeout", "correct", "correct"] and v[0].reward == 0.0
    assert "reward.timeout_s=1.0" in v[0].detail
    assert elapsed < 1.0 + 3.0, elapsed  # the deadline, plus a fresh worker's start at most
    assert again[0].reason == "correct"
    assert not [p for p in mp.active_children() if p.name == "rlreason-reward"]  # closed: none left behind


def test_an_exception_is_an_error_with_its_traceback(user):
    with grader(user, "boom") as g:
        v = g.grade(["boom", "ok"], [q()] * 2)
    assert [x.reason for x in v] == ["error", "correct"] and v[0].reward == 0.0
    assert "ZeroDivisionError: the user's own bug" in v[0].detail and "my_reward.py" in v[0].detail


@pytest.mark.parametrize("response", ["nan", "str", "none", "inf"])
def test_a_value_that_is_not_a_finite_number_is_an_error(user, response):
    with grader(user, "nan") as g:
        (v,) = g.grade([response], [q()])
    assert v.reason == "error" and v.reward == 0.0 and "returned" in v.detail


def test_an_unpicklable_result_is_an_error_not_a_crash(user):
    with grader(user, "unpicklable") as g:
        (v,) = g.grade(["x"], [q()])
        (w,) = g.grade(["y"], [q()])
    assert v.reason == w.reason == "error" and "(generator): expected a finite float" in v.detail


def test_batched(user):
    with grader(user, "many", batched=True, batch_size=2) as g:
        v = g.grade(["7", "1", "7", "7", "2"], [q(7), q(7), q(8), q(7), q(7)])
    assert [x.reward for x in v] == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_batched_wrong_length_is_an_error(user):
    with grader(user, "short", batched=True) as g:
        v = g.grade(["1", "2"], [q()] * 2)
    assert [x.reason for x in v] == ["error", "error"] and "expected a list of 2" in v[0].detail


@pytest.mark.parametrize(("name", "problem"), [
    ("missing", "has no 'missing'"),
    ("NOT_A_FUNCTION", "is a int, not a function"),
    ("one_arg", "cannot take (response: str, record: dict)"),
])
def test_unusable_functions_are_refused_with_the_file_named(user, name, problem):
    with pytest.raises(RewardFnError) as info:
        load(f"{user}:{name}")
    assert str(user) in str(info.value) and problem in str(info.value)


def test_unimportable_files_and_modules(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    exits = tmp_path / "exits.py"
    exits.write_text("raise SystemExit(3)\n")
    for spec, problem in [(f"{bad}:f", "ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
                          (f"{exits}:f", "SystemExit"), (f"{tmp_path}/nope.py:f", "no such file"),
                          ("not_a_package.mod:f", "module not_a_package.mod failed to import"),
                          ("no_colon.py", "expected PATH.py:NAME")]:
        with pytest.raises(RewardFnError) as info:
            load(spec)
        assert problem in str(info.value), (spec, str(info.value))


def test_a_module_path_works(user, monkeypatch):
    monkeypatch.syspath_prepend(str(user.parent))
    with FunctionGrader("my_reward:target", timeout_s=5.0, workers=1) as g:
        assert g.grade(["7"], [q(7)])[0].reward == 1.0  # the spawned worker finds the module too


def test_make_grader_picks_the_function(user):
    from rlreason.config import RewardConfig

    g = make_grader(RewardConfig(fn=f"{user}:target"), "fn")
    assert isinstance(g, FunctionGrader)
    g.close()


def test_meter_counts_failures_and_stops_when_everything_fails(user):
    shown = []
    meter = GradeMeter(grader(user, "boom"), say=shown.append)
    meter.grade(["boom", "ok", "boom"], [q()] * 3)
    meter.check()  # not all failed
    assert meter.take() == {"reward/timeout": 0.0, "reward/error": 2.0}
    meter.grade(["boom"], [q()])
    assert len(shown) == 1 and "ZeroDivisionError" in shown[0]  # the first traceback, once
    with pytest.raises(RewardFailed) as info:
        meter.check()
    assert "ZeroDivisionError: the user's own bug" in str(info.value)
    meter.close()


def test_builtin_grader_takes_questions_too():
    with make_grader(type("R", (), {"fn": None, "timeout_s": 5.0, "workers": 1})(), "arith") as g:
        v = g.grade(["#### 7", "#### 8"], [Question("a", "p", "7"), "7"])
    assert [x.reason for x in v] == ["correct", "wrong"] and math.isclose(v[0].reward, 1.0)


def test_check_imports_the_module_in_another_process_under_a_deadline(user, tmp_path):
    from rlreason.reward.function import check

    marker = tmp_path / "imported_by.txt"
    spy = tmp_path / "spy.py"
    spy.write_text(f"import os\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ndef f(response, record):\n"
                   "    return 1.0\n")
    check(f"{spy}:f")
    assert marker.read_text() != str(os.getpid())  # its top-level code never ran in this process
    with pytest.raises(RewardFnError, match="has no 'missing'"):
        check(f"{user}:missing")
    hangs = tmp_path / "hangs.py"
    hangs.write_text("import time\ntime.sleep(600)\n")
    start = time.perf_counter()
    late = r"importing .*hangs.py:f did not finish within reward.startup_timeout_s=2 s"
    with pytest.raises(RewardFnError, match=late):
        check(f"{hangs}:f", timeout_s=2.0)
    assert time.perf_counter() - start < 30
    dies = tmp_path / "dies.py"
    dies.write_text("import os\nos._exit(7)\n")
    with pytest.raises(RewardFnError, match=r"died \(exit code 7\)"):
        check(f"{dies}:f")


CLASSES = textwrap.dedent('''
    import dataclasses, enum

    class Score(float):
        pass

    class Flag(enum.IntEnum):
        YES = 1

    class Colour(enum.Enum):
        RED = 1.0

    @dataclasses.dataclass
    class Result:
        value: float

    class Parts(dict):
        pass

    class Name(str):
        pass

    def score(response, record):
        return {"float subclass": Score(1.0), "int enum": Flag.YES, "enum": Colour.RED, "dataclass": Result(1.0),
                "dict subclass": Parts({Name("correct"): Score(1.0), "format": Score(0.5)}), "huge": 10**400}[response]

    def scores(responses, records):
        return [Score(0.5) for _ in responses]
''')


@pytest.fixture
def classes(tmp_path):
    """A reward file whose values are instances of its own classes. Never imported in this process: the
    trainer never imports it either (the workers do, under a private module name)."""
    path = tmp_path / "own_classes.py"
    path.write_text(CLASSES)
    return path


def test_values_of_the_users_own_classes_are_made_plain_or_are_an_error(classes):
    responses = ["float subclass", "int enum", "dict subclass", "enum", "dataclass", "huge"]
    with grader(classes, "score") as g:
        v = g.grade(responses, [q()] * len(responses))
    assert [x.reason for x in v] == ["correct", "correct", "correct", "error", "error", "error"]
    assert [x.reward for x in v] == [1.0, 1.0, 1.5, 0.0, 0.0, 0.0]
    assert type(v[0].reward) is float and v[2].components == {"correct": 1.0, "format": 0.5}
    assert all(type(k) is str and type(x) is float for k, x in v[2].components.items())
    assert "returned <Colour.RED: 1.0> (Colour): expected a finite float or a dict of floats" in v[3].detail
    assert "returned Result(value=1.0) (Result): expected a finite float" in v[4].detail
    assert "(int): expected a finite float" in v[5].detail  # past float's range: not a crash either
    with grader(classes, "scores", batched=True) as g:
        assert [(x.reason, x.reward) for x in g.grade(["a", "b"], [q()] * 2)] == [("wrong", 0.5)] * 2


def test_a_module_that_hangs_at_import_is_an_error_within_the_startup_deadline(tmp_path):
    """The import check before compute catches this; a module that hangs only in the grading workers
    (on a machine, at a time) must still end the run with its reason, not hang it."""
    hangs = tmp_path / "hangs_in_workers.py"
    hangs.write_text("import time\ntime.sleep(600)\ndef f(response, record):\n    return 1.0\n")
    cfg = SimpleNamespace(fn=f"{hangs}:f", weights={}, success_threshold=1.0, timeout_s=1.0, workers=2,
                          batched=False, batch_size=64, startup_timeout_s=1.0)
    meter = GradeMeter(make_grader(cfg, "fn"), say=lambda text: None)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", meter.grade(["a", "b"], [q()] * 2)), daemon=True)
    start = time.perf_counter()
    t.start()
    t.join(60)
    assert not t.is_alive(), "grading waited on a worker that never finished starting"
    assert time.perf_counter() - start < 3 * 1.0 + 15
    assert [x.reason for x in out["v"]] == ["error", "error"]
    assert f"importing {hangs}:f did not finish within reward.startup_timeout_s=1 s" in out["v"][0].detail
    with pytest.raises(RewardFailed, match="reward.startup_timeout_s=1 s"):
        meter.check()
    meter.close()
    assert not [p for p in mp.active_children() if p.name == "rlreason-reward"]


def test_the_import_check_dies_with_a_killed_trainer(tmp_path):
    """A module hanging at import in the check's process must not outlive the trainer killed meanwhile."""
    hangs = tmp_path / "hangs.py"
    hangs.write_text("import time\ntime.sleep(600)\n")
    code = f"from rlreason.reward.function import check\ncheck({f'{hangs}:f'!r}, timeout_s=600)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline, found = time.monotonic() + 60, []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            kids = [int(k) for t in Path(f"/proc/{proc.pid}/task").iterdir()
                    for k in (t / "children").read_text().split()]
            found = [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert found, "the check's process never started"
        time.sleep(1.0)  # inside the import
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while alive(found[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(found[0]), "the import check's process outlived the killed trainer"
