"""LM judge and generative compilers against a loopback OpenAI-compatible server (no model, no network)."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from _openai_server import FakeChatServer

from interpkit.criterion import Criterion, get_compiler
from interpkit.criterion._generative import SEED_INSTRUCTIONS, GenerativeCompiler
from interpkit.criterion._judge import NEUTRAL_TEXTS, LMJudgeCompiler, judge_messages, parse_rating
from interpkit.models._chat import OpenAIChat

ON = ["The ocean waves crashed on the shore.", "Sailors crossed the ocean for weeks.",
      "Deep ocean currents carry cold water."]
OFF = ["The tax form is due in April.", "She baked bread with rye flour.", "The printer needs new toner."]


def _judged_text(messages):
    user = messages[-1]["content"]
    return re.search(r"<<<\n(.*)\n>>>", user, re.S).group(1)


def ocean_probs(messages):
    """A judge that puts its mass on 8 when the judged text mentions the ocean, on 1 otherwise."""
    hit = "ocean" in _judged_text(messages).lower()
    return {"8": 0.7, "9": 0.2, "Rating": 0.1} if hit else {"1": 0.6, "0": 0.3, "The": 0.1}


def chat(server, **kw):
    return OpenAIChat(model="judge-x", base_url=server.url, sleep=lambda s: None, **kw)


def test_judge_reads_choice_probs_and_records_provenance():
    with FakeChatServer(probs=ocean_probs) as srv:
        judge = get_compiler("judge", chat=chat(srv))
        assert isinstance(judge, LMJudgeCompiler)
        scored = judge.score_texts("the ocean", ON + OFF)
        assert len(srv.requests) == len(ON + OFF)
        body = srv.requests[0]["body"]
        assert body["logprobs"] is True and body["max_tokens"] == 1
        assert "Criterion: the ocean" in body["messages"][-1]["content"]
    scores = [s.score for s in scored]
    assert min(scores[:3]) > 0.8 > 0.2 > max(scores[3:])
    assert [s.label for s in scored] == ["positive"] * 3 + ["negative"] * 3
    prov = scored[0].provenance
    assert prov["compiler"] == "judge" and prov["judge_model"] == "judge-x" and prov["template"] == "rate-v1"
    assert prov["method"] == "rating" and prov["answer_from"] == "choice_probs" and len(prov["probs"]) == 10
    assert prov["expected_rating"] == pytest.approx((8 * 0.7 + 9 * 0.2) / 0.9, abs=1e-3)
    assert scores[0] == pytest.approx(prov["expected_rating"] / 9, abs=1e-3)


def test_judge_parses_text_when_no_logprobs_and_reports_unparseable():
    answers = {"ocean": "Rating: [[7]]", "tax": "I cannot rate this text, sorry.", "bread": "2",
               "printer": "Rating: 12"}

    def reply(messages):
        text = _judged_text(messages)
        return next(a for k, a in answers.items() if k in text.lower())

    with FakeChatServer(reply=reply) as srv:
        judge = LMJudgeCompiler(chat=chat(srv))
        scored = judge.score_texts(Criterion(text="the ocean"), [ON[0], *OFF])
        # One logprobs probe learns the server has none; then one completion per text.
        assert len(srv.requests) == 1 + 4
    ocean, tax, bread, printer = scored
    assert ocean.score == pytest.approx(7 / 9) and ocean.provenance["answer_from"] == "parsed"
    assert ocean.provenance["raw_answer"] == "Rating: [[7]]" and ocean.label == "positive"
    assert bread.score == pytest.approx(2 / 9) and bread.label == "negative"
    for bad in (tax, printer):
        assert bad.score is None and bad.label is None
        assert "no rating 0-9" in bad.provenance["error"]
    assert tax.provenance["raw_answer"] == answers["tax"]


def test_judge_cuts_long_texts():
    with FakeChatServer(probs=ocean_probs) as srv:
        judge = LMJudgeCompiler(chat=chat(srv), max_text_chars=200)
        long_text = "ocean " * 200
        (scored,) = judge.score_texts("the ocean", [long_text])
        judged = _judged_text(srv.requests[0]["body"]["messages"])
    assert len(judged) <= 205 and judged.endswith("...")
    assert scored.provenance["truncated"] is True and scored.text == long_text


def test_judge_options_and_prompt():
    with pytest.raises(ValueError, match="scale"):
        LMJudgeCompiler(chat=OpenAIChat(model="m", base_url="http://127.0.0.1:1"), scale=11)
    with pytest.raises(ValueError, match="template"):
        LMJudgeCompiler(chat=OpenAIChat(model="m", base_url="http://127.0.0.1:1"), template="nope")
    msgs = judge_messages("cats", "A kitten.", scale=5)
    assert "0 to 4" in msgs[-1]["content"] and "<<<\nA kitten.\n>>>" in msgs[-1]["content"]
    with FakeChatServer(probs=lambda m: {"4": 1.0}) as srv:
        (s,) = LMJudgeCompiler(chat=chat(srv), scale=5).score_texts("cats", ["A kitten."])
    assert s.score == pytest.approx(1.0) and len(s.provenance["probs"]) == 5


@pytest.mark.parametrize(("answer", "value"), [
    ("Rating: 7", 7), ("Rating: [[3]].", 3), ("rating = 0", 0), ("5", 5), ("I'd give it 6/9", 6),
    ("First 2 then Rating: 4", 4), ("Rating: 10", None), ("none", None), ("3.5", 3), ("-1", 1),
])
def test_parse_rating(answer, value):
    assert parse_rating(answer, scale=10) == value


class TopicChat:
    """A local-like chat model: the criterion is likely after texts that share its words."""

    name = "topic-stub"

    def __init__(self):
        self.calls = []

    def complete(self, messages, *, max_tokens=128, temperature=0.0):
        raise AssertionError("the topic method never generates")

    def choice_probs(self, messages, choices):
        raise AssertionError("the topic method never reads digits")

    def continuation_logprobs(self, conversations, continuation):
        self.calls.append((conversations, continuation))
        words = set(re.findall(r"[a-z]{4,}", continuation.lower()))
        out = []
        for conv in conversations:
            assert conv[-1] == {"role": "assistant", "content": "This text is about"}
            content = conv[0]["content"]
            text = set(re.findall(r"[a-z]+", content.lower()))
            neutral = content.split("\n\n")[0] in NEUTRAL_TEXTS  # the baseline: -4.0
            out.append(-4.0 if neutral else -4.0 + (0.8 if words & text else -0.8) - 0.3 * ("tax" in text))
        return np.array(out)


def test_judge_topic_method():
    stub = TopicChat()
    judge = LMJudgeCompiler(chat=stub)
    assert judge.method == "topic" and judge.template == "topic-v1"
    scored = judge.score_texts("the ocean", ON + OFF)
    (texts, answer), (neutral, answer2) = stub.calls
    assert answer == answer2 == " the ocean" and len(texts) == 6
    assert [c[0]["content"].split("\n\n")[0] for c in neutral] == list(NEUTRAL_TEXTS)
    assert [s.label for s in scored] == ["positive"] * 3 + ["negative"] * 3
    prov = scored[0].provenance
    assert prov["method"] == "topic" and prov["judge_model"] == "topic-stub"
    assert prov["raw"] == pytest.approx(prov["logprob"] - prov["baseline_logprob"]) == pytest.approx(0.8)
    assert prov["calibration_fit"]["method"] == "logistic"
    assert scored[3].provenance["raw"] == pytest.approx(-1.1) and scored[3].score < scored[4].score
    with pytest.raises(ValueError, match="topic"):
        LMJudgeCompiler(chat=OpenAIChat(model="m", base_url="http://127.0.0.1:1"), method="topic")
    assert LMJudgeCompiler(chat=stub, method="rating").method == "rating"


class HashEncoder:
    """Bag-of-words hashed into 1024 dimensions, unit rows (a stand-in for MiniLM)."""

    name = "hash"

    def encode(self, texts):
        out = np.zeros((len(texts), 1024), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 1024] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def writer(messages):
    """Positive prompts get an ocean text, negative ones a bread text; one positive goes off-topic."""
    user = messages[-1]["content"]
    instruction = user.rsplit("Instruction: ", 1)[1]
    if "must be clearly about" in user:
        if instruction == SEED_INSTRUCTIONS[1]:
            return "I like my small garden."
        return f'"The ocean is vast; ocean tides and ocean fish. ({instruction})"'
    return f"Fresh bread and warm soup for lunch. ({instruction})"


def test_generative_compile_checks_and_caches(tmp_path):
    with FakeChatServer(reply=writer) as srv:
        gen = get_compiler("generative", chat=chat(srv), checker="keyword", n_positive=3, n_negative=3,
                           encoder=HashEncoder(), cache=tmp_path / "gen")
        assert isinstance(gen, GenerativeCompiler)
        rows = gen.compile(Criterion(text="the ocean", keywords=("ocean",)), seed=0)
        assert len(srv.requests) == 6
        prompts = [r["body"]["messages"][-1]["content"] for r in srv.requests]
        assert sum("Do not mention the ocean" in p for p in prompts) == 3
        every = gen.examples(Criterion(text="the ocean", keywords=("ocean",)))
        again = GenerativeCompiler(chat=chat(srv), checker="keyword", n_positive=3, n_negative=3,
                                   encoder=HashEncoder(), cache=tmp_path / "gen")
        again.examples(Criterion(text="the ocean", keywords=("ocean",)))
        assert len(srv.requests) == 6  # all six came from the disk cache
    rejected = [s for s in every if not s.provenance["kept"]]
    assert [s.provenance["instruction"] for s in rejected] == [SEED_INSTRUCTIONS[1]]
    assert rejected[0].provenance["checker_label"] == "negative"
    # Balanced: 2 kept positives, so 2 of the 3 negatives.
    assert sorted(r.label for r in rows) == ["negative", "negative", "positive", "positive"]
    assert {r.split for r in rows} == {"train", "test"}
    for r in rows:
        p = r.provenance
        assert p["generator"] == "judge-x" and p["kept"] and p["role"] in ("positive", "negative")
        assert p["instruction"] in SEED_INSTRUCTIONS and p["checker"] == "keyword"
        assert r.text and not r.text.startswith('"') and str(r.prompt_id).startswith("g")
    assert all(s.provenance["cached"] for s in again.examples(Criterion(text="the ocean", keywords=("ocean",))))


def test_generative_score_texts_by_prototypes():
    with FakeChatServer(reply=writer) as srv:
        gen = GenerativeCompiler(chat=chat(srv), checker=None, n_positive=3, n_negative=3,
                                 encoder=HashEncoder(), cache=None)
        crit = "the ocean"
        scored = gen.score_texts(crit, ON + OFF + ["Bread soup lunch."])
        n_requests = len(srv.requests)
        gen.score_texts(crit, ON)
        assert len(srv.requests) == n_requests == 6  # generated once per criterion
    scores = [s.score for s in scored]
    assert min(scores[:3]) > max(scores[3:])
    assert scored[-1].score < 0.5
    prov = scored[0].provenance
    assert prov["compiler"] == "generative" and prov["n_prototypes"] == {"positive": 3, "negative": 3}
    assert prov["similarity_positive"] > prov["similarity_negative"]


def test_generative_contrast_and_failure(tmp_path):
    with FakeChatServer(reply=lambda m: "Nothing relevant here.") as srv:
        gen = GenerativeCompiler(chat=chat(srv), checker="keyword", n_positive=2, n_negative=2,
                                 encoder=HashEncoder(), cache=None)
        crit = Criterion(text="the ocean", contrast="deserts", keywords=("ocean",))
        with pytest.raises(ValueError, match="kept 0 of 2 positive"):
            gen.compile(crit)
        contrast_prompts = [r["body"]["messages"][-1]["content"] for r in srv.requests[2:]]
        assert all("clearly about deserts" in p for p in contrast_prompts)
        (s,) = gen.score_texts(crit, ["waves"])
    assert s.score is None and "no kept positive" in s.provenance["error"]
    assert {e.provenance["role"] for e in gen.examples(crit)} == {"positive", "contrast"}
    with pytest.warns(UserWarning, match="pool is ignored"), pytest.raises(ValueError):
        gen.compile(crit, pool=["x"])
