"""Error types that say where bad input came from, so a user can fix it without a debugger."""


class RLHFError(Exception):
    """Base class for every error this package raises on purpose."""


class DataError(RLHFError, ValueError):
    """A data file or record that does not fit the expected schema."""

    def __init__(self, message: str, *, source: str | None = None, record: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}"
            if record is not None:
                where += f", record {record}"
            where += ": "
        super().__init__(where + message)
        self.source = source
        self.record = record


class ConfigError(RLHFError, ValueError):
    """A configuration key that is missing, unknown, mistyped or out of range."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


class TrainingFault(RLHFError, RuntimeError):
    """Training stopped on purpose: the message names the step, the value seen and the likely causes."""


def bad_input_cause(error: BaseException) -> RLHFError | None:
    """The RLHFError behind `error`: itself, or the one a wrapper was raised from (Hydra's
    `instantiate` re-raises a constructor's error as its own InstantiationException)."""
    while error is not None:
        if isinstance(error, RLHFError):
            return error
        error = error.__cause__
    return None


def exit_on_error(function):
    """Entry-point wrapper: an RLHFError (or an error raised from one) ends the process with its
    one-line message on stderr and exit status 2 (no traceback); anything else is a bug and keeps
    its traceback."""
    import functools
    import sys

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:
            cause = bad_input_cause(error)
            if cause is None:
                raise
            print(f"error: {' '.join(str(cause).split())}", file=sys.stderr)
            sys.exit(2)

    return wrapper
