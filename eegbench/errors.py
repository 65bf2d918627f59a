"""The one error type a user ever sees: a one-line message that names the file or key and the fix."""


class UserError(Exception):
    """Bad input: printed as one line by the CLI, which then exits with code 2.

    The message names the offending file, key or name and says how to fix it, e.g.
    ``eeg.pth: trial 17 has 64 channels, expected 128; pass the 128-channel ImageNet-EEG file``.
    """
