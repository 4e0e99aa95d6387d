"""chatrec.llm.grammar_first against llama-cpp-python's own grammar sampling, on the real bundled model."""

from __future__ import annotations

import pytest
from llama_cpp import Llama, LlamaGrammar

from chatrec.llm.backends import LOCAL_SAMPLING, default_gguf
from chatrec.llm.extract import LLMExtractor
from chatrec.llm.grammar_first import GreedyGrammarLlama

pytestmark = pytest.mark.slow

MESSAGES = ["something funny, nothing too long", "a scary sci-fi movie please", "more like Alien, no romance",
            "I hate horror but love animated films for kids", "hi", "no musicals, I want a war drama",
            "¿algo de miedo?", "mystery or thriller, not too violent"]


def load(cls):
    return cls(model_path=str(default_gguf()), n_ctx=2048, n_threads=2, n_batch=512, seed=0, verbose=False)


@pytest.fixture(scope="module")
def models():
    return load(Llama), load(GreedyGrammarLlama)


def test_greedy_json_answers_are_the_librarys_token_for_token(models):
    extractor = LLMExtractor(backend=None)
    answers = []
    for model in models:
        answers.append([
            model.create_chat_completion(
                messages=[{"role": r, "content": c} for r, c in extractor.messages(m)], max_tokens=80,
                temperature=0.0, response_format={"type": "json_object", "schema": extractor.schema},
                **LOCAL_SAMPLING)["choices"][0]["message"]["content"]
            for m in MESSAGES])
    assert answers[1] == answers[0]
    assert all(a.lstrip().startswith("{") for a in answers[1])


def test_a_pick_the_grammar_rejects_falls_back_to_filtering_every_token(models):
    """The model would never answer "banana" to this: each token is the check's fallback, and the accepted
    tokens must advance the grammar, or the text would not match it."""
    grammar = 'root ::= "banana" ("," " banana")* "."'
    outs = [model.create_completion("Name three colours:", max_tokens=12, temperature=0.0,
                                    grammar=LlamaGrammar.from_string(grammar, verbose=False))["choices"][0]["text"]
            for model in models]
    assert outs[1] == outs[0]
    # 12 tokens may end mid-word: the text is a start of the grammar's language
    assert len(outs[1]) > 10 and ("banana" + ", banana" * 12).startswith(outs[1].removesuffix(".")), outs[1]


def test_only_greedy_grammar_calls_take_the_check(models):
    fast = models[1]
    grammar = LlamaGrammar.from_string('root ::= "a"', verbose=False)
    assert len(fast._init_sampler(temp=0.0, grammar=grammar).custom_samplers) == 1
    for kwargs in ({"temp": 0.3, "grammar": grammar}, {"temp": 0.0, "grammar": None}):
        assert fast._init_sampler(**kwargs).custom_samplers == []
