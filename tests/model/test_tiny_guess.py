"""model=tiny_guess: the committed checkpoint in sync with its config, SFT on whole game transcripts with
the loss on the player's lines only, its vocabulary and context, and its recorded start band."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from rlreason.data.guess import problem_text
from rlreason.model import build as build_mod
from rlreason.model.load import committed_hash, config_hash
from rlreason.model.tasks import Item, task_of
from rlreason.model.tiny import assets_dir, default_build, tokenizer_for
from tests.model.test_hf import compose_cfg

ASSETS = assets_dir("guess")
INFO = json.loads((ASSETS / "build_info.json").read_text())
BUILD = default_build("guess")


@pytest.fixture(scope="module")
def items() -> tuple[list[Item], list[Item]]:
    return task_of(BUILD).items({**BUILD, "n_train": 200, "sft_solutions": 4})


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS)


def test_committed_checkpoint_matches_yaml(tokenizer) -> None:
    assert committed_hash(ASSETS) == config_hash(BUILD), "rerun: python -m rlreason.model.build --task guess"
    assert tokenizer_for(BUILD).get_vocab() == tokenizer.get_vocab()  # the hash does not cover the corpus
    assert INFO["build"] == BUILD
    data = compose_cfg("data=guess", "model=tiny_guess").data.guess  # the build's test split is data=guess's
    assert (BUILD["n_test"], BUILD["n_train"], BUILD["data_seed"]) == (data.n_test, data.n_train, data.seed)
    assert INFO["guess_spec"] == {k: data[k] for k in INFO["guess_spec"]}


def test_recorded_start_has_headroom() -> None:
    assert INFO["n_games"] == 200 and INFO["eval_engine"] == "hf"
    assert 0.10 <= INFO["sampled_success"] <= 0.60
    assert INFO["pass_at_8"] >= 1.5 * INFO["greedy_success"]


def test_sft_trains_on_the_players_lines_only(items, tokenizer) -> None:
    train, _ = items
    it = train[0]
    prompt, ids, own = build_mod._example(tokenizer, it, it.solutions[0])
    assert tokenizer.decode(prompt, skip_special_tokens=True) == problem_text(it.record) + "\n"
    assert tokenizer.decode(ids) == "".join(text for text, _ in it.solutions[0])  # no EOS: the game ends it
    batch = build_mod.collate([(prompt, ids, own), build_mod.encode(tokenizer, it, "guess 1")], tokenizer.pad_token_id)
    labels = batch["labels"][0, len(prompt):len(prompt) + len(ids)]
    trained = tokenizer.decode([t for t, lab in zip(ids, labels.tolist()) if lab != -100])
    assert trained == "".join(text for text, policy in it.solutions[0] if policy)
    assert (batch["labels"][0, :len(prompt)] == -100).all()
    assert tokenizer.decode(batch["labels"][1][batch["labels"][1] != -100]) == "guess 1</s>"  # single-turn unchanged


def test_every_sft_transcript_replays_and_the_builder_checks_it(items) -> None:
    train, test = items
    assert all(it.grade(s) for it in train for s in it.solutions) and not test[0].solutions
    action, _, *rest = train[0].solutions[0]
    assert not train[0].grade((action, ("invalid 0-0\n", False), *rest))  # a reply the game would not give


def test_vocabulary_and_context_cover_the_longest_game(items, tokenizer) -> None:
    train, _ = items
    longest = max(len(build_mod._example(tokenizer, it, s)[0]) + len(build_mod._example(tokenizer, it, s)[1])
                  for it in train for s in it.solutions)
    assert longest + 12 <= BUILD["max_position_embeddings"]  # + one turn cut at its token budget
    text = "".join(t for it in train for s in it.solutions for t, _ in s)
    assert tokenizer.unk_token_id not in tokenizer(text, add_special_tokens=False).input_ids


def test_held_out_games_leave_out_what_sft_played(capsys) -> None:
    from rlreason.data import load_questions
    from rlreason.model.heldout import held_out_filter

    cfg = compose_cfg("data=guess", "model=tiny_guess", "data.guess.n_train=10")
    cut = held_out_filter(cfg.model, "guess")
    assert cut is not None and len(load_questions(cfg.data, held_out=cut)[1]) == 500  # the build's test split
    cfg = compose_cfg("data=guess", "model=tiny_guess", "data.guess.n_train=10", "data.guess.n_test=1000")
    kept = load_questions(cfg.data, held_out=cut)[1]
    # the stream runs on into the build's first 500 train games: those are out
    assert len(kept) == 500 and "left 500 of the 1000 test questions out" in capsys.readouterr().err


def test_a_short_build_plays_its_games_for_build_info(tmp_path) -> None:
    from rlreason.model.build import build

    info = build({**BUILD, "sft_steps": 3, "n_train": 64, "n_test": 6, "sft_solutions": 2}, tmp_path / "m", progress=False)
    assert info["eval_engine"] == "hf" and info["n_games"] == 6 and 0 <= info["greedy_success"] <= 1
    assert {"sampled_success", "pass_at_8"} <= info.keys() and "greedy_acc" not in info
    assert (tmp_path / "m" / "build_info.json").is_file() and not list(tmp_path.glob(".m.tmp-*"))
