"""Chat models: OpenAIChat against a loopback server (retries, errors, env config, cache, logprobs);
LocalChat on a tiny config-built model; chat_model specs."""

from __future__ import annotations

import numpy as np
import pytest
from _openai_server import FakeChatServer

from interpkit.models._chat import ChatError, ChatModel, LocalChat, OpenAIChat, chat_model

USER = [{"role": "user", "content": "Say hi"}]
DIGITS = [str(d) for d in range(10)]


@pytest.fixture
def server():
    with FakeChatServer() as srv:
        yield srv


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("INTERPKIT_LLM_BASE_URL", "INTERPKIT_LLM_MODEL", "INTERPKIT_LLM_API_KEY",
                 "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def make(server, **kw):
    waits = []
    kw.setdefault("retries", 3)
    chat = OpenAIChat(model="judge-1", base_url=server.url, api_key="sk-test", sleep=waits.append, **kw)
    return chat, waits


def test_complete_sends_model_messages_and_bearer(server):
    chat, _ = make(server)
    assert isinstance(chat, ChatModel)
    assert chat.complete(USER, max_tokens=7) == "echo: Say hi"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert req["body"]["model"] == "judge-1"
    assert req["body"]["messages"] == USER
    assert req["body"]["max_tokens"] == 7 and req["body"]["temperature"] == 0.0


def test_429_with_retry_after_then_success(server):
    chat, waits = make(server)
    server.script((429, {"Retry-After": "2"}, '{"error": "slow down"}'))
    assert chat.complete(USER) == "echo: Say hi"
    assert len(server.requests) == 2
    assert waits == [2.0]


def test_500_then_success(server):
    chat, waits = make(server, backoff=0.25)
    server.script((500, {}, "oops"))
    assert chat.complete(USER) == "echo: Say hi"
    assert len(server.requests) == 2 and waits == [0.25]


def test_persistent_503_gives_up_and_says_attempts(server):
    chat, waits = make(server, retries=2)
    server.script(*[(503, {}, "busy")] * 5)
    with pytest.raises(ChatError, match=r"gave up after 3 attempt") as info:
        chat.complete(USER)
    assert info.value.status == 503
    assert len(server.requests) == 3 and len(waits) == 2


def test_401_is_not_retried(server):
    chat, waits = make(server)
    server.script((401, {}, '{"error": "bad key"}'))
    with pytest.raises(ChatError, match="401") as info:
        chat.complete(USER)
    assert info.value.status == 401
    assert len(server.requests) == 1 and waits == []
    assert "sk-test" not in str(info.value)


def test_malformed_json_and_missing_choices(server):
    chat, _ = make(server)
    server.script("malformed")
    with pytest.raises(ChatError, match="not JSON"):
        chat.complete(USER)
    server.script("no_choices")
    with pytest.raises(ChatError, match="no 'choices'"):
        chat.complete(USER)


def test_missing_message_content():
    with FakeChatServer(reply=lambda m: None) as srv:
        chat, _ = make(srv)
        with pytest.raises(ChatError, match="no message content"):
            chat.complete(USER)


def test_env_configuration(server, clean_env):
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")  # the INTERPKIT_ variable wins
    clean_env.setenv("INTERPKIT_LLM_BASE_URL", server.url)
    clean_env.setenv("INTERPKIT_LLM_MODEL", "env-model")
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    chat = chat_model("api")
    assert isinstance(chat, OpenAIChat)
    assert chat.complete(USER) == "echo: Say hi"
    req = server.requests[-1]
    assert req["body"]["model"] == "env-model"
    assert req["headers"]["Authorization"] == "Bearer sk-env"
    assert chat_model("api:other").model == "other"


def test_missing_configuration_names_env_vars(clean_env):
    with pytest.raises(ChatError, match="INTERPKIT_LLM_BASE_URL.*OPENAI_BASE_URL") as info:
        chat_model("api")
    assert "INTERPKIT_LLM_MODEL" in str(info.value)
    clean_env.setenv("INTERPKIT_LLM_BASE_URL", "http://127.0.0.1:1/v1")
    with pytest.raises(ChatError, match="INTERPKIT_LLM_MODEL"):
        OpenAIChat()


def test_no_key_sends_no_authorization(server, clean_env):
    chat = OpenAIChat(model="m", base_url=server.url)
    chat.complete(USER)
    assert "Authorization" not in server.requests[-1]["headers"]


def test_cache_avoids_second_request(server, tmp_path):
    chat, _ = make(server, cache=tmp_path / "cache")
    assert chat.complete(USER) == chat.complete(USER) == "echo: Say hi"
    assert len(server.requests) == 1
    other, _ = make(server, cache=tmp_path / "cache")
    assert other.complete(USER) == "echo: Say hi" and len(server.requests) == 1
    chat.complete([{"role": "user", "content": "else"}])
    assert len(server.requests) == 2


def test_choice_probs_from_top_logprobs():
    probs = {"7": 0.6, "8": 0.3, "Rating": 0.05, " 2": 0.05}
    with FakeChatServer(probs=lambda m: probs) as srv:
        chat, _ = make(srv)
        p = chat.choice_probs(USER, DIGITS)
        body = srv.requests[-1]["body"]
        assert body["logprobs"] is True and body["top_logprobs"] >= 10 and body["max_tokens"] == 1
    assert p is not None and p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p[[2, 7, 8]], np.array([0.05, 0.6, 0.3]) / 0.95)
    assert chat.logprobs_supported is True


def test_choice_probs_none_without_logprobs(server):
    chat, _ = make(server)
    assert chat.choice_probs(USER, DIGITS) is None
    assert chat.choice_probs(USER, DIGITS) is None
    assert len(server.requests) == 1  # learned once that the server has no logprobs


def test_choice_probs_none_when_parameter_refused(server):
    chat, _ = make(server)
    server.script((400, {}, '{"error": "logprobs not supported"}'))
    assert chat.choice_probs(USER, DIGITS) is None
    assert chat.logprobs_supported is False


def test_bad_messages_and_spec():
    chat = OpenAIChat(model="m", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ChatError, match=r"messages\[0\]"):
        chat.complete([{"content": "no role"}])
    with pytest.raises(TypeError, match="chat_model"):
        chat_model(3)
    assert chat_model(chat) is chat
    assert isinstance(chat_model("local"), LocalChat)  # lazy: nothing loaded yet


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("transformer_lens", arch="llama")


@pytest.mark.usefixtures("one_torch_thread")
class TestLocalChat:
    def test_no_chat_template_is_a_clear_error(self, tiny):
        assert not getattr(tiny.tokenizer, "chat_template", None)
        with pytest.raises(ChatError, match="no chat template"):
            LocalChat(tiny).complete(USER)

    @pytest.fixture
    def templated(self, tiny):
        tiny.tokenizer.chat_template = (
            "{% for m in messages %}{{ m['role'][0] }} {{ m['content'] }}.{% endfor %}"
            "{% if add_generation_prompt %}a {% endif %}")
        yield LocalChat(tiny, batch_size=2)
        tiny.tokenizer.chat_template = None

    def test_complete_and_choice_probs(self, templated, tiny):
        USER = [{"role": "user", "content": "say hi"}]  # noqa: N806 (the tiny vocabulary is lower case)
        ids = templated.prompt_ids(USER)
        assert tiny.tokenizer.decode(ids) == "u say hi.a "
        prefill = templated.prompt_ids([*USER, {"role": "assistant", "content": "ok"}])
        assert prefill[: len(ids)] == ids and tiny.tokenizer.decode(prefill[len(ids):]) == "ok"
        text = templated.complete(USER, max_tokens=5)
        assert isinstance(text, str) and len(text) <= 5
        assert templated.complete(USER, max_tokens=5) == text  # greedy

        choices = ["a", "b", "c"]
        p = templated.choice_probs(USER, choices)
        assert p.shape == (3,) and p.sum() == pytest.approx(1.0)
        # Against a direct forward of the same ids: batching and padding change nothing.
        import torch

        logits = tiny.forward(tiny.tokenize([tiny.tokenizer.decode(ids)], prepend_bos=False))
        full = torch.softmax(logits[0, -1], -1)[templated.choice_ids(choices)].numpy()
        np.testing.assert_allclose(p, full / full.sum(), rtol=1e-4)
        many = [USER, [{"role": "user", "content": "a much longer question here"}], USER]
        batch = templated.choice_probs_batch(many, choices)
        np.testing.assert_allclose(batch[0], p, rtol=1e-4)
        np.testing.assert_allclose(batch[2], p, rtol=1e-4)
        assert not np.allclose(batch[1], p)

    def test_continuation_logprobs(self, templated, tiny):
        import torch

        convs = [[{"role": "user", "content": "say hi"}, {"role": "assistant", "content": "ok"}],
                 [{"role": "user", "content": "a longer question, here"}]]
        got = templated.continuation_logprobs(convs, " hi there")
        cont = templated.model.tokenizer(" hi there", add_special_tokens=False)["input_ids"]
        for conv, value in zip(convs, got, strict=True):
            ids = templated.prompt_ids(conv) + cont
            logp = torch.log_softmax(tiny.forward(tiny.tokenize([tiny.tokenizer.decode(ids)], prepend_bos=False))[0], -1)
            want = np.mean([logp[len(ids) - len(cont) - 1 + j, t].item() for j, t in enumerate(cont)])
            assert value == pytest.approx(want, rel=1e-4)
        with pytest.raises(ChatError, match="no tokens"):
            templated.continuation_logprobs(convs, "")

    def test_multi_token_choice_is_rejected(self, templated):
        with pytest.raises(ChatError, match="single tokens"):
            templated.choice_probs(USER, ["ab", "c"])
