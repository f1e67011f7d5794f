"""The error every selector raises for a query it refuses."""


class QueryError(ValueError):
    """A query the selectors refuse; `field` names the query parameter at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message
