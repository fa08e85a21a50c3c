"""The cross-encoder path without real weights: a tiny ONNX cross-encoder built here.

No package ships cross-encoder weights and torch is not installed, so the test builds a model
with the same inputs and output as an exported BERT cross-encoder (`input_ids`,
`attention_mask`, `token_type_ids` -> one logit per pair) whose logit counts the passage's
"relevant" tokens. Loading, pair tokenization (segment ids, truncation, padding), batching and
ranking then run exactly as they would with ms-marco-MiniLM-L-6-v2's ONNX export.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing

from activities.rag.activities import RagModelActivities
from activities.rag.rerank import (
    CrossEncoders,
    ModelUnavailable,
    OnnxCrossEncoder,
    load_cross_encoder,
)
from keel.app.rag_eval import evaluate
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.rag import Hit, RagConfig, RerankInput
from keel.evaluation import Passage as EvalPassage
from keel.evaluation import Question
from tests.support.rag_corpus import seed
from worker import shared_embedder

RELEVANT = ("parental", "leave", "weeks")
WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "how", "long", "is", "parental", "leave", "weeks",
    "vacation", "days", "the", "a", "of", "for", "vpn",
]  # fmt: skip


def build_tiny_cross_encoder(directory: Path) -> Path:
    """A WordLevel tokenizer and an ONNX graph: logit = sum over passage tokens of w[token]."""
    vocab = {word: i for i, word in enumerate(WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))

    weights = np.array([[1.0 if w in RELEVANT else 0.0] for w in WORDS], dtype=np.float32)
    nodes = [
        helper.make_node("Gather", ["w", "input_ids"], ["per_token"]),  # [N, L, 1]
        helper.make_node("Squeeze", ["per_token", "axis2"], ["relevance"]),  # [N, L]
        helper.make_node("Cast", ["token_type_ids"], ["segment"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["relevance", "segment"], ["in_passage"]),
        helper.make_node("Mul", ["in_passage", "mask"], ["counted"]),
        helper.make_node("ReduceSum", ["counted", "axis1"], ["logits"], keepdims=1),  # [N, 1]
    ]
    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["N", "L"]) for n in (
        "input_ids", "attention_mask", "token_type_ids")]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "tiny-cross-encoder",
        ints,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, list(weights.shape), weights.ravel()),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (directory / "onnx").mkdir(exist_ok=True)
    onnx.save(model, str(directory / "onnx" / "model.onnx"))
    return directory


def test_onnx_cross_encoder_scores_pairs_in_batches_with_segments_and_padding(
    tmp_path: Path,
) -> None:
    scorer = load_cross_encoder(str(build_tiny_cross_encoder(tmp_path / "tiny")))
    assert isinstance(scorer, OnnxCrossEncoder)
    scorer.batch_size = 2  # three pairs: two batches, the second padded differently
    query = "how long is parental leave"
    scores = scorer.predict(
        [
            (query, "vacation days"),
            (query, "parental leave is 16 weeks"),
            (query, "the vpn"),
        ]
    )
    # Only passage tokens count (the query's own "parental leave" is segment 0), padding never.
    assert scores.tolist() == [0.0, 3.0, 0.0]
    # Its threads stop spinning when a batch returns: not on into the query's next stages.
    options = scorer.session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


async def test_rerank_activity_orders_candidates_with_the_cross_encoder(
    clients: Clients, tenant: str, tmp_path: Path
) -> None:
    tenant_id = await ensure_tenant(clients.engine, tenant)
    ids = await seed(clients.engine, tenant_id)
    model = build_tiny_cross_encoder(tmp_path / "tiny")
    activities = RagModelActivities(
        engine=clients.engine, embedder=shared_embedder("onnx"), cross_encoders=CrossEncoders()
    )
    candidates = [
        Hit(chunk_id=ids[p], score=1.0 - i / 10)
        for i, p in enumerate(["hr-leave-1", "it-vpn-1", "hr-leave-2", "hr-remote-1"])
    ]
    result = await ActivityEnvironment().run(
        activities.rerank,
        RerankInput(
            tenant_id=str(tenant_id),
            question="how long is parental leave",
            candidates=candidates,
            top_k=2,
            reranker="cross-encoder",
            model=str(model),
        ),
    )
    # hr-leave-2 holds "Parental leave ... weeks" (tokens are case-sensitive in this tiny
    # vocabulary: "leave", "weeks"); the titles "Annual leave policy" add one "leave" each.
    assert result.reranker == "cross-encoder"
    assert [h.chunk_id for h in result.hits] == [ids["hr-leave-2"], ids["hr-leave-1"]]
    assert result.hits[0].score > result.hits[1].score


async def test_a_missing_model_is_a_retryable_dependency_failure(
    clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable):
        load_cross_encoder(str(tmp_path / "missing"))
    with pytest.raises(ModelUnavailable, match="sentence-transformers"):
        load_cross_encoder("cross-encoder/ms-marco-MiniLM-L-6-v2")  # offline, no torch

    activities = RagModelActivities(
        engine=clients.engine, embedder=shared_embedder("onnx"), cross_encoders=CrossEncoders()
    )
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            activities.rerank,
            RerankInput(
                tenant_id=str(uuid.uuid4()),
                question="q",
                candidates=[Hit(chunk_id=1, score=1.0)],
                reranker="cross-encoder",
                model=str(tmp_path / "missing"),
            ),
        )
    assert failed.value.type == "DependencyDown"
    assert not failed.value.non_retryable


def _passage(pid: str, title: str, body: str) -> EvalPassage:
    return EvalPassage(
        doc_id=pid,
        passage_id=pid,
        source=f"handbook/{pid}.md",
        title=title,
        date=date(2024, 1, 1),
        department="HR",
        doc_type="policy",
        text=body,
        licence="CC0",
        origin="written for this test",
    )


async def test_keel_eval_reranks_with_the_configured_cross_encoder(
    clients: Clients, tenant: str, tmp_path: Path
) -> None:
    """`keel eval`'s "hybrid + rerank" row is the pipeline's stage 4, not a copy of it: with
    the cross-encoder configured it is the cross-encoder's order (this one ranks the
    parental-leave passage first for every question), and a model that cannot load fails
    the evaluation instead of reporting hybrid order under the cross-encoder's name."""
    model = build_tiny_cross_encoder(tmp_path / "tiny")
    tenant_id = await ensure_tenant(clients.engine, tenant)
    passages = [
        _passage("p-leave", "Parental leave", "Parental leave is 16 weeks, paid in full."),
        _passage("p-vacation", "Vacation days", "Employees get 25 vacation days a year."),
        _passage("p-vpn", "VPN access", "The VPN is required for remote database access."),
    ]
    questions = [
        Question(
            qid="q-vacation",
            question="How many vacation days do employees get?",
            gold_passage_ids=["p-vacation"],
            answer="25",
            kind="direct",
        )
    ]
    embedder = shared_embedder("onnx")
    rag = RagConfig(reranker="cross-encoder", cross_encoder_model=str(model))

    report = await evaluate(
        clients.engine,
        embedder,
        tenant_id=tenant_id,
        passages=passages,
        questions=questions,
        rag=rag,
        answers=False,
        cross_encoders=CrossEncoders(),
    )

    record = report.per_question[0]
    assert record["hybrid"][0] == "p-vacation"
    assert record["hybrid+rerank"][0] == "p-leave"
    assert report.reranker == "cross-encoder"

    missing = rag.model_copy(update={"cross_encoder_model": str(tmp_path / "no-such-model")})
    with pytest.raises(ModelUnavailable):
        await evaluate(
            clients.engine,
            embedder,
            tenant_id=tenant_id,
            passages=passages,
            questions=questions,
            rag=missing,
            answers=False,
            cross_encoders=CrossEncoders(),
        )
