"""Errors the suite raises for problems a user can fix (bad data, bad config)."""


class PlainsightError(Exception):
    """Base class: the message is meant for a person and names what to fix."""


class DataError(PlainsightError):
    """A dataset file or record is missing, malformed or undecodable; the message names the path and field."""


class ConfigError(PlainsightError):
    """models.toml / thresholds.toml / command-line options are inconsistent."""


class ModelUnavailable(PlainsightError):
    """A configured model cannot be found locally; the message says how to provide it (leads to a skip)."""


class ModelLoadError(PlainsightError):
    """A configured model is there but cannot be loaded (truncated or corrupt weights, a config that does not fit
    them); the message names the file and the cause (leads to a failure, never a skip)."""


class DatasetNotFound(DataError):
    """The data folder does not hold this dataset in any layout the loader knows (leads to a skip naming the layouts)."""
