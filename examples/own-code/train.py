"""A small PyTorch training script of your own, tuned by hpsearch through the light client.

An MLP classifies scikit-learn's breast cancer data (569 tumours, 30 features): a stratified
train/validation split, inputs normalised with the training split's statistics, Adam,
binary cross-entropy. Each epoch reports the training loss and the validation AUC; the server
answers at once whether to go on, and ``trial.report`` raises ``TrialPruned`` when not.

    hpsearch submit examples/own-code/spec.yaml          # say it prints study 3
    python examples/own-code/train.py 3                   # run as many of these as you like

``HPS_URL`` (default http://127.0.0.1:8000) and ``HPS_API_KEY`` say where and who.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from hpsearch_client import Study

EPOCHS = 20
BATCH_SIZE = 32


def load_data(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)  # training statistics only

    def tensor(a: object) -> Tensor:
        return torch.tensor(a, dtype=torch.float32)

    return (
        tensor((x_train - mean) / std),  # (426, 30)
        tensor(y_train),  # (426,)
        tensor((x_val - mean) / std),  # (143, 30)
        tensor(y_val),  # (143,)
    )


def build(width: int, keep_prob: float) -> nn.Module:
    return nn.Sequential(
        nn.Linear(30, width), nn.ReLU(), nn.Dropout(1.0 - keep_prob), nn.Linear(width, 1)
    )


@torch.no_grad()
def evaluate(net: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(loss, AUC) on one split, dropout off."""
    net.eval()
    logits = net(x).squeeze(1)  # (n,)
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    return loss, float(roc_auc_score(y.numpy(), logits.numpy()))


def train_epoch(net: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    net.train()
    for batch in torch.randperm(len(x)).split(BATCH_SIZE):
        loss = F.binary_cross_entropy_with_logits(net(x[batch]).squeeze(1), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=int, help="the study's id")
    parser.add_argument("--url", default=None, help="server (default $HPS_URL)")
    args = parser.parse_args()

    x_train, y_train, x_val, y_val = load_data()
    study = Study(args.url, args.study)
    for trial in study.trials():
        with trial:  # pruned: ends here quietly; an exception fails the trial
            torch.manual_seed(trial.slot)
            net = build(trial.params["width"], trial.params["keep_prob"])
            optimizer = torch.optim.Adam(net.parameters(), lr=trial.params["lr"])
            for epoch in range(EPOCHS + 1):
                if epoch > 0:  # epoch 0 reports the untrained network's loss
                    train_epoch(net, optimizer, x_train, y_train)
                train_loss, _ = evaluate(net, x_train, y_train)
                _, val_auc = evaluate(net, x_val, y_val)
                trial.report(epoch, train_loss=train_loss, val_auc=val_auc)
            trial.complete(val_auc=val_auc)
            print(f"trial {trial.number}: {trial.params} val_auc {val_auc:.4f}")


if __name__ == "__main__":
    main()
