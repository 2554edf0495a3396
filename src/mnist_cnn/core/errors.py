"""The exceptions a user can cause, each carrying a one-line message with the fix.

The CLI turns every `MnistCnnError` into one line on stderr and exit code 2; anything
else is a bug and exits 1 with a traceback.
"""


class MnistCnnError(Exception):
    """A problem the user can fix: bad input, missing files, invalid settings."""


class ConfigError(MnistCnnError, ValueError):
    """An invalid setting (a number out of range, an unknown name or config key)."""


class DataError(MnistCnnError):
    """A dataset that cannot be found or read."""


class DatasetNotFoundError(DataError):
    """No copy of the dataset in any of the places searched."""


class DatasetFormatError(DataError):
    """Custom data that cannot be used: an .npz missing keys, an unreadable image, one class."""


class IdxFormatError(DatasetFormatError):
    """A file that is not a valid (gzipped) IDX file of the expected kind."""


class ChecksumError(DataError):
    """A file whose uncompressed payload does not match its pinned SHA-256."""


class DownloadError(DatasetNotFoundError):
    """No mirror could serve a verified copy of a file (or offline mode forbids trying)."""


class CacheWriteError(DataError):
    """The download folder cannot be written: read-only, missing permissions, disk full."""


class RunFileError(MnistCnnError):
    """A run folder's file that is missing, unreadable or damaged (named, with the fix)."""


class ModelFileError(MnistCnnError):
    """A model file that is missing, unreadable or not a Keras model."""


class ModelOutputError(MnistCnnError):
    """A model that answered an input with something other than probabilities (NaN, inf)."""


class ImageError(MnistCnnError):
    """An image that cannot be read: not an image, truncated, corrupt, or a bad pixel array."""


class ImageTooLargeError(ImageError):
    """An image over the byte or pixel limit (a decompression bomb is refused before decoding)."""


class EmptyImageError(ImageError):
    """An image with no ink on it: a blank page has no digit to read."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name if empty), cut to `limit` characters:
    what a one-line error quotes of a library's error."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
