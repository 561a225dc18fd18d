"""The same training as train.py, as a plain command-line script that knows nothing of
hpsearch: hyperparameters come from its arguments, and each epoch's metrics go to stdout
as one JSON line, which is all ``hpsearch agent`` needs.

    python examples/own-code/train_cli.py --lr 0.003 --width 32 --keep-prob 0.8
    hpsearch agent 3 -- python examples/own-code/train_cli.py \\
        --lr {lr} --width {width} --keep-prob {keep_prob}
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

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


@torch.no_grad()
def evaluate(net: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(loss, AUC) on one split, dropout off."""
    net.eval()
    logits = net(x).squeeze(1)  # (n,)
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    return loss, float(roc_auc_score(y.numpy(), logits.numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train an MLP on breast cancer data.")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--keep-prob", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x_train, y_train, x_val, y_val = load_data()
    net = nn.Sequential(
        nn.Linear(30, args.width),
        nn.ReLU(),
        nn.Dropout(1.0 - args.keep_prob),
        nn.Linear(args.width, 1),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    for epoch in range(args.epochs + 1):
        if epoch > 0:  # epoch 0 reports the untrained network's loss
            net.train()
            for batch in torch.randperm(len(x_train)).split(BATCH_SIZE):
                logits = net(x_train[batch]).squeeze(1)
                loss = F.binary_cross_entropy_with_logits(logits, y_train[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        train_loss, _ = evaluate(net, x_train, y_train)
        _, val_auc = evaluate(net, x_val, y_val)
        print(json.dumps({"epoch": epoch, "train_loss": train_loss, "val_auc": val_auc}))
    print(f"done: val_auc {val_auc:.4f}")  # not JSON: passes through to the agent's output


if __name__ == "__main__":
    main()
