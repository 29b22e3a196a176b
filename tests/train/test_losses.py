"""Losses: the hierarchical triplet formula, InfoNCE against sentence-transformers' MNRL, the combined loss."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch.nn import functional as F

from datagen.errors import ConfigError
from datagen.train.losses import (
    LOSSES,
    NO_TEXT,
    HierarchicalTripletLoss,
    InfoNCEConfig,
    InfoNCELoss,
    MNRLConfig,
    NGCSEConfig,
    NGCSELoss,
    build_loss,
    parse_loss_config,
)
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


MIXED_BATCH = [TrainRow("a0", "m0", ht=("p0", "m0", "n0")), TrainRow("a1", "m1", ht=("p1", "m1", "n1")),
               TrainRow("s2", "s2", plain=True), TrainRow("a3", "e3", hard_negative="c3")]


class _Lookup(torch.nn.Module):
    """Stands in for a SentenceTransformer: features {"ids": (n,)} -> rows of a fixed embedding table."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, features):
        return {"sentence_embedding": self.table[features["ids"]]}

    def get_embedding_dimension(self) -> int:
        return self.table.size(1)


def _group_batch(batch):
    collated = collate(batch)
    return collated, [{"ids": torch.arange(len(collated.texts))}]


def test_ngcse_forward_returns_the_total_tensor_and_keeps_the_parts():
    torch.manual_seed(5)
    collated, features = _group_batch(MIXED_BATCH)
    model = _Lookup(torch.randn(len(collated.texts), 16))
    loss_fn = NGCSELoss(model, 16, beta=0.5)
    loss = loss_fn(features, collated.labels)

    expected = loss_fn.compute_loss_from_embeddings(model.table, collated.layout)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad
    assert float(loss.detach()) == pytest.approx(float(expected.total.detach()))
    parts = loss_fn.last_parts
    assert float(parts.info_nce) == pytest.approx(float(expected.info_nce.detach()))
    assert float(parts.ht) == pytest.approx(float(expected.ht.detach())) and float(parts.ht) > 0
    assert float(parts.total) == pytest.approx(float(parts.info_nce + 0.5 * parts.ht))
    assert not parts.total.requires_grad  # kept for logs, not a second graph
    loss.backward()
    assert model.table.grad.abs().sum() > 0


def test_info_nce_forward_takes_a_group_batch_with_some_hard_negatives():
    torch.manual_seed(6)
    collated, features = _group_batch(MIXED_BATCH)
    model = _Lookup(torch.randn(len(collated.texts), 8))
    layout = collated.layout
    expected = InfoNCELoss(None).compute_loss_from_embeddings(
        model.table[layout.anchor], model.table[torch.cat([layout.positive, layout.hard_negative])])
    assert float(InfoNCELoss(model)(features, collated.labels).detach()) == pytest.approx(float(expected.detach()))


def test_group_losses_refuse_column_batches_and_bad_labels():
    collated, features = _group_batch(MIXED_BATCH)
    loss_fn = NGCSELoss(_Lookup(torch.randn(len(collated.texts), 8)), 8)
    with pytest.raises(ValueError, match="one feature dict"):
        loss_fn(features * 2, collated.labels)
    with pytest.raises(ValueError, match="group labels"):
        loss_fn(features, None)
    partial = collated.labels.clone()
    partial[0, 5] = NO_TEXT  # an STS row missing its negative
    with pytest.raises(ValueError, match="some HT roles"):
        loss_fn(features, partial)


def test_collate_labels_give_back_the_layout():
    collated = collate(MIXED_BATCH)
    labels, layout = collated.labels, collated.layout
    assert labels.shape == (4, 6) and labels.dtype == torch.long
    assert labels[2, 2:].tolist() == [NO_TEXT] * 4  # the plain row: no hard negative, no hierarchy
    assert labels[3, 3:].tolist() == [NO_TEXT] * 3 and labels[3, 2] != NO_TEXT
    assert torch.equal(labels[:2, 4], labels[:2, 1])  # the STS intermediate is embedded once, as the positive
    rebuilt = GroupLayout.from_labels(labels)
    for name in ("anchor", "positive", "hard_negative", "ht"):
        assert torch.equal(getattr(rebuilt, name), getattr(layout, name))


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"name": "ngcse", "margin2": 0.1}, NGCSEConfig(margin2=0.1)),
     ({"beta": 0.0}, NGCSEConfig(beta=0.0)),  # no name: the default loss
     ({"name": "info_nce", "temperature": 0.1}, InfoNCEConfig(temperature=0.1)),
     ({"name": "mnrl", "scale": 30.0}, MNRLConfig(scale=30.0))],
)
def test_loss_section_parses_by_name(data, expected):
    assert parse_loss_config(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [({"name": "triplet"}, "unknown loss 'triplet'; use one of: ngcse, info_nce, mnrl"),
     ({"name": "mnrl", "temperature": 0.05}, "no setting temperature; its settings: scale"),
     ({"name": "ngcse", "margin1": -1.0}, "margin1"),
     ({"name": "info_nce", "temperature": 0.0}, "temperature")],
)
def test_invalid_loss_sections_raise_config_errors_that_say_what_to_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_loss_config(data)


def test_loss_configs_are_frozen():
    with pytest.raises(Exception, match="frozen"):
        NGCSEConfig().beta = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_builds_from_its_defaults(name):
    model = _Lookup(torch.randn(4, 8))
    loss_fn = build_loss({"name": name}, model)
    assert isinstance(loss_fn, torch.nn.Module)
    assert any(p is model.table for p in loss_fn.parameters())  # the optimiser reaches the encoder through it


def test_build_loss_passes_each_setting_on():
    model = _Lookup(torch.randn(4, 8))
    ngcse = build_loss(NGCSEConfig(temperature=0.1, margin1=0.01, margin2=0.2, beta=0.3), model)
    assert isinstance(ngcse, NGCSELoss) and ngcse.projection.in_features == 8
    assert ngcse.get_config_dict() == {"temperature": 0.1, "margin1": 0.01, "margin2": 0.2, "beta": 0.3}
    info_nce = build_loss(InfoNCEConfig(temperature=0.2), model)
    assert isinstance(info_nce, InfoNCELoss) and info_nce.temperature == 0.2
    mnrl = build_loss(MNRLConfig(scale=25.0), model)
    assert isinstance(mnrl, MultipleNegativesRankingLoss) and mnrl.scale == 25.0
    with pytest.raises(ConfigError, match="unknown loss"):
        build_loss({"name": "nope"}, model)


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


@pytest.mark.model
def test_mnrl_trains_a_few_steps_through_the_loop(sts_shards):
    """A sentence-transformers loss, built from the config, through the loop's train_step (column batches)."""
    from datagen.train.data import read_shard_rows
    from datagen.train.loop import TrainConfig, build_model, build_optimization, train_step

    torch.manual_seed(0)
    config = TrainConfig(data=(str(sts_shards),), objective="sts", loss={"name": "mnrl"}, lr=1e-4)
    model = build_model(config)
    loss_fn, optimizer, _ = build_optimization(model, config, n_steps=6)
    assert isinstance(loss_fn, MultipleNegativesRankingLoss)
    batch = read_shard_rows(sts_shards, "sts")[:16]
    losses = [train_step(model, loss_fn, optimizer, batch, max_len=32) for _ in range(6)]
    assert losses[-1] < losses[0]
