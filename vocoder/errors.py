"""The one exception type users catch."""


class VocoderError(ValueError):
    """A problem with user input, a bundle or the environment, worded for the user.

    Subclasses ``ValueError`` so that ``except ValueError`` also catches it.
    """
