"""The errors services raise when they refuse something: what is wrong, in the domain's
words. They carry no HTTP status; the API maps each kind to one in orders/api/errors.py,
and commands and the admin show the message."""


class DomainError(Exception):
    """A refusal; nothing changed. `message` says why. `errors`, when given, says which
    fields: {"field": [messages]}, or for a batch a list of such mappings aligned with its
    items ({} for an item that is fine)."""

    def __init__(self, message: str, errors=None):
        super().__init__(message)
        self.message = message
        self.errors = errors


class Invalid(DomainError):
    """The request cannot be right as given (a value, a rule of the account or market)."""


class Forbidden(DomainError):
    """The user may not do this, though they may know the thing exists."""


class NotFound(DomainError):
    """No such thing, or one the user may not see: the two look the same from outside, so
    an id on another desk's account reveals nothing."""


class Conflict(DomainError):
    """The request makes no sense in the current state (of an order, an account, or an
    earlier request with the same id)."""
