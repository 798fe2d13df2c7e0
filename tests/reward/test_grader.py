import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from rlreason.reward import Grader, Verdict
from rlreason.reward.grader import as_number

# sympy tries to evaluate this tower exactly, inside C big-int code that no signal interrupts: it runs
# for far longer than any deadline (minutes at least; measured > 10 s).
HANG = "\\boxed{9^{9^{9^{9^{9}}}}}"
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def grader():
    with Grader("math", timeout_s=TIMEOUT_S, workers=2) as g:
        g.grade(["\\boxed{\\frac{1}{2}}"] * 2, ["1/2", "0.5"])  # start the workers outside any timing
        yield g


def workers() -> list:
    return [p for p in mp.active_children() if p.name == "rlreason-grader"]


def reasons(verdicts: list[Verdict]) -> list[str]:
    return [v.reason for v in verdicts]


def test_as_number():
    assert as_number("$1,234.50") == as_number("1234.5") and as_number("\\$ 7") == 7
    assert as_number("-3") == -3 and as_number("5.") == 5
    assert as_number("\\frac{1}{2}") is None and as_number("1e5") is None and as_number("") is None


@pytest.mark.parametrize("task", ["arith", "gsm8k"])
def test_numeric_tasks_fast_path(task):
    with Grader(task) as g:
        got = g.grade(["3a+5=8\n#### 8", "#### 1,000", "#### 7", "I don't know", "#### 8"],
                      ["8", "1000", "8", "8", "8"], [False, False, False, False, True])
        assert reasons(got) == ["correct", "correct", "wrong", "no_answer", "truncated"]
        assert [v.reward for v in got] == [1.0, 1.0, 0.0, 0.0, 0.0]
        assert got[1].extracted == "1,000" and got[3].extracted is None
        start = time.perf_counter()
        many = g.grade([f"x\n#### {i % 10}" for i in range(5000)], [str(i % 7) for i in range(5000)])
        elapsed = time.perf_counter() - start
        assert g._pool._workers == []  # plain numbers never start a math-verify process
    assert sum(v.reward for v in many) == sum(i % 10 == i % 7 for i in range(5000))
    print(f"{task}: 5000 numeric grades in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0


def test_arith_never_needs_math_verify():
    with Grader("arith") as g:
        assert reasons(g.grade(["#### 9a", "#### \\frac{8}{1}"], ["8", "8"])) == ["wrong", "wrong"]
        assert g._pool._workers == []


def test_hash_checker_reads_only_the_hash_line():
    """reward.checker=hash: `#### N` only (no \\boxed, no "the answer is"), numbers equal as numbers,
    anything else as stripped strings, never math-verify."""
    with Grader("hash") as g:
        got = g.grade(["work\n#### 1,000", "#### 0.50", "\\boxed{7}", "The answer is 7.", "#### yes ", "#### 1/2",
                       "#### 7"],
                      ["1000", "0.5", "7", "7", "yes", "0.5", "7"], [False] * 6 + [True])
        assert reasons(got) == ["correct", "correct", "no_answer", "no_answer", "correct", "wrong", "truncated"]
        assert g._pool._workers == []


def test_exact_checker_compares_the_whole_response():
    with Grader("exact") as g:
        got = g.grade(["  Paris\n", "paris", "It is Paris", "42", "", "Paris"], ["Paris", "Paris", "Paris", " 42 ",
                                                                               "x", "Paris"],
                      [False] * 5 + [True])
        assert reasons(got) == ["correct", "wrong", "wrong", "correct", "no_answer", "truncated"]
        assert g._pool._workers == []


def test_math_verify_path(grader):
    got = grader.grade(
        ["so $\\boxed{\\frac{1}{2}}$", "\\boxed{0.5}", "\\boxed{\\sqrt{4}}", "\\boxed{(3, \\frac{\\pi}{2})}",
         "\\boxed{x^2+2x+1}", "\\boxed{3}", "the final answer is $\\frac{2}{3}$", "no answer", "\\boxed{1}"],
        ["0.5", "\\frac12", "2", "\\left( 3, \\frac{\\pi}{2} \\right)", "(x+1)^2", "4", "\\frac{4}{6}", "1", "1"],
        [False] * 8 + [True])
    assert reasons(got) == ["correct"] * 5 + ["wrong", "correct", "no_answer", "truncated"]
    assert got[0].extracted == "\\frac{1}{2}" and got[0].reward == 1.0


def test_gsm8k_non_numeric_answer_goes_to_math_verify():
    with Grader("gsm8k", timeout_s=5.0, workers=1) as g:
        got = g.grade(["#### \\frac{36}{2}", "#### 18 \\text{ dollars}", "#### 18 dollars"], ["18"] * 3)
        # Bare words are read as maths by math-verify (18*d*o*l...): a model must write a number.
        assert reasons(got) == ["correct", "correct", "wrong"]


def test_timeout_really_holds(grader):
    start = time.perf_counter()
    got = grader.grade([HANG, "\\boxed{\\frac{2}{4}}", HANG], ["1", "\\frac12", "2"])
    elapsed = time.perf_counter() - start
    print(f"2 hanging items + 1 normal, timeout {TIMEOUT_S}s, 2 workers: returned in {elapsed:.2f}s")
    assert reasons(got) == ["timeout", "correct", "timeout"]
    assert got[0].extracted == "9^{9^{9^{9^{9}}}}" and got[0].reward == 0.0
    assert elapsed < TIMEOUT_S + 3.0  # both hung at once, one per worker; the slack covers a loaded CPU
    assert reasons(grader.grade(["\\boxed{\\frac{3}{6}}"], ["0.5"])) == ["correct"]  # replaced workers serve
    assert len(workers()) <= 2


def test_worker_crash_is_contained(grader):
    # Kill the worker while it is stuck on an item (the deadline is far away): that item is an error,
    # the others are still graded, and nothing is raised.
    slow = Grader("math", timeout_s=60.0, workers=1)
    slow.grade(["\\boxed{\\frac{1}{2}}"], ["0.5"])
    pid = slow._pool._workers[0].proc.pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    start = time.perf_counter()
    got = slow.grade([HANG, "\\boxed{\\frac{1}{3}}"], ["1", "\\frac{2}{6}"])
    assert reasons(got) == ["error", "correct"]
    assert time.perf_counter() - start < 10.0
    # A worker that dies while idle is noticed at the next call, and its job goes to a fresh one.
    os.kill(slow._pool._workers[0].proc.pid, signal.SIGKILL)
    slow._pool._workers[0].proc.join()
    assert reasons(slow.grade(["\\boxed{\\frac{1}{3}}"], ["\\frac{2}{6}"])) == ["correct"]
    slow.close()
    assert not [p for p in workers() if p.pid == pid]


def test_identical_pairs_graded_once(grader, monkeypatch):
    seen = []
    run = grader._pool.run
    monkeypatch.setattr(grader._pool, "run", lambda jobs: seen.append(len(jobs)) or run(jobs))
    got = grader.grade(["\\boxed{\\frac{1}{2}}"] * 50 + ["\\boxed{\\frac{1}{4}}"] * 50, ["0.5"] * 100)
    assert seen == [2] and reasons(got) == ["correct"] * 50 + ["wrong"] * 50


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task"):
        Grader("chess")
    with Grader("math") as g, pytest.raises(ValueError, match="2 responses, 1 golds"):
        g.grade(["a", "b"], ["1"])


def test_workers_started_on_a_thread_serve_the_next_thread():
    """trainer.async_level=1 grades on a producer thread that ends every iteration: the math-verify
    workers it starts serve the next iteration's thread, no respawn (and no warm-up) each time."""
    with Grader("math", timeout_s=30.0, workers=1) as g:
        pids = []
        for _ in range(2):
            t = threading.Thread(target=lambda: pids.append((g.grade(["\\boxed{\\frac{1}{2}}"], ["0.5"])[0].reason,
                                                             [w.proc.pid for w in g._pool._workers])))
            t.start()
            t.join()
            time.sleep(0.5)  # the thread has ended: a death signal tied to it has come
        assert pids[0] == pids[1] and pids[0][0] == "correct" and len(pids[0][1]) == 1
        assert set(pids[0][1]) <= {p.pid for p in workers()}  # alive, the same process
