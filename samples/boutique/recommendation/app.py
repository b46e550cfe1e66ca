"""The boutique's recommendation service, in Python (componentize-py).

Like Online Boutique's, it lists every product from the catalog, leaves out
the ones the user is looking at, and answers with up to five of the rest,
picked at random.
"""

import random

from wit_world import exports
from wit_world.imports import product_catalog

MAX_RESPONSES = 5


class Recommendation(exports.Recommendation):
    def list_recommendations(self, user_id: str, product_ids: list[str]) -> list[str]:
        excluded = set(product_ids)
        candidates = [p.id for p in product_catalog.list_products() if p.id not in excluded]
        return random.sample(candidates, min(MAX_RESPONSES, len(candidates)))
