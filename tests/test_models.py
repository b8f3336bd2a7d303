import numpy as np
import pytest
import torch

from genrec.data import prepare_dataset, preset
from genrec.models import build_model


@pytest.fixture(scope="module")
def small():
    return prepare_dataset(preset("synthetic", options={"num_items": 120, "num_users": 200}), cache=False)


def tiny_sasrec(dataset, **kw):
    params = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "ffn_size": 32, "dropout": 0.0,
              "max_history": 8, **kw}
    return build_model("sasrec", params, dataset)


def test_sasrec_predictions_ignore_left_padding(small):
    torch.manual_seed(0)
    model = tiny_sasrec(small).eval()
    history = torch.tensor([[5, 9, 3]])
    padded = torch.tensor([[0, 0, 0, 5, 9, 3]])
    with torch.no_grad():
        a = model.full_sort_predict({"history": history})
        b = model.full_sort_predict({"history": padded})
    torch.testing.assert_close(a, b)


def test_sasrec_is_causal(small):
    torch.manual_seed(0)
    model = tiny_sasrec(small).eval()
    with torch.no_grad():
        a = model.encode(torch.tensor([[4, 7, 2, 8]]))
        b = model.encode(torch.tensor([[4, 7, 2, 11]]))
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_training_batches_shift_targets_and_cover_every_transition(small):
    model = tiny_sasrec(small, max_history=4)
    batches = list(model.training_batches(small, 32, np.random.default_rng(0)))
    starts, ends = small.train_ranges()
    expected = int(np.maximum(ends - starts - 1, 0).sum())  # every next-item transition in training
    assert sum(int((b["targets"] > 0).sum()) for b in batches) == expected
    for batch in batches:
        inputs, targets = batch["history"], batch["targets"]
        # where both are real items, target[t] is the item after input[t]
        both = (inputs[:, :-1] > 0) & (inputs[:, 1:] > 0)
        assert torch.equal(targets[:, :-1][both], inputs[:, 1:][both])
        assert not (targets[inputs == 0] > 0).any()


def test_sasrec_loss_decreases(small):
    torch.manual_seed(0)
    model = tiny_sasrec(small)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = next(iter(model.training_batches(small, 64, np.random.default_rng(0))))
    first = model.calculate_loss(batch).item()
    for _ in range(30):
        loss = model.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first == pytest.approx(np.log(small.num_items), rel=0.1)  # starts near uniform
    assert loss.item() < first * 0.7


def test_popularity_counts_only_training_part(small):
    model = build_model("popularity", {}, small)
    model.fit_counts(small)
    starts, ends = small.train_ranges()
    train_items = np.concatenate([small.items[s:e] for s, e in zip(starts, ends)])
    assert model.counts.sum().item() == len(train_items)
    top = int(model.counts.argmax())
    assert model.counts[top].item() == np.bincount(train_items).max()
    scores = model.full_sort_predict({"history": torch.zeros(3, 1, dtype=torch.long)})
    assert scores.shape == (3, small.num_items + 1)


def test_cpu_dropout_keeps_expectation_follows_the_seed_and_is_identity_in_eval():
    from genrec.models.layers import Dropout

    layer = Dropout(0.3)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.ones(200_001, dtype=dtype)  # not a multiple of the four mask lanes per draw
        y = layer(x)
        assert y.dtype == dtype and y.shape == x.shape
        assert ((y == 0).float().mean() - 0.3).abs() < 0.01
        assert (y.float().mean() - 1.0).abs() < 0.01
        assert torch.equal(y[y != 0], torch.full_like(y[y != 0], layer.scale))  # scaled once, no bias
    assert layer.scale == 65536 / (65536 - round(0.3 * 65536))  # p as used: a multiple of 1/65536
    torch.manual_seed(3)
    first = layer(torch.ones(1000))
    torch.manual_seed(3)
    assert torch.equal(layer(torch.ones(1000)), first)
    assert not torch.equal(layer(torch.ones(1000)), first)
    x = torch.ones(4000, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes through the same mask and scale
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    for p in (1.0, 0.999995):  # the latter rounds to 65536/65536
        with pytest.raises(ValueError, match="dropout must be in"):
            Dropout(p)


def test_sasrec_config_names_a_bad_dropout():
    from genrec.models.sasrec import SASRecConfig

    with pytest.raises(ValueError, match=r"model.dropout must be in \[0, 1\), got -0.1"):
        SASRecConfig(dropout=-0.1)
