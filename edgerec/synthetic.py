"""A seeded generator of SYNTHETIC implicit feedback, so a fresh clone runs with no download.

Users belong to latent communities (with a minority taste for a second one); items belong to a
community and have a long-tail (Zipf) popularity. A user's interactions are drawn mostly from
their communities weighted by popularity, plus some from the global popularity distribution.
This gives a graph with the two properties a recommender exploits — collaborative structure and
popularity skew — and nothing else. Every output is labelled synthetic (``synthetic.json``,
``Interactions.synthetic``, the source string): its accuracy figures say nothing about real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgerec.data import Interactions, Split, write_lightgcn_dir
from edgerec.limits import MAX_COMMUNITIES, MAX_ITEMS, MAX_USERS

# The dense setting: interactions per user are lognormal around ``mean_interactions`` and 70% of
# them are kept for training, so 85 gives a median of ~60 training items per user (the shared
# datasets are sparse: LastFM's median is 35, Gowalla's 14). Many small communities and a larger
# share of popularity-driven picks make a long history a noisy mixture, which a user's own
# learned vector summarises better than the fold of its items: history mode then falls well
# short of lookup, as it did on a real dense split (docs/compression.md, last section).
DENSE = {"mean_interactions": 85.0, "communities": 40, "noise": 0.3}

# The generator draws every interaction in Python (~1 ms per user at 2,000 items, growing with
# the catalogue): beyond these it would run for hours with no output. Gowalla-sized fits.


def check_counts(num_users: int, num_items: int, communities: int) -> None:
    """Refuse counts the generator cannot use (too few) or would take hours over (too many)."""
    if not (2 <= num_users <= MAX_USERS and 10 <= num_items <= MAX_ITEMS
            and 1 <= communities <= MAX_COMMUNITIES):
        raise ValueError(f"need 2..{MAX_USERS} users, 10..{MAX_ITEMS} items and 1..{MAX_COMMUNITIES} "
                         f"communities, not {num_users}, {num_items}, {communities}")


def make_synthetic(num_users: int = 1000, num_items: int = 2000, *, communities: int = 12,
                   mean_interactions: float = 30.0, zipf: float = 1.1, noise: float = 0.15,
                   valid_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0) -> Interactions:
    """Generate a synthetic dataset split per user into train/valid/test (seeded, reproducible).

    ``make_synthetic(**DENSE)`` is the dense setting (long training histories, see
    :data:`DENSE`)."""
    check_counts(num_users, num_items, communities)
    rng = np.random.default_rng(seed)
    item_comm = rng.integers(0, communities, num_items)
    rank = rng.permutation(num_items) + 1
    pop = rank.astype(np.float64) ** -zipf
    pop /= pop.sum()
    by_comm = [np.flatnonzero(item_comm == c) for c in range(communities)]
    comm_p = [pop[idx] / pop[idx].sum() if idx.size else None for idx in by_comm]
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    for u in range(num_users):
        n = int(np.clip(rng.lognormal(np.log(mean_interactions), 0.6), 5, num_items // 2))
        main, second = rng.integers(0, communities, 2)
        picks: set[int] = set()
        while len(picks) < n:
            r = rng.random()
            if r < noise:
                i = int(rng.choice(num_items, p=pop))
            else:
                c = main if r < noise + (1 - noise) * 0.75 else second
                if comm_p[c] is None:
                    continue
                i = int(rng.choice(by_comm[c], p=comm_p[c]))
            picks.add(i)
        chosen = rng.permutation(np.fromiter(picks, np.int64))
        users.append(np.full(chosen.size, u, np.int64))
        items.append(chosen)
    part_u: list[list[np.ndarray]] = [[], [], []]
    part_i: list[list[np.ndarray]] = [[], [], []]
    for u_arr, i_arr in zip(users, items, strict=True):
        n = i_arr.size
        n_test = max(1, int(round(n * test_frac)))
        n_valid = max(1, int(round(n * valid_frac)))
        cuts = [(0, n - n_test - n_valid), (n - n_test - n_valid, n - n_test), (n - n_test, n)]
        for p, (a, b) in enumerate(cuts):
            part_u[p].append(u_arr[a:b])
            part_i[p].append(i_arr[a:b])
    splits = [Split(np.concatenate(part_u[p]), np.concatenate(part_i[p])) for p in range(3)]
    # Valid/test items never seen in train cannot be scored: drop them, as the loaders do.
    in_train = np.zeros(num_items, bool)
    in_train[splits[0].items] = True
    for p in (1, 2):
        keep = in_train[splits[p].items]
        splits[p] = Split(splits[p].users[keep], splits[p].items[keep])
    return Interactions(
        num_users=num_users, num_items=num_items, train=splits[0], valid=splits[1],
        test=splits[2], user_ids=[str(u) for u in range(num_users)],
        item_ids=[str(i) for i in range(num_items)], source=f"synthetic(seed={seed})",
        synthetic=True,
    )


def write_synthetic(path: str | Path, **options: object) -> Path:
    """Generate a synthetic dataset and write it as a LightGCN folder plus ``synthetic.json``."""
    data = make_synthetic(**options)  # type: ignore[arg-type]
    root = write_lightgcn_dir(data, path)
    meta = {"synthetic": True, "generator": "edgerec.synthetic.make_synthetic",
            "seed": options.get("seed", 0), "options": options, **data.summary()}
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2, default=str))
    (root / "README.txt").write_text(
        "SYNTHETIC interaction data generated by edgerec (latent communities, Zipf popularity).\n"
        "Not real users. Accuracy figures on it say nothing about real data.\n")
    return root
