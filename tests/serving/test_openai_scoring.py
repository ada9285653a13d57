"""Legacy completions (``echo``, ``logprobs``, token ids, batches) and chat ``logprobs``, on the tiny model.

The numbers are held against a direct forward pass of the same weights (transformers, and PEFT for an
adapter), one unpadded row at a time, so the API's batching and padding cannot hide an error.
"""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from medalpaca_core.engine import Studio
from medalpaca_core.models.manager import ModelManager
from medalpaca_core.models.registry import Registry, Variant
from medalpaca_core.serving.openai_api import ApiConfig, create_app
from medalpaca_core.serving.openai_schema import MAX_LOGPROBS, MAX_PROMPTS
from medalpaca_core.serving.ratelimit import RateLimiter

PROMPTS = ["Diabetes is a chronic disease of", "Which drug irreversibly inhibits cyclooxygenase? Aspirin"]


@pytest.fixture(scope="module")
def client(tiny_dir, tiny_adapters):
    base = str(tiny_dir)
    registry = Registry(
        [
            Variant(id="tiny", label="tiny", base=base, dtype="float32"),
            Variant(id="tiny-lora-0", label="lora", base=base, adapter=str(tiny_adapters[0]), dtype="float32"),
        ]
    )
    with TestClient(create_app(Studio(registry, ModelManager(device="cpu")), RateLimiter(None), ApiConfig())) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tiny_dir, tiny_adapters):
    """variant id -> a function giving the exact log-softmax rows [tokens, vocab] of one unpadded sequence."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    fresh = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    lora = PeftModel.from_pretrained(fresh, tiny_adapters[0])

    def rows(model):
        def forward(ids: list[int]) -> torch.Tensor:
            with torch.inference_mode():
                return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)

        return forward

    return tokenizer, {"tiny": rows(base), "tiny-lora-0": rows(lora.eval())}


def completions(client, **body):
    reply = client.post("/v1/completions", json={"temperature": 0, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.parametrize("variant", ["tiny", "tiny-lora-0"])
def test_echo_logprobs_equal_a_direct_forward_pass(client, reference, variant):
    tokenizer, forward = reference
    rows = [tokenizer(text)["input_ids"] for text in PROMPTS]
    answer = completions(client, model=variant, prompt=rows, echo=True, logprobs=3, max_tokens=1)
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    for ids, choice in zip(rows, answer["choices"], strict=True):
        expected = forward[variant](ids)
        logprobs = choice["logprobs"]
        assert len(logprobs["token_logprobs"]) == len(ids) + 1  # the prompt's tokens, then the one generated
        assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
        for position, token in enumerate(ids[1:], start=1):
            assert logprobs["token_logprobs"][position] == pytest.approx(float(expected[position - 1, token]), abs=1e-3)
        greedy = int(expected[-1].argmax())
        assert logprobs["tokens"][-1] == tokenizer.decode([greedy])
        assert logprobs["token_logprobs"][-1] == pytest.approx(float(expected[-1, greedy]), abs=1e-3)
        best = expected[len(ids) // 2].topk(3)
        shown = logprobs["top_logprobs"][len(ids) // 2 + 1]
        for token, value in zip(best.indices.tolist(), best.values.tolist(), strict=True):
            assert shown[tokenizer.decode([token])] == pytest.approx(value, abs=1e-3)
        assert choice["text"].startswith(tokenizer.decode(ids))


def test_max_tokens_0_with_echo_scores_the_prompt_alone(client, reference):
    tokenizer, forward = reference
    answer = completions(client, model="tiny", prompt=PROMPTS[0], echo=True, logprobs=0, max_tokens=0)
    ids = tokenizer(PROMPTS[0])["input_ids"]
    choice = answer["choices"][0]
    assert choice["text"] == PROMPTS[0] and answer["usage"]["completion_tokens"] == 0
    assert len(choice["logprobs"]["tokens"]) == len(ids)
    assert choice["logprobs"]["token_logprobs"][-1] == pytest.approx(float(forward["tiny"](ids)[-2, ids[-1]]), abs=1e-3)
    assert choice["logprobs"]["text_offset"][:2] == [0, len(choice["logprobs"]["tokens"][0])]


def test_logprobs_without_echo_cover_the_generated_tokens(client):
    answer = completions(client, model="tiny-lora-0", prompt=PROMPTS, logprobs=2, max_tokens=4)
    for choice in answer["choices"]:
        logprobs = choice["logprobs"]
        assert 1 <= len(logprobs["tokens"]) <= 4 and None not in logprobs["token_logprobs"]
        assert all(len(top) <= 3 for top in logprobs["top_logprobs"])  # 2 alternatives and the token itself
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] >= 2


def test_a_greedy_continuation_is_the_same_in_one_pass_and_generated(client):
    """max_tokens 1 comes from the scoring pass, 2 from generate: the first new token must agree."""
    one = completions(client, model="tiny", prompt=PROMPTS[0], logprobs=1, max_tokens=1)["choices"][0]
    two = completions(client, model="tiny", prompt=PROMPTS[0], logprobs=1, max_tokens=2)["choices"][0]
    assert two["logprobs"]["tokens"][0] == one["logprobs"]["tokens"][0]
    assert two["logprobs"]["token_logprobs"][0] == pytest.approx(one["logprobs"]["token_logprobs"][0], abs=1e-4)


def test_chat_logprobs_score_the_answer(client, reference):
    body = {"model": "tiny-lora-0", "messages": [{"role": "user", "content": "Hi?"}], "temperature": 0}
    reply = client.post("/v1/chat/completions", json={**body, "max_tokens": 6, "logprobs": True, "top_logprobs": 2})
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    content = choice["logprobs"]["content"]
    tokenizer, _ = reference
    assert "".join(entry["token"] for entry in content) == tokenizer.decode(
        tokenizer(choice["message"]["content"], add_special_tokens=False)["input_ids"]
    )
    assert all(entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2 for entry in content)
    plain = client.post("/v1/chat/completions", json={**body, "max_tokens": 6}).json()["choices"][0]
    assert plain["logprobs"] is None and plain["message"] == choice["message"]


@pytest.mark.parametrize(
    ("path", "change", "param", "message"),
    [
        ("completions", {"logprobs": MAX_LOGPROBS + 1}, "logprobs", "between 0 and 20"),
        ("completions", {"echo": True, "stream": True}, "echo", "'stream' cannot be combined with 'echo'"),
        ("completions", {"prompt": [[5, 10**9]]}, "prompt", "token id 1000000000"),
        ("completions", {"prompt": []}, "prompt", "must not be an empty list"),
        ("completions", {"prompt": [[1, 2]] * (MAX_PROMPTS + 1)}, "prompt", f"at most {MAX_PROMPTS} prompts"),
        ("completions", {"prompt": [1, -2]}, "prompt", "token ids"),
        ("completions", {"best_of": 50}, "best_of", "'best_of' is not supported"),
        ("completions", {"suffix": "end"}, "suffix", "'suffix' is not supported"),
        ("completions", {"max_tokens": 0}, "max_tokens", "between 1 and 512"),
        ("chat/completions", {"logprobs": "yes"}, "logprobs", "true or false"),
        ("chat/completions", {"top_logprobs": 2}, "top_logprobs", "needs 'logprobs': true"),
        ("chat/completions", {"logprobs": True, "stream": True}, "logprobs", "cannot be combined with 'stream'"),
        ("chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "between 0 and 20"),
        ("chat/completions", {"presence_penalty": 1}, "presence_penalty", "not supported"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_the_field(client, path, change, param, message):
    body = {"model": "tiny", "prompt": "Hi", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    reply = client.post(f"/v1/{path}", json={**body, **change})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and message in error["message"]


def test_a_prompt_longer_than_the_context_window_is_a_400(client):
    reply = client.post("/v1/completions", json={"model": "tiny", "prompt": [[1] * 5000], "echo": True, "logprobs": 0})
    assert reply.status_code == 400 and "context window" in reply.json()["error"]["message"]
