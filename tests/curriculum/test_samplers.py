import random

import pytest

from rlreason.curriculum import StatsStore, group_metrics, learnability, make_sampler
from rlreason.curriculum.store import Attempt
from tests.curriculum.fakes import FakePolicy, cfg, episode, questions, step


@pytest.fixture
def store(tmp_path):
    with StatsStore(tmp_path / "stats.sqlite", "run") as s:
        yield s


def history(store: StatsStore, it: int, rewards: dict[str, list[float]]) -> None:
    store.add([Attempt(q, it, "train", r, 1) for q, rs in rewards.items() for r in rs])
    store.commit(it)


def test_learnability_and_bessel():
    assert learnability(0.5, 8) == 0.25
    assert learnability(0.25, 4) == pytest.approx(0.1875)
    assert learnability(0.25, 4, bessel=True) == pytest.approx(0.1875 * 4 / 3)
    assert learnability(0.5, 2, bessel=True) == 0.5  # 1 of 2: unbiased p(1-p) estimate
    assert learnability(1.0, 8, bessel=True) == learnability(0.0, 8, bessel=True) == 0
    assert learnability(1.0, 1, bessel=True) == 0  # n=1: nothing to correct


def test_group_metrics():
    qs = questions(4)
    groups = [[episode(q, float(j < hits)) for j in range(4)] for q, hits in zip(qs, [4, 0, 2, 2])]
    m = group_metrics(groups, "c/pool")
    assert m == {"c/pool/hit_0_of_4": 0.25, "c/pool/hit_2_of_4": 0.5, "c/pool/hit_4_of_4": 0.25,
                 "c/pool/all_solved": 0.25, "c/pool/none_solved": 0.25, "c/pool/learnability": 0.125}


def test_uniform_visits_every_question_once_per_epoch(store):
    qs = questions(10)
    sampler = make_sampler(cfg("uniform"), qs, store, seed=0)
    policy = FakePolicy({q.id: 0.5 for q in qs})
    draws = []
    for it in range(10):
        batch = step(sampler, store, it, policy, batch=3, n_train=2)
        assert len(set(batch)) == 3
        draws += batch
    for epoch in range(3):
        assert sorted(draws[10 * epoch:10 * epoch + 10]) == [q.id for q in qs]
    assert policy.calls == [(ids, 2) for ids in (draws[i:i + 3] for i in range(0, 30, 3))]  # no selection rollouts


def test_learnability_keeps_top_batch_of_the_whole_pool(store):
    qs = questions(40)
    rng = random.Random(1)
    p = {q.id: rng.choice([0.0, 0.125, 0.25, 0.5, 0.875, 1.0]) for q in qs}
    policy = FakePolicy(p)
    sampler = make_sampler(cfg("learnability", pool_factor=4, n_select=8), qs, store, seed=0)
    sel = sampler.next_batch(0, batch=5, n_train=8, rollout_fn=policy)
    ((pool, n),) = policy.calls
    assert len(pool) == 20 and n == 8
    score = {q: learnability(p[q], 8) for q in pool}
    chosen = [q.id for q in sel.questions]
    assert set(chosen) <= set(pool)
    assert min(score[q] for q in chosen) >= max(score[q] for q in pool if q not in chosen)
    assert sel.metrics["curriculum/selected/learnability"] >= sel.metrics["curriculum/pool/learnability"]
    assert sel.metrics["curriculum/rollouts_selection"] == sel.selection_rollouts == 160
    hits = sum(v for k, v in sel.metrics.items() if k.startswith("curriculum/pool/hit_"))
    assert hits == pytest.approx(1.0) and "curriculum/selected/hit_4_of_8" in sel.metrics


def test_learnability_tie_break_is_random_and_seeded(tmp_path):
    qs = questions(20)
    policy = FakePolicy({q.id: 0.5 for q in qs})  # all tied

    def chosen(seed: int, name: str) -> list[str]:
        with StatsStore(tmp_path / f"{name}.sqlite", "run") as s:
            sampler = make_sampler(cfg("learnability", pool_factor=4, n_select=4), qs, s, seed)
            sel = sampler.next_batch(0, 5, 4, policy)
            pool = policy.calls[-1][0]
            return sorted(pool.index(q.id) for q in sel.questions)  # pools differ by seed: compare positions

    assert chosen(0, "a") == chosen(0, "b")
    picks = {tuple(chosen(seed, f"s{seed}")) for seed in range(6)}
    assert len(picks) > 1 and all(list(pk) != [0, 1, 2, 3, 4] for pk in picks)


@pytest.mark.parametrize("n_train, reused", [(8, True), (4, False)])
def test_selection_rollouts_reused_only_when_sizes_match(store, n_train, reused):
    qs = questions(16)
    policy = FakePolicy({q.id: (i % 5) / 4 for i, q in enumerate(qs)})
    sampler = make_sampler(cfg("learnability", pool_factor=2, n_select=8), qs, store, seed=0)
    sel = sampler.next_batch(0, 4, n_train, policy)
    assert policy.rollouts == sel.selection_rollouts == 8 * 8
    if reused:
        assert sel.groups is not None and len(sel.groups) == 4
        assert [g[0].question for g in sel.groups] == sel.questions and all(len(g) == 8 for g in sel.groups)
        assert sel.metrics["curriculum/rollouts_reused"] == 32
    else:
        assert sel.groups is None and sel.metrics["curriculum/rollouts_reused"] == 0
    store.commit(0)
    assert sum(store.attempts_per_question(phase="selection").values()) == 64
    (row,) = store.learnability_by_iteration("selection")
    assert row.selected >= row.pool


def test_history_exploits_best_and_explores_unseen(store):
    qs = questions(20)
    rewards = {f"q{i:04d}": [1.0] * i + [0.0] * (8 - i) for i in range(9)}  # q0004 has p=.5
    history(store, 0, rewards)
    sampler = make_sampler(cfg("learnability_history", explore_frac=0.5, window=5, decay=0.5, cooldown=0), qs, store, 0)
    sel = sampler.next_batch(1, 4, 8, FakePolicy({}))
    chosen = [q.id for q in sel.questions]
    assert chosen[0] == "q0004" and chosen[1] in ("q0003", "q0005")  # best first; those two tie
    assert all(int(q[1:]) >= 9 for q in chosen[2:])  # unseen
    assert sel.selection_rollouts == 0 and sel.groups is None
    assert sel.metrics["curriculum/explore_frac"] == 0.5


def test_history_bessel_and_stale(store):
    qs = questions(6)
    history(store, 0, {"q0000": [1.0, 0.0, 1.0, 0.0] * 5})  # p=.5 over 20 attempts; stale by iteration 3
    history(store, 2, {"q0001": [1.0, 0.0], "q0002": [1.0, 0.0] * 10})  # both p=.5, n=2 vs n=20
    plain = make_sampler(cfg("learnability_history", explore_frac=0, window=2, bessel=False, cooldown=0), qs, store, 0)
    bessel = make_sampler(cfg("learnability_history", explore_frac=0, window=2, bessel=True, cooldown=0), qs, store, 0)
    assert bessel.next_batch(3, 1, 2, FakePolicy({})).questions[0].id == "q0001"  # larger correction for n=2
    assert plain.next_batch(3, 1, 2, FakePolicy({})).questions[0].id in ("q0001", "q0002")  # a tie
    # q0000 is outside the window: stale, so it can only come in as exploration, after the ranked ones.
    chosen = [q.id for q in plain.next_batch(3, 4, 2, FakePolicy({})).questions]
    assert set(chosen[:2]) == {"q0001", "q0002"}


def test_history_cooldown_keeps_a_question_trained_lately_from_being_picked_again(store):
    qs = questions(20)
    history(store, 0, {f"q{i:04d}": [1.0] * i + [0.0] * (8 - i) for i in range(9)})
    history(store, 5, {"q0004": [1.0] * 4 + [0.0] * 4})  # the best score, trained again at iteration 5
    def chosen(cooldown: int, iteration: int) -> list[str]:
        sampler = make_sampler(cfg("learnability_history", explore_frac=0, window=10, decay=0.5, cooldown=cooldown),
                               qs, store, 0)
        return [q.id for q in sampler.next_batch(iteration, 3, 8, FakePolicy({})).questions]
    assert chosen(0, 6)[0] == "q0004"  # without a cooldown the same top question comes back every time
    assert "q0004" not in chosen(3, 6) and set(chosen(3, 6)) <= {f"q{i:04d}" for i in range(1, 8)}
    assert chosen(3, 9)[0] == "q0004"  # iteration 5 is more than 3 iterations back: it may be picked again


def test_skip_zero_variance_skips_with_probability(store):
    qs = questions(2000)
    history(store, 0, {q.id: ([1.0, 1.0] if i % 2 == 0 else [1.0, 0.0]) for i, q in enumerate(qs)})
    sampler = make_sampler(cfg("skip_zero_variance", skip_prob=0.7, window=5), qs, store, seed=3)
    sel = sampler.next_batch(1, 600, 4, FakePolicy({}))
    zero_var_taken = sum(int(q.id[1:]) % 2 == 0 for q in sel.questions)
    skipped = sel.metrics["curriculum/skipped"]
    considered = zero_var_taken + skipped
    share = skipped / considered
    sigma = (0.7 * 0.3 / considered) ** 0.5
    assert abs(share - 0.7) < 4 * sigma
    assert sel.selection_rollouts == 0


@pytest.mark.parametrize("skip_prob", [0.0, 1.0])
def test_skip_zero_variance_extremes(store, skip_prob):
    qs = questions(100)
    history(store, 0, {q.id: ([0.0] * 4 if i < 50 else [1.0, 0.0]) for i, q in enumerate(qs)})
    sampler = make_sampler(cfg("skip_zero_variance", skip_prob=skip_prob, window=5), qs, store, seed=0)
    sel = sampler.next_batch(1, 30, 4, FakePolicy({}))
    all_wrong = sum(int(q.id[1:]) < 50 for q in sel.questions)
    if skip_prob == 0:
        assert sel.metrics["curriculum/skipped"] == 0 and all_wrong > 0
    else:
        assert all_wrong == 0 and sel.metrics["curriculum/skipped"] > 0
    # Once the history is older than the window nothing is skipped.
    stale = make_sampler(cfg("skip_zero_variance", skip_prob=1.0, window=2), qs, store, seed=0)
    assert stale.next_batch(5, 30, 4, FakePolicy({})).metrics["curriculum/skipped"] == 0


def test_filter_groups_refills_with_informative_groups(store):
    qs = questions(60)
    p = {q.id: (0.5 if i % 3 == 0 else float(i % 2)) for i, q in enumerate(qs)}
    policy = FakePolicy(p)
    sampler = make_sampler(cfg("filter_groups", max_refill_rounds=10), qs, store, seed=0)
    sel = sampler.next_batch(0, 6, 4, policy)
    assert len(sel.groups) == len(sel.questions) == 6
    assert all(len({ep.reward for ep in g}) > 1 for g in sel.groups)
    assert [g[0].question for g in sel.groups] == sel.questions
    kept = 0
    for ids, n in policy.calls:  # each round asks for exactly the shortfall
        assert n == 4 and len(ids) == 6 - kept
        kept += sum(p[q] == 0.5 for q in ids)
    assert len(policy.calls) > 1
    drawn = [q for ids, _ in policy.calls for q in ids]
    assert len(set(drawn)) == len(drawn)  # no question rolled out twice in one iteration
    assert sel.selection_rollouts == policy.rollouts == 4 * len(drawn)
    assert sel.metrics["curriculum/shortfall"] == 0


def test_filter_groups_tops_up_with_dropped_groups_when_short(store):
    qs = questions(30)
    p = {q.id: (0.5 if i in (0, 1) else 1.0) for i, q in enumerate(qs)}
    policy = FakePolicy(p)
    sampler = make_sampler(cfg("filter_groups", max_refill_rounds=1), qs, store, seed=0)
    sel = sampler.next_batch(0, 8, 4, policy)
    assert len(policy.calls) == 2  # the first round and one refill
    informative = sum(len({ep.reward for ep in g}) > 1 for g in sel.groups)
    assert len(sel.groups) == 8 and sel.metrics["curriculum/shortfall"] == 8 - informative


def test_sfl_buffer_refresh_and_mix(store):
    qs = questions(40)
    # q0..q9 are the only learnable ones (p = 0.5); the rest are always or never solved
    policy = FakePolicy({q.id: 0.5 if i < 10 else float(i % 2) for i, q in enumerate(qs)})
    sampler = make_sampler(cfg("sfl", refresh_every=3, n_candidates=40, buffer_size=6, n_select=4,
                               buffer_frac=0.5), qs, store, 0)
    learnable = {q.id for q in qs[:10]}
    spent = []
    for it in range(1, 8):
        before = policy.rollouts
        sel = sampler.next_batch(it, 8, 4, policy)
        spent.append(policy.rollouts - before)
        ids = [q.id for q in sel.questions]
        assert len(ids) == len(set(ids)) == 8 and sel.groups is None  # buffer rollouts are not trained on
        assert set(ids[:4]) <= set(sampler.buffer) and set(sampler.buffer) <= learnable  # int(0.5 x 8) from it
        assert sel.metrics["curriculum/from_buffer"] == 0.5
        store.commit(it)
    assert spent == [160, 0, 0, 160, 0, 0, 160]  # N x L rollouts at iterations 1, 4, 7 (every T = 3)
    assert len(sampler.buffer) == 6


@pytest.mark.parametrize("name", ["uniform", "learnability", "sfl", "learnability_history", "skip_zero_variance",
                                  "filter_groups"])
@pytest.mark.parametrize("with_replacement", [False, True])
def test_resume_continues_exactly(tmp_path, name, with_replacement):
    qs = questions(23)
    rng = random.Random(0)
    policy = FakePolicy({q.id: rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for q in qs})
    c = cfg(name, pool_factor=2, n_select=4, window=3, skip_prob=0.8, explore_frac=0.3, refresh_every=4,
            n_candidates=12, buffer_size=5, buffer_frac=0.4, with_replacement=with_replacement)
    kw = dict(batch=5, n_train=4, policy=policy)

    with StatsStore(tmp_path / "a.sqlite", "run") as store:
        sampler = make_sampler(c, qs, store, seed=7)
        straight = [step(sampler, store, it, **kw) for it in range(12)]

    with StatsStore(tmp_path / "b.sqlite", "run") as store:
        sampler = make_sampler(c, qs, store, seed=7)
        resumed = [step(sampler, store, it, **kw) for it in range(6)]
        state = sampler.state_dict()
        sampler = None
    with StatsStore(tmp_path / "b.sqlite", "run") as store:  # a fresh process: new store handle, new sampler
        sampler = make_sampler(c, qs, store, seed=7)
        sampler.load_state_dict(state)
        resumed += [step(sampler, store, it, **kw) for it in range(6, 12)]
    assert resumed == straight


def test_bad_names_and_sizes(store):
    qs = questions(4)
    with pytest.raises(ValueError, match="curriculum.name"):
        make_sampler(cfg("nope"), qs, store, 0)
    with pytest.raises(ValueError, match="batch"):
        make_sampler(cfg("uniform"), qs, store, 0).next_batch(0, 5, 2, FakePolicy({}))
    state = make_sampler(cfg("uniform"), qs, store, 0).state_dict()
    with pytest.raises(ValueError, match="uniform"):
        make_sampler(cfg("learnability"), qs, store, 0).load_state_dict(state)
