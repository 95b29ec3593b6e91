"""Train a LightGCN in plain PyTorch Geometric, then compile it to a verified TFLite file.

The first half is an ordinary PyG training script (PyG's own ``LightGCN`` and its BPR
``recommendation_loss``, as in PyG's ``examples/lightgcn.py``) on the synthetic data edgerec
ships; nothing in it knows about edgerec. The last lines are the whole edgerec part.

    python examples/pyg_lightgcn_to_tflite.py --out lightgcn-art
    python examples/pyg_lightgcn_to_tflite.py --users 300 --items 500 --epochs 20 --out /tmp/art
"""

from __future__ import annotations

import argparse

import torch
from torch_geometric.nn.models import LightGCN

from edgerec.synthetic import make_synthetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--out", default="lightgcn-art")
    args = ap.parse_args()

    # --- your PyG code: users are nodes 0..U-1, items U..U+I-1 -------------------------------
    data = make_synthetic(args.users, args.items, seed=0)  # SYNTHETIC interactions
    U, I = data.num_users, data.num_items
    users = torch.as_tensor(data.train.users, dtype=torch.long)
    items = torch.as_tensor(data.train.items, dtype=torch.long) + U
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    valid = torch.stack([torch.as_tensor(data.valid.users), torch.as_tensor(data.valid.items) + U])

    torch.manual_seed(0)
    model = LightGCN(num_nodes=U + I, embedding_dim=32, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(args.epochs):
        negatives = torch.randint(U, U + I, (users.numel(),))
        pairs = torch.cat([torch.stack([users, items]), torch.stack([users, negatives])], dim=1)
        pos, neg = model(edge_index, pairs).chunk(2)
        loss = model.recommendation_loss(pos, neg, node_id=pairs.unique(), lambda_reg=1e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if epoch % 20 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch:3d}  BPR loss {loss.item():.4f}")

    # --- edgerec: five lines from the trained model to an on-device answer ---------------------
    import edgerec
    import runtime

    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I, valid=valid)
    art = edgerec.export(edgerec.compile(ckpt), args.out, target="tflite", overwrite=True)
    rec = runtime.load(art)
    print("user 0, top 5:", rec.recommend("0", k=5))
    print("history [1, 2, 3], top 5:", rec.recommend_from_history(["1", "2", "3"], k=5))


if __name__ == "__main__":
    main()
