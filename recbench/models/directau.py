"""DirectAU (Wang et al., KDD 2022, "Towards Representation Alignment and Uniformity in Collaborative
Filtering"): matrix-factorisation embeddings trained with no negatives, by the alignment of each observed
(user, item) pair's normalised embeddings and the uniformity of users and of items on the unit sphere
(``loss=directau``: ``align + γ (uniform(users) + uniform(items)) / 2``). Scores are the dot products of
the raw embeddings, as in the authors' code.

The paper's settings: embedding 64, batches of 256 pairs, Adam 1e-3 with L2 1e-6; γ is tuned per dataset
({0.2, 0.5, 1, 2, 5, 10}): choose it on validation (``loss.gamma``). A user is its embedding, fitted
without the validation item (``test_history: train_only``).
"""

from __future__ import annotations

from recbench.data.pairs import PairBatch
from recbench.models.bprmf import BPRMF


class DirectAU(BPRMF):
    """The embeddings and scores of :class:`BPRMF` (matrix factorisation); only the training terms differ:
    the observed pairs' embeddings, no negatives. Args: num_users, num_items, embedding_size."""

    def training_terms(self, batch: PairBatch) -> dict[str, object]:
        return {"users": self.user_emb(batch.users), "items": self.item_emb(batch.items)}
