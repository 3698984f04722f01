"""The one exception type whose message is shown to users as is (no traceback)."""


class UserError(Exception):
    """A problem the user can fix; `str(err)` is a plain sentence saying what and where."""
