"""Losses: the hierarchical triplet formula, InfoNCE against sentence-transformers' MNRL, the combined loss."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch.nn import functional as F

from datagen.train.losses import HierarchicalTripletLoss, InfoNCELoss, NGCSELoss
from datagen.train.losses.ngcse import PROJECTION_INIT_STD, GroupLayout
from datagen.train.data import TrainRow, collate


def _ht_by_hand(a, p, m, n, m1, m2) -> float:
    """The paper's formula, one row at a time in plain Python."""
    total = 0.0
    for i in range(a.shape[0]):
        cos = lambda x, y: float(torch.dot(x[i], y[i]) / (x[i].norm() * y[i].norm()))  # noqa: E731
        total += max(0.0, cos(a, m) - cos(a, p) + m1) + max(0.0, cos(a, n) - cos(a, m) + m2)
    return 0.5 * total / a.shape[0]


@pytest.mark.parametrize("margins", [(5e-3, 5e-2), (5e-3, 1e-1), (0.0, 0.0), (0.5, 0.5)])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_ht_loss_equals_formula(margins, batch_size):
    torch.manual_seed(batch_size)
    columns = [torch.randn(batch_size, 16, dtype=torch.float64) for _ in range(4)]
    loss = HierarchicalTripletLoss(None, *margins).compute_loss_from_embeddings(columns)
    assert float(loss) == pytest.approx(_ht_by_hand(*columns, *margins), abs=1e-10)


def test_ht_loss_is_zero_when_ordering_holds_with_margin():
    anchor = torch.tensor([[1.0, 0.0, 0.0]])
    positive = anchor.clone()  # cos 1
    intermediate = torch.tensor([[1.0, 0.5, 0.0]])  # cos ~0.89
    negative = torch.tensor([[0.0, 1.0, 0.0]])  # cos 0
    loss = HierarchicalTripletLoss(None, 5e-3, 5e-2).compute_loss_from_embeddings([anchor, positive, intermediate, negative])
    assert float(loss) == 0.0


@pytest.mark.parametrize(
    ("hinge", "expect_grad"),
    [
        # Only the upper hinge (intermediate scored above positive): the negative gets no gradient.
        ("upper", (True, True, True, False)),
        # Only the lower hinge (negative scored near the intermediate): the positive gets no gradient.
        ("lower", (True, False, True, True)),
    ],
)
def test_ht_loss_gradients_reach_exactly_the_columns_of_active_hinges(hinge, expect_grad):
    torch.manual_seed(0)
    anchor = torch.randn(8, 16)
    near = lambda: anchor + 0.1 * torch.randn(8, 16)  # noqa: E731
    if hinge == "upper":
        columns = [anchor, torch.randn(8, 16), near(), -anchor]
    else:
        columns = [anchor, anchor.clone(), torch.randn(8, 16), near()]
    columns = [c.clone().requires_grad_(True) for c in columns]
    loss = HierarchicalTripletLoss(None).compute_loss_from_embeddings(columns)
    loss.backward()
    assert float(loss.detach()) > 0
    assert [bool(c.grad.abs().sum() > 0) for c in columns] == list(expect_grad)


@pytest.mark.parametrize("n_columns", [3, 5])
def test_ht_loss_rejects_wrong_number_of_columns(n_columns):
    with pytest.raises(ValueError, match="4 columns"):
        HierarchicalTripletLoss(None).compute_loss_from_embeddings([torch.randn(2, 4)] * n_columns)


def test_ht_loss_rejects_negative_margin():
    with pytest.raises(ValueError, match="margins"):
        HierarchicalTripletLoss(None, -1e-3, 5e-2)


@pytest.mark.parametrize("with_negatives", [False, True])
def test_info_nce_equals_sentence_transformers_mnrl(with_negatives):
    torch.manual_seed(1)
    anchors, positives, negatives = (torch.randn(12, 32) for _ in range(3))
    columns = [anchors, positives, negatives] if with_negatives else [anchors, positives]
    reference = MultipleNegativesRankingLoss(None, scale=20.0).compute_loss_from_embeddings(columns, None)
    ours = InfoNCELoss(None, temperature=0.05).compute_loss_from_embeddings(anchors, torch.cat(columns[1:]))
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_info_nce_with_hard_negatives_for_some_rows_only():
    torch.manual_seed(2)
    anchors, positives, hard = torch.randn(5, 8), torch.randn(5, 8), torch.randn(2, 8)
    candidates = torch.cat([positives, hard])
    logits = torch.stack([torch.stack([F.cosine_similarity(a, c, dim=0) for c in candidates]) for a in anchors]) / 0.05
    expected = F.cross_entropy(logits, torch.arange(5))
    assert float(InfoNCELoss(None).compute_loss_from_embeddings(anchors, candidates)) == pytest.approx(float(expected), rel=1e-5)


def test_info_nce_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(None, temperature=0.0)


def test_ngcse_loss_is_info_nce_plus_beta_ht_on_projected_embeddings():
    torch.manual_seed(3)
    batch = [TrainRow("a0", "m0", ht=("p0", "m0", "n0")), TrainRow("a1", "m1", ht=("p1", "m1", "n1")),
             TrainRow("s2", "s2", plain=True), TrainRow("a3", "e3", hard_negative="c3")]
    collated = collate(batch)
    embeddings = torch.randn(len(collated.texts), 16)
    loss_fn = NGCSELoss(None, 16, beta=0.7, margin1=0.01, margin2=0.2)
    parts = loss_fn.compute_loss_from_embeddings(embeddings, collated.layout)

    z = loss_fn.projection(embeddings)
    layout = collated.layout
    info = InfoNCELoss(None).compute_loss_from_embeddings(z[layout.anchor], z[torch.cat([layout.positive, layout.hard_negative])])
    ht = HierarchicalTripletLoss(None, 0.01, 0.2).compute_loss_from_embeddings([z[layout.ht[:, c]] for c in range(4)])
    assert float(parts.info_nce.detach()) == pytest.approx(float(info.detach()))
    assert float(parts.ht.detach()) == pytest.approx(float(ht.detach()))
    assert float(parts.total.detach()) == pytest.approx(float((info + 0.7 * ht).detach()))


def test_ngcse_loss_without_sts_rows_has_zero_ht_term():
    layout = GroupLayout(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([], dtype=torch.long),
                         torch.empty(0, 4, dtype=torch.long))
    parts = NGCSELoss(None, 8).compute_loss_from_embeddings(torch.randn(4, 8), layout)
    assert float(parts.ht.detach()) == 0.0
    assert float(parts.total.detach()) == pytest.approx(float(parts.info_nce.detach()))


def test_projection_is_initialised_small():
    torch.manual_seed(4)
    projection = NGCSELoss(None, 384).projection
    assert float(projection.weight.detach().std()) == pytest.approx(PROJECTION_INIT_STD, rel=0.05)
    assert float(projection.bias.detach().abs().sum()) == 0.0


@pytest.mark.model
def test_a_few_steps_lower_the_training_loss_on_real_shards(sts_shards):
    from datagen.train.data import read_shard_rows
    from datagen.train.loop import TrainConfig, build_model, train_step

    torch.manual_seed(0)
    config = TrainConfig(data=(str(sts_shards),), objective="sts")
    model = build_model(config)
    loss_fn = NGCSELoss(model, model.get_embedding_dimension())
    optimizer = torch.optim.AdamW([p for p in loss_fn.parameters() if p.requires_grad], lr=1e-4)
    batch = read_shard_rows(sts_shards, "sts")[:16]
    losses = [train_step(model, loss_fn, optimizer, batch, max_len=32) for _ in range(6)]
    assert losses[-1] < losses[0]
