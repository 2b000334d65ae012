"""The exceptions of promo-stream: one root, a subclass per kind of trouble.

Bad *data* is not an exception here: validation returns a ``Rejected`` value that is routed to
the dead-letter topic. Exceptions are for bad configuration, bugs and infrastructure, and
carry their context in the message.
"""


class PromoError(Exception):
    """Root of every error raised on purpose by promo-stream."""


class ConfigError(PromoError):
    """A setting or the offer catalogue is invalid; the message names it."""


class ServerUnavailable(PromoError):
    """A server (the Kafka broker, ClickHouse) did not answer; the message names where."""


class SinkError(PromoError):
    """ClickHouse refused or could not take a write."""


class ModelError(PromoError):
    """A model snapshot could not be read or does not fit the feature layout."""


class RulesError(PromoError):
    """A bundle rules snapshot could not be read (damaged, or of another format)."""
