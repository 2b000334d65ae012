"""A simulated shop with known ground truth: the test bed for the engine's decisions.

Users with latent traits (activity, price sensitivity, purchase propensity, basket size,
preferred categories) browse a shop of a few hundred items in sessions; the events they make
follow the clickstream contract, with a small share of malformed messages added on top. The
engine's offers change what they do according to each user's response type, the classic
uplift segments:

- **persuadable**: an offer raises the purchase probability a lot, more for bigger discounts
  and for price-sensitive users (free shipping matters for small baskets, a bundle discount for
  multi-item buyers);
- **sure thing**: buys anyway; an offer only gives margin away;
- **lost cause**: rarely buys, offer or not;
- **sleeping dog**: buys less once contacted.

Because the traits are known, ``simulator.truth`` gives, for every user and action, the
probability of a purchase within the attribution window and its expected revenue, discount
and profit: a profit-aware uplift policy beats "offer everyone" and "offer the likeliest
buyers" on it, and analysts compare the engine's decisions with it.

Modules, in flow order: ``assortment`` (items and prices), ``population`` (users and their
response types), ``behaviour`` (offer response arithmetic shared by the next two), ``shop``
(sessions and offers, a pure discrete-event model driven by sim time), ``truth``,
``malformed``; ``config`` (``SimulationConfig``, ``SimulationSummary``); then the I/O:
``runner`` (``run_simulation`` against Kafka) and ``truth_store`` (ClickHouse tables
``sim_truth`` and ``sim_runs``).
"""
